"""How a command ends when it does not simply succeed: the one-line error, and a run that stopped
early (Ctrl-C, SIGTERM, a diverged loss, a full disk), whose finished work is saved, with why it
stopped and, when it works, the command that resumes it.
"""

from __future__ import annotations

import os
import shlex
import sys

from .errors import EXIT_FAILED, EXIT_INTERRUPTED, CrossrtError, Stopped
from .text import printable


def err(message: str) -> None:
    """One line on stderr; a name from outside in it (a path, a field) cannot drive the terminal."""
    print(f"crossrt: error: {printable(message)}", file=sys.stderr)


def resume_command(a) -> str:
    """The command that resumes this run, as the user can type it: the make target they ran
    (`make train EPOCHS=3 ARGS=--resume`), else the command they started (for data-parallel
    ranks: the launching command, not the rank's own)."""
    via = os.environ.get("CROSSRT_VIA_MAKE")  # set by the Makefile: the target and its variables
    if via:
        target, *assigns = shlex.split(via)
        extra = next((shlex.split(x[5:]) for x in assigns if x.startswith("ARGS=")), [])
        rest = [x for x in assigns if not x.startswith("ARGS=")]
        return shlex.join(
            ["make", target, *rest, "ARGS=" + shlex.join(extra + ["--resume"] * ("--resume" not in extra))]
        )
    if "CROSSRT_LAUNCHED_AS" in os.environ:
        command = shlex.split(os.environ["CROSSRT_LAUNCHED_AS"])
    elif "TORCHELASTIC_RUN_ID" in os.environ:
        return "the same torchrun command with --resume added"
    else:
        command = [*a.launcher, *a.argv]
    return shlex.join([x for x in command if x != "--resume"] + ["--resume"])


def stopped(stop: Stopped, a) -> int:
    """Save what a stopped run finished, say why it stopped and how to go on, and pick the exit code."""
    from .distributed import this_rank
    from .files import save_json
    from .results import TrainResult
    from .ui import training
    from .ui.console import console

    if (rank := this_rank()) and not rank.main:  # rank 0 saves and reports for the job
        return EXIT_INTERRUPTED if stop.interrupted else EXIT_FAILED
    result = stop.result
    if isinstance(result, TrainResult) and not result.epochs:  # nothing finished: no table of dashes, no file
        message = f"{stop}; no epoch finished, so no result was saved"
        err(message) if not stop.interrupted else print(f"crossrt: {printable(message)}", file=sys.stderr)
        return EXIT_INTERRUPTED if stop.interrupted else EXIT_FAILED
    try:
        paths = save_json(stop.result.to_dict(), getattr(a, "json", None))
        saved = f"partial results saved to {', '.join(map(str, paths))}"
    except CrossrtError as e:  # a full disk, most likely what stopped the run too
        saved = f"the partial results could not be saved either ({e})"
    if isinstance(stop.result, TrainResult):
        console.print(training.train_summary(stop.result))
    message = f"{stop}; {saved}"
    if stop.resumable:
        message += ". Resume with: " + resume_command(a)
    if not stop.interrupted:
        err(message)
        return EXIT_FAILED
    print(f"crossrt: {printable(message)}", file=sys.stderr)
    return EXIT_INTERRUPTED
