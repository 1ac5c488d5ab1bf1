"""The `crossrt` command line: flags built from the config dataclasses, the config built from
the flags, dispatch, and exit codes.

Every flag, its type, its default and its help come from a field of a config dataclass
(crossrt.config; types from typing.get_type_hints), so there is one source of defaults; what
each command does is in crossrt.commands. Heavy libraries (torch, onnxruntime) load only when a
command runs, so `crossrt --help` answers at once. Errors the user can fix are one line on
stderr and exit code 2; a run stopped by Ctrl-C or SIGTERM saves what was finished and exits
130, one that failed part-way (a diverged loss) saves it and exits 1 (crossrt.errors).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import sys
import threading
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path

from . import stopping
from .config import DATASETS, BenchConfig, ExportConfig, LoadgenConfig, QuantizeConfig, SuiteConfig, TrainConfig
from .distributed import this_rank
from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CrossrtError, Stopped
from .text import ascii_safe, printable

# Each command and the module whose cmd_<command> runs it.
COMMANDS = {
    "train": "commands.train",
    "export": "commands.train",
    "quantize": "commands.quantize",
    "bench-infer": "commands.bench",
    "suite": "commands.suite",
    "loadgen": "commands.loadgen",
    "doctor": "commands.machine",
    "fetch": "commands.machine",
    "report": "commands.reports",
    "compare": "commands.reports",
    "show": "commands.reports",
}


class Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage dump), exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {printable(message)}\n")


def number_list(kind, what: str):
    """A parser of `1,2,18` into a tuple of kind; junk gives a one-line error (argparse names the flag)."""

    def parse(text: str) -> tuple:
        try:
            return tuple(kind(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None

    return parse


int_list, float_list = number_list(int, "whole numbers"), number_list(float, "numbers")


def str_list(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(","))


def value_type(hint):
    """The type a field's value has once None is set aside: `int | None` and `Optional[int]` are int."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return hint


def parser_of(hint):
    """How a flag's text becomes the field's value: int, float, str, Path, or a comma-separated tuple."""
    kind = value_type(hint)
    if typing.get_origin(kind) is tuple:
        return {int: int_list, float: float_list, str: str_list}[typing.get_args(kind)[0]]
    return kind


