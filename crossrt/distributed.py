"""Data-parallel training over torch.distributed: launching ranks, and what a rank needs.

`crossrt train --nproc P` launches P ranks on this machine with torch.distributed's own elastic
launcher (the API behind torchrun), each running `python -m crossrt train ...` again: exactly
what `torchrun --nproc-per-node P -m crossrt train ...` does, on one machine or many (README).
A process knows it is a rank from the environment torchrun sets (RANK, WORLD_SIZE, ...).
Ranks talk over gloo on CPUs and NCCL on GPUs (one GPU per rank); a collective that waits
longer than TIMEOUT for a dead or stuck rank fails instead of hanging. The ranks run the crossrt
that launched them: never a `crossrt` (or any module) in the working folder, which `python -m`
would otherwise put first on the path.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import sys
from dataclasses import dataclass
from datetime import timedelta

TIMEOUT = timedelta(seconds=60)
EXIT_OWN = (1, 2, 130)  # exit codes rank 0 gives after saying why itself


@dataclass
class Rank:
    """This process's place in the job, from torchrun's environment."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def nodes(self) -> int:
        return self.world_size // self.local_world_size


def this_rank() -> Rank | None:
    """The rank torchrun (or crossrt's launcher) started this process as; None outside a job."""
    if "WORLD_SIZE" not in os.environ or "TORCHELASTIC_RUN_ID" not in os.environ:
        return None
    env = os.environ
    return Rank(
        int(env["RANK"]),
        int(env["WORLD_SIZE"]),
        int(env["LOCAL_RANK"]),
        int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])),
    )


def backend(device: str) -> str:
    return "nccl" if device == "cuda" else "gloo"


def init(rank: Rank, device: str):
    """Join the process group; the torch device of this rank (its own GPU on CUDA)."""
    import torch
    import torch.distributed as dist

    if device == "cuda":
        torch.cuda.set_device(rank.local_rank)
    dist.init_process_group(backend(device), timeout=TIMEOUT)
    return torch.device(f"cuda:{rank.local_rank}" if device == "cuda" else "cpu")


def all_sum(t):
    """t summed over all ranks (in place), when this process is one of several."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.all_reduce(t)
    return t


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def leave() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def rank_command() -> list[str]:
    """How a rank is started: `python -m crossrt`, but with this crossrt's folder in place of the
    working folder at the head of the path (where `-m` would find a `crossrt` of the working folder)."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # sys is built in; everything else is imported once the working folder is off the path.
    return [
        "-c",
        f"import sys; sys.path[0] = {here!r}; import runpy; "
        f"runpy.run_module('crossrt', run_name='__main__', alter_sys=True)",
    ]


def launch(launcher: list[str], argv: list[str], nproc: int) -> int:
    """Run `python -m crossrt <argv>` as nproc ranks on this machine; the job's exit code.

    launcher + argv is how this process was started. Rank 0 reports the run (and its own
    errors); a rank that dies otherwise is named here.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its own logs are ours to say
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"crossrt-{os.getpid()}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
    )
    # The ranks inherit this process's environment; the resume hint they print must be this
    # command, not their own. Set for them only.
    before = os.environ.get("CROSSRT_LAUNCHED_AS")
    os.environ["CROSSRT_LAUNCHED_AS"] = shlex.join([*launcher, *argv])
    try:
        elastic_launch(config, sys.executable)(*rank_command(), *_without_nproc(argv))
    except ChildFailedError as e:
        first, failure = e.get_first_failure()
        if first == 0 and failure.exitcode in EXIT_OWN:
            return failure.exitcode
        how = (
            f"was killed by signal {signal.Signals(-failure.exitcode).name}"
            if failure.exitcode < 0
            else f"exited with code {failure.exitcode}"
        )
        print(f"crossrt: error: rank {first} (pid {failure.pid}) {how}; the other ranks were stopped", file=sys.stderr)
        return 1
    except Exception as e:  # the launcher itself was stopped (SignalException) or could not start
        if type(e).__name__ == "SignalException":
            return 130
        raise
    finally:
        if before is None:
            os.environ.pop("CROSSRT_LAUNCHED_AS")
        else:
            os.environ["CROSSRT_LAUNCHED_AS"] = before
    return 0


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for x in argv:
        if skip:
            skip = False
        elif x == "--nproc":
            skip = True
        elif not x.startswith("--nproc="):
            out.append(x)
    return out
