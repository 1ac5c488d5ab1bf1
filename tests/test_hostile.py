"""Hostile files and careless paths (issue 22): nothing overwritten that was not asked for, no
write through a link or into a device, every output checked before the work, nothing from a
file reaching the terminal as a command, no traceback.

Each case runs the real CLI (in this process where it is quick, else as a subprocess) on real
files: copies of a trained model, result files edited as a stranger would, real symlinks, FIFOs
and device nodes. The disk, signal, code-path and download cases are in test_hostile_io.py.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import onnx
import pytest
import torch

from crossrt import checkpoint
from crossrt.cli import main
from crossrt.errors import CrossrtError
from crossrt.files import FolderLock, atomic_write
from crossrt.model import LeNet5

from conftest import canned, python_path, run_cli, run_main, write_dataset


def refused(capsys, argv, needle: str) -> str:
    """main(argv) is a one-line error naming the problem, exit code 2, no traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert needle in err, err
    return err


def refused_cli(out: subprocess.CompletedProcess, needle: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert needle in out.stderr, out.stderr


@pytest.fixture
def exp(trained, workdir) -> Path:
    """A copy of the trained exports/ to damage (the session's own stays whole)."""
    return Path(shutil.copytree(trained, workdir / "exp"))


def snapshot(*paths: Path) -> dict:
    return {p: p.read_bytes() for p in paths}


# ---------------------------------------------------------------------------- 1. outputs that are inputs


def _outputs_that_are_inputs(exp: Path, data: Path):
    """(argv, the input it would have destroyed, what the message names) for each way an output can be an input."""
    os.symlink(exp, exp.parent / "link")
    os.link(exp / "lenet5.pt", exp.parent / "hard.pt")
    suite = exp.parent / "suite" / "cpu-1-thread"
    suite.mkdir(parents=True)
    (suite / "lenet5.pt").write_bytes(b"a checkpoint of an earlier suite")
    quick = ["--epochs", "1", "--batch-size", "60", "--threads", "1", "--data-dir", str(data)]
    return {
        "quantize --out = --model": (
            ["quantize", "--model", f"{exp}/lenet5.onnx", "--out", f"{exp}/lenet5.onnx", "--data-dir", str(data)],
            exp / "lenet5.onnx",
            "is --model",
        ),
        "export --out = --checkpoint": (
            ["export", "--checkpoint", f"{exp}/lenet5.pt", "--out", f"{exp}/lenet5.pt", "--data-dir", str(data)],
            exp / "lenet5.pt",
            "is --checkpoint",
        ),
        "train --json = its checkpoint": (
            ["train", *quick, "--out", str(exp), "--json", f"{exp}/lenet5.pt"],
            exp / "lenet5.pt",
            "is the checkpoint",
        ),
        "train --json = its model, --no-export": (
            ["train", *quick, "--out", str(exp), "--no-export", "--json", f"{exp}/lenet5.onnx"],
            exp / "lenet5.onnx",
            "is the model",
        ),
        "train --json = a data file": (
            ["train", *quick, "--out", str(exp.parent / "o"), "--json", f"{data}/train-images-idx3-ubyte"],
            data / "train-images-idx3-ubyte",
            "is a file of --data-dir",
        ),
        "train --json = its lock file": (
            ["train", *quick, "--out", str(exp), "--json", f"{exp}/.crossrt.lock"],
            exp / ".crossrt.lock",
            "is the lock file",
        ),
        "bench-infer --json = --model": (
            ["bench-infer", "--model", f"{exp}/lenet5.onnx", "--data-dir", str(data), "--json", f"{exp}/lenet5.onnx"],
            exp / "lenet5.onnx",
            "is --model",
        ),
        "bench-infer --json = its training record": (
            [
                "bench-infer",
                "--model",
                f"{exp}/lenet5.onnx",
                "--data-dir",
                str(data),
                "--json",
                f"{exp}/lenet5.train.json",
            ],
            exp / "lenet5.train.json",
            "is the training record",
        ),
        "bench-infer --json = --checkpoint, by a hard link": (
            [
                "bench-infer",
                "--model",
                f"{exp}/lenet5.onnx",
                "--data-dir",
                str(data),
                "--json",
                str(exp.parent / "hard.pt"),
            ],
            exp / "lenet5.pt",
            "is --checkpoint",
        ),
        "quantize --out through a linked folder": (
            [
                "quantize",
                "--model",
                f"{exp}/lenet5.onnx",
                "--out",
                str(exp.parent / "link" / "lenet5.onnx"),
                "--data-dir",
                str(data),
            ],
            exp / "lenet5.onnx",
            "is --model",
        ),
        "suite --json = a mode's checkpoint": (
            [
                "suite",
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--min-time",
                "0",
                "--data-dir",
                str(data),
                "--out",
                str(exp.parent / "suite"),
                "--json",
                str(suite / "lenet5.pt"),
            ],
            suite / "lenet5.pt",
            "is a file of --out",
        ),
    }


CASES_1 = [
    "quantize --out = --model",
    "export --out = --checkpoint",
    "train --json = its checkpoint",
    "train --json = its model, --no-export",
    "train --json = a data file",
    "train --json = its lock file",
    "bench-infer --json = --model",
    "bench-infer --json = its training record",
    "bench-infer --json = --checkpoint, by a hard link",
    "quantize --out through a linked folder",
    "suite --json = a mode's checkpoint",
]


@pytest.mark.parametrize("case", CASES_1)
def test_an_output_that_is_an_input_is_refused_before_any_work(capsys, exp, tiny_data, case):
    data = Path(shutil.copytree(tiny_data, exp.parent / "data"))
    (exp / ".crossrt.lock").write_text("1")
    argv, victim, needle = _outputs_that_are_inputs(exp, data)[case]
    before = snapshot(victim)
    err = refused(capsys, argv, needle)
    assert "it would be overwritten" in err
    assert snapshot(victim) == before
    assert not (exp.parent / "results").exists()  # refused before any work: nothing saved


# ---------------------------------------------------------------------------- 2. links and special files


def _device(path: Path) -> Path | None:
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # a /dev/null of our own
    except (PermissionError, OSError):
        return None
    return path


def test_the_lock_is_never_a_link_or_a_second_name_of_a_file(capsys, workdir, tiny_data):
    victim = workdir / "precious.txt"
    victim.write_text("not crossrt's")
    for how, make in (("is a symbolic link", os.symlink), ("has 2 names (a hard link)", os.link)):
        out = workdir / f"out-{how[:6].strip()}"
        out.mkdir()
        make(victim, out / ".crossrt.lock")
        refused(
            capsys,
            [
                "train",
                "--data-dir",
                str(tiny_data),
                "--epochs",
                "1",
                "--batch-size",
                "60",
                "--out",
                str(out),
                "--no-export",
            ],
            "the lock file",
        )
        assert victim.read_text() == "not crossrt's" and not (out / "lenet5.pt").exists()
    # A link planted after every check: the lock itself opens nothing through it.
    late = workdir / "late"
    late.mkdir()
    os.symlink(victim, late / ".crossrt.lock")
    with pytest.raises(CrossrtError, match="is a symbolic link"):
        FolderLock(late).__enter__()
    assert victim.read_text() == "not crossrt's"


def test_no_write_replaces_a_link_a_fifo_or_a_device(capsys, workdir, tiny_data, trained):
    victim = workdir / "precious.txt"
    victim.write_text("not crossrt's")
    os.symlink(victim, workdir / "link.json")
    os.mkfifo(workdir / "fifo.json")
    specials = [workdir / "link.json", workdir / "fifo.json"] + [d for d in [_device(workdir / "null")] if d]
    quick = ["--data-dir", str(tiny_data), "--epochs", "1", "--batch-size", "60", "--threads", "1", "--no-export"]
    for path in specials:
        kind = os.lstat(path).st_mode
        refused(capsys, ["train", *quick, "--out", str(workdir / "o"), "--json", str(path)], "not a regular file")
        refused(
            capsys,
            ["bench-infer", "--model", str(trained / "lenet5.onnx"), "--data-dir", str(tiny_data), "--json", str(path)],
            "not a regular file",
        )
        assert os.lstat(path).st_mode == kind  # still the link, the FIFO, the device
    out = workdir / "o2"
    out.mkdir()
    os.symlink(victim, out / "lenet5.train.json")  # the run record, a file no flag names
    refused(capsys, ["train", *quick, "--out", str(out)], "the run record")
    assert not (out / "lenet5.pt").exists()
    with pytest.raises(CrossrtError, match="is a symbolic link"):  # and the writer itself, whoever calls it
        atomic_write(workdir / "link.json", "{}")
    assert victim.read_text() == "not crossrt's" and (workdir / "link.json").is_symlink()


# ---------------------------------------------------------------------------- 3. refused late


@pytest.mark.parametrize("where", ["lenet5.onnx", "lenet5.pt", "lenet5.train.json"])
def test_every_output_of_train_is_checked_before_the_data_is_read(capsys, workdir, where):
    broken = write_dataset(workdir / "broken", n_train=60, n_test=20)
    (broken / "train-images-idx3-ubyte").write_bytes(b"not IDX: reading the data would fail first")
    out = workdir / "out"
    (out / where).mkdir(parents=True)
    refused(
        capsys,
        ["train", "--data-dir", str(broken), "--epochs", "1", "--out", str(out)],
        f"{out / where}: is a directory",
    )
    assert sorted(p.name for p in out.iterdir()) == [where] and not (workdir / "results").exists()


def test_plot_files_and_the_suites_mode_folders_are_checked_before_any_work(capsys, workdir, tiny_data, trained):
    (workdir / "plots" / "learning_curves.png").mkdir(parents=True)
    refused(
        capsys,
        ["report", str(trained / "lenet5.train.json"), "--plots", str(workdir / "plots")],
        "learning_curves.png: is a directory",
    )
    assert capsys.readouterr().out == ""  # no table first
    mode = workdir / "suite" / "cpu-1-thread"
    (mode / "lenet5.onnx").mkdir(parents=True)
    refused(
        capsys,
        [
            "suite",
            "--data-dir",
            str(tiny_data),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--min-time",
            "0",
            "--out",
            str(workdir / "suite"),
        ],
        "lenet5.onnx: is a directory",
    )
    assert not (mode / "lenet5.pt").exists()


# ---------------------------------------------------------------------------- 6. hostile result files

ESC = "\x1b]0;pwned\x07\x1b[2J\x1b[31m"  # retitle the terminal, clear it, turn it red
BIDI = "\u202eevil"  # shows the rest reversed


@pytest.fixture
def bench_json() -> Path:
    return canned("bench.json")


@pytest.fixture
def train_json() -> Path:
    return canned("train.json")


def _edited(src: Path, dest: Path, edit) -> Path:
    data = json.loads(src.read_text())
    edit(data)
    dest.write_text(json.dumps(data))
    return dest


STRANGE_STRINGS = {
    "markup": "x[/]y[bold]z[link=file:///etc/passwd]",
    "escapes": ESC,
    "bidi": BIDI,
    "newlines": "a\nb\r\tc",
    "emoji code": ":skull:",
}
TRAIN_FIELDS = ("dataset", "device", "arch", "precision", "created", "math")
BENCH_FIELDS = ("dataset", "model")


def _strange_files(folder: Path, text: str, train_json: Path, bench_json: Path) -> tuple[Path, Path]:
    """A train and a bench-infer result whose strings are all `text`, in folder."""

    def train_edit(d):
        for k in TRAIN_FIELDS:
            d[k] = text
        d["environment"]["cpu_model"] = text

    def bench_edit(d):
        for k in BENCH_FIELDS:
            d[k] = text
        for r in d["runs"]:
            r["runtime"], r["provider"], r["io"] = text, text, text

    folder.mkdir(parents=True)
    return _edited(train_json, folder / "t.json", train_edit), _edited(bench_json, folder / "b.json", bench_edit)


@pytest.mark.parametrize("strange", STRANGE_STRINGS)
def test_strings_from_result_files_are_shown_as_they_are(train_json, bench_json, tmp_path, strange):
    text = STRANGE_STRINGS[strange]
    folder = tmp_path / "a[" / "]b" if strange == "markup" else tmp_path / f"{ESC}dir"  # the file's path too
    t, b = _strange_files(folder, text, train_json, bench_json)
    for fmt in ([], ["--markdown"], ["--csv"]):
        out = run_main("report", str(t), str(b), *fmt, columns=80)
        assert out.code == 0 and out.err == "", out.err
        for c in "\x1b\x07\r\u202e":
            assert c not in out.out, (fmt, c)
        if strange == "markup":
            assert "x[/]y" in out.out  # shown, not read as markup
        if strange == "emoji code":
            assert ":skull:" in out.out
    same = run_main("compare", str(b), str(b))
    assert same.code == 0 and "\x1b" not in same.out, same.err
    if strange == "markup":
        assert "[/]" in same.out


def test_no_escape_byte_from_a_result_file_reaches_a_real_stdout(train_json, bench_json, tmp_path):
    """The same, through the real command's own stdout (a pipe, as a terminal's is a file)."""
    t, b = _strange_files(tmp_path / f"{ESC}dir", ESC + BIDI, train_json, bench_json)
    for argv in (["report", str(t), str(b)], ["show", str(b)], ["compare", str(b), str(b)]):
        out = run_cli(*argv, cwd=tmp_path, env={"COLUMNS": "80"})
        assert out.returncode == 0 and out.stderr == "", out.stderr
        assert not set("\x1b\x07\u202e") & set(out.stdout) and "\\x1b" in out.stdout


def test_a_training_record_beside_the_model_is_shown_with_the_same_care(trained, tiny_data, workdir, capsys):
    """bench-infer shows the training record beside the model: the same care as report's."""
    model = Path(shutil.copytree(trained, workdir / "exp"))
    _edited(trained / "lenet5.train.json", model / "lenet5.train.json", lambda d: d.update(dataset=ESC, arch=BIDI))
    argv = ["bench-infer", "--model", str(model / "lenet5.onnx"), "--runtimes", "onnxruntime", "--threads", "1"]
    assert main([*argv, "--min-time", "0", "--data-dir", str(tiny_data)]) == 0
    out = capsys.readouterr().out
    assert "Training vs validation cost" in out and not set("\x1b\u202e") & set(out) and "\\x1b" in out


def test_csv_cells_are_never_spreadsheet_formulas(trained, tmp_path, capsys):
    t = _edited(
        trained / "lenet5.train.json",
        tmp_path / "t.json",
        lambda d: d.update(dataset='=HYPERLINK("http://evil","click")'),
    )
    assert main(["report", "--csv", str(t)]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert "'=HYPERLINK" in row and ",=HYPERLINK" not in row


def _deep(n: int) -> str:
    return '{"kind": "train", "schema_version": 8, "x": ' + "[" * n + "]" * n + "}"


def _set_epoch(key, value):
    def edit(d):
        d["epochs"][0][key] = value

    return edit


MALFORMED = {
    "100,000 deep": (lambda src, p: p.write_text(_deep(100_000)), "nested too deeply"),
    "100 deep": (lambda src, p: p.write_text(_deep(100)), "nested more than 64 deep"),
    "5,000-digit integer": (
        lambda src, p: p.write_text(src.read_text().replace('"threads": 1', '"threads": ' + "9" * 5000, 1)),
        "Exceeds the limit",
    ),
    "4,000-digit integer": (
        lambda src, p: p.write_text(src.read_text().replace('"threads": 1', '"threads": ' + "9" * 4000, 1)),
        "beyond any figure crossrt measures",
    ),
    "NaN timing": (lambda src, p: _edited(src, p, _set_epoch("train_s", float("nan"))), "NaN is no JSON number"),
    "Infinity timing": (
        lambda src, p: _edited(src, p, _set_epoch("valid_s", float("inf"))),
        "Infinity is no JSON number",
    ),
    "1e400 timing": (
        lambda src, p: p.write_text(src.read_text().replace('"train_s": ', '"train_s": 1e400, "x": ', 1)),
        "beyond any figure",
    ),
    "1e308 timings": (
        lambda src, p: _edited(src, p, lambda d: [e.update(train_s=1e308) for e in d["epochs"]]),
        "beyond any figure",
    ),
    "negative time": (lambda src, p: _edited(src, p, _set_epoch("train_s", -1.0)), "a duration cannot be negative"),
    "zero times": (
        lambda src, p: _edited(src, p, lambda d: d.update(epochs=[{**d["epochs"][0], "train_s": 0}] * 3)),
        None,
    ),
    "environment.gpu a string": (
        lambda src, p: _edited(src, p, lambda d: d.update(device="cuda") or d["environment"].update(gpu="H100")),
        "environment['gpu'] is 'H100', expected dict",
    ),
    "gpu without a name": (
        lambda src, p: _edited(src, p, lambda d: d.update(device="cuda") or d["environment"].update(gpu={"count": 1})),
        "environment['gpu']['name'] is None",
    ),
    "cpu_cores a list": (
        lambda src, p: _edited(src, p, lambda d: d["environment"].update(cpu_cores=[1])),
        "environment['cpu_cores']",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_numbers_types_and_depths_are_one_line_and_no_warning(train_json, tmp_path, case):
    make, needle = MALFORMED[case]
    path = tmp_path / "r.json"
    make(train_json, path)
    for argv in (["report", str(path)], ["compare", str(path), str(path)], ["report", "--csv", str(path)]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning would be a traceback under PYTHONWARNINGS=error
            out = run_main(*argv)
        if needle is None:  # not wrong, only strange: shown, without a warning
            assert out.code == 0 and out.err == "", out.err
            continue
        assert out.code == 2 and "Traceback" not in out.err and len(out.err.strip().splitlines()) == 1, out.err
        assert needle in out.err, out.err


def test_a_result_file_far_too_large_is_not_read(trained, tmp_path, capsys, monkeypatch):
    import crossrt.files

    monkeypatch.setattr(crossrt.files, "MAX_RESULT_BYTES", 1000)
    refused(capsys, ["report", str(trained / "lenet5.train.json")], "far larger than any crossrt result")


def test_an_error_naming_a_hostile_path_cannot_drive_the_terminal(tmp_path):
    out = run_main("report", str(tmp_path / f"{ESC}.json"))
    assert out.code == 2 and len(out.err.strip().splitlines()) == 1 and "no such result" in out.err
    assert "\x1b" not in out.err and "\\x1b" in out.err


def test_plots_take_any_name(trained, tmp_path, capsys):
    t = _edited(trained / "lenet5.train.json", tmp_path / "t.json", lambda d: d.update(dataset=r"$\foo^{$" + ESC))
    assert main(["report", str(t), "--plots", str(tmp_path / "plots")]) == 0, capsys.readouterr().err
    assert (tmp_path / "plots" / "learning_curves.png").stat().st_size > 0


# ---------------------------------------------------------------------------- 7. hostile checkpoints and data


def _damaged(exp: Path, edit) -> Path:
    state = torch.load(exp / "lenet5.pt", weights_only=True)
    edit(state)
    torch.save(state, exp / "lenet5.pt")
    return exp / "lenet5.pt"


def _other_shape(state):
    state["model"] = checkpoint.weights(LeNet5("lenet5-classic"))


CHECKPOINTS = {
    "weights of another shape": (_other_shape, "its weights do not fit"),
    "no config": (lambda s: s.pop("config"), "the checkpoint['config'] is None"),
    "unknown arch": (lambda s: s["config"].update(arch="resnet152"), "unknown arch 'resnet152'"),
    "epochs not a list": (lambda s: s.update(epochs="many"), "the checkpoint['epochs']"),
    "an epoch without its accuracy": (lambda s: s["epochs"][0].pop("valid_accuracy"), "valid_accuracy"),
    "dataset a list": (lambda s: s.update(dataset=["mnist"]), "the checkpoint['dataset']"),
    "a tensor missing": (lambda s: s["model"].pop("OUT.bias"), "its weights do not fit"),
}


@pytest.mark.parametrize("case", CHECKPOINTS)
def test_hostile_checkpoints_are_one_line(capsys, exp, tiny_data, case):
    edit, needle = CHECKPOINTS[case]
    _damaged(exp, edit)
    refused(capsys, ["export", "--checkpoint", str(exp / "lenet5.pt"), "--data-dir", str(tiny_data)], needle)
    refused(
        capsys,
        [
            "bench-infer",
            "--model",
            str(exp / "lenet5.onnx"),
            "--data-dir",
            str(tiny_data),
            "--threads",
            "1",
            "--min-time",
            "0",
        ],
        needle,
    )
    refused(
        capsys,
        [
            "train",
            "--resume",
            "--epochs",
            "3",
            "--batch-size",
            "60",
            "--threads",
            "1",
            "--data-dir",
            str(tiny_data),
            "--out",
            str(exp),
        ],
        needle,
    )
    assert not (exp.parent / "results").exists()


def _bomb(path: Path, images: int, inflated_gib: int) -> Path:
    """A gzip IDX file whose header claims `images` images, with (at most) 60 images of data and
    then inflated_gib GiB of zeros: gzip members of 64 MiB each, a few MB on disk in all."""
    import gzip
    import struct
    import zlib

    zeros = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = zeros.compress(bytes(2**26)) + zeros.flush()
    with open(path, "wb") as f:
        f.write(gzip.compress(struct.pack(">IIII", 0x0803, images, 28, 28) + bytes(min(images, 60) * 784)))
        for _ in range(16 * inflated_gib):
            f.write(member)
    return path


def test_a_gzip_bomb_in_the_training_data_is_refused_within_a_memory_limit(tmp_path):
    """Under a 3 GiB address-space limit (ulimit -v) an IDX file that inflates to 4 GiB must end in
    one line, not a MemoryError, in the reader and in `crossrt train`."""
    import resource

    data = write_dataset(tmp_path / "data", n_train=60, n_test=20)
    (data / "train-images-idx3-ubyte").unlink()
    _bomb(data / "train-images-idx3-ubyte.gz", 60, 4)

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))

    env = {**os.environ, "PYTHONPATH": python_path()}
    code = f"from crossrt.data import read_idx\nread_idx({str(data / 'train-images-idx3-ubyte.gz')!r}, 3)"
    reader = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=limit, env=env)
    assert "MemoryError" not in reader.stderr and "DataError" in reader.stderr, reader.stderr
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "crossrt",
            "train",
            "--data-dir",
            str(data),
            "--epochs",
            "1",
            "--batch-size",
            "60",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        env=env,
        cwd=tmp_path,
    )
    refused_cli(out, "train-images-idx3-ubyte.gz: more than ")
    assert "unexpected bytes after the data" in out.stderr


def test_an_idx_header_that_claims_more_than_the_memory_is_refused_before_inflating(tmp_path):
    from crossrt.data import read_idx
    from crossrt.errors import DataError

    with pytest.raises(DataError, match="its header claims .* more than the .* bytes of memory available"):
        read_idx(_bomb(tmp_path / "claims-idx3-ubyte.gz", 2**32 - 1, 0), 3)


# ---------------------------------------------------------------------------- 8. foreign models


def _foreign(path: Path, input_name: str = "input") -> Path:
    """A LeNet5 exported by someone else: other weights, no crossrt metadata."""
    torch.manual_seed(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LeNet5().eval(),
            (torch.zeros(1, 1, 28, 28),),
            str(path),
            dynamo=False,
            input_names=[input_name],
            dynamic_axes={input_name: {0: "n"}},
        )
    return path


def test_a_foreign_model_beside_a_checkpoint_is_never_held_against_its_weights(capsys, exp, tiny_data, workdir):
    """Beside a LeNet5 checkpoint, a LeNet5 of other weights is never timed against that
    checkpoint's PyTorch rows (which would only fail afterwards, on accuracy)."""
    _foreign(exp / "lenet5.onnx")
    bench = [
        "bench-infer",
        "--model",
        str(exp / "lenet5.onnx"),
        "--data-dir",
        str(tiny_data),
        "--threads",
        "1",
        "--min-time",
        "0",
        "--json",
        "b.json",
    ]
    # Another exporter's file: no PyTorch rows, and the reason in the result.
    assert main(bench) == 0
    result = json.loads((workdir / "b.json").read_text())
    assert {r["runtime"] for r in result["runs"]} == {"onnxruntime"}
    assert any(s["runtime"] == "pytorch" and "not a crossrt LeNet5 export" in s["reason"] for s in result["skipped"])
    # One that says crossrt made it but carries no fingerprint of its weights: refused before any work.
    proto = onnx.load(str(exp / "lenet5.onnx"))
    onnx.helper.set_model_props(proto, {"producer": "crossrt", "dataset": "data"})
    onnx.save(proto, str(exp / "lenet5.onnx"))
    (workdir / "b.json").unlink()
    refused(capsys, bench, "carries no weights fingerprint")
    assert not (workdir / "b.json").exists()


def test_a_model_with_its_own_input_name_is_quantized(capsys, workdir, tiny_data):
    model = _foreign(workdir / "data-input.onnx", input_name="data")
    assert main(["quantize", "--model", str(model), "--data-dir", str(tiny_data)]) == 0
    assert onnx.load(str(workdir / "data-input.int8.onnx")).graph.input[0].name == "data"


# ---------------------------------------------------------------------------- 9. terminals


def _every_figure_whole(text: str, bench_json: Path) -> None:
    for r in json.loads(bench_json.read_text())["runs"]:
        assert f"{r['samples_per_s']:,.0f}" in text  # every figure whole, on its line
    assert "samples/s:" in text  # a plain `name: value` list


@pytest.mark.parametrize("columns", [0, 1, 5, 20])
def test_any_width_shows_every_figure(train_json, bench_json, tiny_data, workdir, columns):
    out = run_main("report", str(train_json), str(bench_json), columns=columns)
    assert out.code == 0 and out.err == "", out.err
    _every_figure_whole(out.out, bench_json)
    train = run_main(*_QUICK_TRAIN, "--data-dir", str(tiny_data), "--out", "o", "--no-export", columns=columns)
    assert train.code == 0 and "final accuracy" in train.out and "epoch   1" in train.out, train.err


def test_a_terminal_of_no_width_shows_every_figure(train_json, bench_json, tmp_path):
    """COLUMNS=0, as the real command reads it when it starts."""
    out = run_cli("report", str(train_json), str(bench_json), cwd=tmp_path, env={"COLUMNS": "0"})
    assert out.returncode == 0 and out.stderr == "", out.stderr
    _every_figure_whole(out.stdout, bench_json)


_QUICK_TRAIN = ("train", "--epochs", "1", "--batch-size", "60", "--threads", "1")
ASCII_ENV = {"LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii", "COLUMNS": "80"}


def test_an_ascii_terminal_takes_unicode_paths_and_crossrts_own_signs(train_json, bench_json, tmp_path):
    folder = tmp_path / "modèle-é"
    folder.mkdir()
    shown = ""
    plots = ["--plots", str(folder / "plots")]  # report names the figures it wrote, in the unicode folder
    for argv in (["report", str(canned("train.json", folder)), *plots], ["show", str(canned("bench.json", folder))]):
        out = run_cli(*argv, cwd=tmp_path, env=ASCII_ENV)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        out.stdout.encode("ascii")  # nothing the terminal cannot show
        shown += out.stdout
    assert "mod\\xe8le-\\xe9" in shown and "±" not in shown and "+-" in shown  # the path readable, the signs ASCII


@pytest.mark.slow
def test_an_ascii_terminal_takes_export_and_bench_infer_too(trained, tiny_data, tmp_path):
    exp = Path(shutil.copytree(trained, tmp_path / "modèle-é"))
    shown = ""
    for argv in (
        ["export", "--checkpoint", str(exp / "lenet5.pt"), "--data-dir", str(tiny_data)],
        [
            "bench-infer",
            "--model",
            str(exp / "lenet5.onnx"),
            "--data-dir",
            str(tiny_data),
            "--threads",
            "1",
            "--min-time",
            "0",
        ],
    ):
        out = run_cli(*argv, cwd=tmp_path, env=ASCII_ENV)
        assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
        out.stdout.encode("ascii")
        shown += out.stdout
    assert "mod\\xe8le-\\xe9" in shown


def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path):
    env = {**os.environ, "PYTHONPATH": python_path()}
    for fmt in ([], ["--csv"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "crossrt", "report", *fmt, str(canned("train.json"))],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        proc.stdout.close()  # `| true`: nobody reads
        err = proc.stderr.read()
        proc.wait(timeout=120)
        assert err == "" and proc.returncode == 1, err