class Extend(argparse.Action):
    """A repeated list flag adds up: `--dim height=8 --dim width=8` is `--dim height=8,width=8`;
    the first use replaces the default, each later one extends it."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_extended", set())
        before = getattr(namespace, self.dest) if self.dest in given else ()
        given.add(self.dest)
        setattr(namespace, self.dest, tuple(before) + tuple(values))


def _shown(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def add_options(p: argparse.ArgumentParser, cls) -> None:
    """A flag per field of the config dataclass cls (and of its nested settings)."""
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        if not f.init:  # made from the others by __post_init__: no flag
            continue
        if is_dataclass(f.default_factory):
            add_options(p, f.default_factory)
            continue
        m = f.metadata
        default = f.default_factory() if f.default is MISSING else f.default
        shown = (m["default_text"] or "{}").format(_shown(default))
        kw = {"dest": f.name, "default": default, "help": f"{m['help']} (default: {shown})"}
        flag = m["flag"] or "--" + f.name.replace("_", "-")
        if value_type(hints[f.name]) is bool:
            action = (
                "store_false"
                if flag.startswith("--no-")
                else argparse.BooleanOptionalAction
                if "/" in flag
                else "store_true"
            )
            p.add_argument(flag.split("/")[0], action=action, **kw)
        else:
            many = typing.get_origin(value_type(hints[f.name])) is tuple
            p.add_argument(
                flag,
                type=parser_of(hints[f.name]),
                metavar=m["metavar"],
                choices=m["choices"],
                **({"action": Extend} if many else {}),
                **kw,
            )
        for alias, value in m["aliases"].items():
            p.add_argument(
                alias,
                dest=f.name,
                action="store_const",
                const=value,
                help=f"the same as {flag} {value} (default: {shown})",
            )


def build(cls, a: argparse.Namespace):
    """The config dataclass cls from parsed flags; its __post_init__ checks every value."""
    return cls(
        **{
            f.name: build(f.default_factory, a) if is_dataclass(f.default_factory) else getattr(a, f.name)
            for f in fields(cls)
            if f.init
        }
    )


def _plots_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--plots",
        type=Path,
        default=None,
        metavar="DIR",
        help="write PNG figures here; needs matplotlib, `pip install crossrt[plots]` (default: none)",
    )


def build_parser() -> Parser:
    p = Parser(
        prog="crossrt",
        description=(
            "Train LeNet5 on MNIST with the reference recipe in PyTorch, export it to ONNX, and time "
            "validation under ONNX Runtime (CPU/CUDA), PyTorch, OpenVINO, torch.compile and an int8 model."
        ),
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    commands = (
        ("train", TrainConfig, "train LeNet5, checkpoint every epoch, export to ONNX"),
        ("export", ExportConfig, "export a checkpoint to ONNX and check parity"),
        ("quantize", QuantizeConfig, "an int8 copy of the ONNX model, for the onnxruntime-int8 rows"),
        ("bench-infer", BenchConfig, "time validation under ONNX Runtime, PyTorch and more runtimes"),
        ("suite", SuiteConfig, "the reference's table for this machine: every mode, train + validation"),
        (
            "loadgen",
            LoadgenConfig,
            "MLPerf LoadGen's scenarios: latency one query at a time, samples/s "
            "offline, the QPS a latency bound allows",
        ),
    )
    for name, cls, short in commands:
        c = sub.add_parser(name, help=short, description=cls.__doc__)
        add_options(c, cls)
        c.set_defaults(config_class=cls)
        if name not in ("export", "quantize", "loadgen"):
            _plots_flag(c)

    r = sub.add_parser(
        "report",
        help="merge result files from any runs and machines into one table",
        description="Merge train, bench-infer and suite JSON files into one table grouped by machine.",
    )
    r.add_argument("files", nargs="+", type=Path, metavar="FILE", help="result JSON files")
    fmt = r.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table (default: a rich table)")
    fmt.add_argument("--csv", action="store_true", help="print CSV (default: a rich table)")
    _plots_flag(r)

    c = sub.add_parser(
        "compare",
        help="two runs side by side: ratio, its 95%% interval, a verdict per row",
        description="Compare every configuration two result files both measured: B's throughput "
        "over A's, a bootstrap 95% interval, and faster / slower / inconclusive (asv's test: Mann-Whitney "
        "U at p < 0.002, or 99% intervals apart where there are too few repeats for it, and beyond the noise band).",
    )
    c.add_argument("a", type=Path, metavar="A", help="the baseline result file")
    c.add_argument("b", type=Path, metavar="B", help="the result file compared with it")
    c.add_argument(
        "--noise",
        type=float,
        default=0.10,
        metavar="F",
        help="run-to-run noise band: B/A within 1 +- F is never faster or slower (default: %(default)s)",
    )
    c.add_argument(
        "--fail-if-slower",
        type=float,
        default=None,
        metavar="PCT",
        help="exit 1 when a row of B is slower by more than PCT%% beyond the noise (a row without an interval, "
        "such as LoadGen's, on its ratio alone) (default: never)",
    )
    c.add_argument(
        "--allow-different-models",
        action="store_true",
        help="hold one model against another (default: refuse results of different models)",
    )

    w = sub.add_parser(
        "show",
        help="lay a saved result out again: every table, every column, at any width",
        description="Show a train, bench-infer, suite or loadgen result file again: its tables, verdicts "
        "and notes. Columns that do not fit go into a second part of a table, never away.",
    )
    w.add_argument("file", type=Path, metavar="FILE", help="a result JSON file")
    w.add_argument("--wide", action="store_true", help="one part per table, as wide as it needs (default: fit)")
    w.add_argument(
        "--columns",
        default=None,
        metavar="NAME[,NAME]",
        help="only these columns, by their heading, beside the row labels (default: all)",
    )

    d = sub.add_parser(
        "doctor",
        help="is this machine ready for the CPU or CUDA mode? each problem with its fix",
        description="Check the installation, the GPU and a real ONNX Runtime session; exit 0 when "
        "the mode is ready, 1 when not.",
    )
    d.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default=None,
        help="the mode to check (default: cuda where a GPU is listed or usable, else cpu)",
    )
    d.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="check this folder of IDX files too (default: say what --dataset auto would use)",
    )
    d.add_argument(
        "--measure-peak",
        action="store_true",
        help="measure the fp32 peaks again, replacing the cached ones (default: show the cached ones)",
    )

    f = sub.add_parser(
        "fetch",
        help="download a dataset into the cache, verifying SHA-256",
        description="Download MNIST or Fashion-MNIST into the cache ($CROSSRT_CACHE).",
    )
    f.add_argument("name", choices=DATASETS[1:], help="dataset to download")
    return p


def launcher(from_shell: bool) -> list[str]:
    """How to start crossrt the way this process was started: `crossrt` when that is on PATH,
    else the real path of the executable, else `python -m crossrt`."""
    exe = sys.argv[0] if from_shell else ""
    if not exe or Path(exe).name == "__main__.py":
        return [sys.executable, "-m", "crossrt"]
    on_path = shutil.which("crossrt")
    return ["crossrt" if on_path and os.path.realpath(on_path) == os.path.realpath(exe) else os.path.realpath(exe)]


def _raise_interrupt(signum, frame):
    stopping.took_signal()
    raise KeyboardInterrupt


def _drop_stdout() -> None:
    """The reader of stdout went away (`crossrt report ... | head`): what is still buffered goes
    nowhere, instead of failing once more as Python exits."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file behind stdout (a test's capture)
        pass


def main(argv: list[str] | None = None) -> int:
    from_shell = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    ascii_safe()  # an ASCII-only terminal (LC_ALL=C) gets look-alikes, not a UnicodeEncodeError
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, or a bad flag (already reported in one line)
        return int(e.code or 0)
    args.argv, args.launcher = argv, launcher(from_shell)
    # SIGTERM (a killed job, a closed terminal) stops as cleanly as Ctrl-C: same handling, and a
    # run stuck in native code is asked to stop too (crossrt.stopping).
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if in_main else None
    previous_int = signal.getsignal(signal.SIGINT)
    if in_main and previous_int is not signal.SIG_IGN:  # a background job's ignored Ctrl-C stays ignored
        signal.signal(signal.SIGINT, _raise_interrupt)
    from . import outcome

    try:
        cls = getattr(args, "config_class", None)
        module = importlib.import_module(f"{__package__}.{COMMANDS[args.command]}")  # the heavy part, now
        with stopping.watched():
            code = getattr(module, "cmd_" + args.command.replace("-", "_"))(args, build(cls, args) if cls else None)
        sys.stdout.flush()  # a reader that went away is noticed here, not as Python exits
        return code
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_FAILED
    except Stopped as stop:
        if in_main:  # saving what finished must not be cut short by a second signal (a launcher's SIGTERM)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return outcome.stopped(stop, args)
    except CrossrtError as e:
        if (rank := this_rank()) is None or rank.main:  # the other ranks would say the same
            outcome.err(str(e))
        return EXIT_USAGE
    except OSError as e:  # a folder that cannot be created, a full disk, a path that is a directory
        outcome.err(f"{e.filename2 or e.filename or ''}: {e.strerror or e}".lstrip(": "))
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("crossrt: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


if __name__ == "__main__":
    sys.exit(main())
