"""Full disks, signals at the wrong moment, code from the working folder, downloads that never
end, and damaged caches (issue 22): what is on disk is said as it is, and nothing ends in a
traceback or hangs.

A full disk is a real file-size limit (RLIMIT_FSIZE, `ulimit -f`) on a real crossrt process, or
a real 1 MiB tmpfs where this machine lets us mount one; signals are real signals to real
processes; downloads come from real servers on 127.0.0.1 that drip, never stop or break off.
"""

from __future__ import annotations

import json
import os
import resource
import shlex
import shutil
import signal
import socketserver
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import crossrt.checkpoint
from crossrt import checkpoint
from crossrt import fetch as fetch_module
from crossrt.cli import main
from crossrt.errors import DataError
from crossrt.files import atomic_file, atomic_write

from conftest import ROOT, python_path, run_cli, run_main, seed_peaks

QUICK = ["--batch-size", "60", "--threads", "1"]


def crossrt_env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": python_path(), "COLUMNS": "200", "PYTHONUNBUFFERED": "1", **extra}


def run_limited(args, cwd: Path, limit: int, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python -m crossrt args` with files limited to `limit` bytes (Python ignores SIGXFSZ, so a
    write past it fails with EFBIG, as on a disk that is full for that file)."""

    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "crossrt", *args],
        cwd=cwd,
        env=crossrt_env(),
        capture_output=True,
        text=True,
        preexec_fn=set_limit,
        timeout=timeout,
    )


def refused_cli(out: subprocess.CompletedProcess, needle: str) -> None:
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert needle in out.stderr, out.stderr


def no_temps(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------- 4. full disks


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_says_which_file_what_it_needs_and_what_is_kept(tmp_path, tiny_data):
    out = tmp_path / "exp"
    fresh = run_limited(
        ["train", "--data-dir", str(tiny_data), "--epochs", "2", *QUICK, "--out", str(out)], tmp_path, 2**20
    )
    err = fresh.stderr
    assert fresh.returncode == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"epoch 1: {out / 'lenet5.pt'} could not be written (File too large; it needs " in err
    assert "the file size limit (ulimit -f) is 1.0 MiB" in err and "no checkpoint of this run was written" in err
    assert "Resume with" not in err and "partial results saved to results/train-" in err  # epoch 1 finished
    assert not (out / "lenet5.pt").exists() and no_temps(out)

    # One epoch whole on disk, then the disk is full for the second: that one is said to be kept.
    assert main(["train", "--data-dir", str(tiny_data), "--epochs", "1", *QUICK, "--out", str(out)]) == 0
    resumed = run_limited(
        ["train", "--data-dir", str(tiny_data), "--epochs", "3", *QUICK, "--out", str(out), "--resume"], tmp_path, 2**20
    )
    err = resumed.stderr
    assert resumed.returncode == 1 and "Traceback" not in err, err
    assert (
        f"epoch 2: {out / 'lenet5.pt'} could not be written" in err and f"{out / 'lenet5.pt'} keeps 1 epoch(s)" in err
    )
    assert len(checkpoint.load(out / "lenet5.pt")["epochs"]) == 1 and no_temps(out)
    hint = shlex.split(err.split("Resume with: ")[1].strip())  # once there is room again, it runs as printed
    assert subprocess.run(hint, cwd=tmp_path, env=crossrt_env(), capture_output=True).returncode == 0
    assert len(checkpoint.load(out / "lenet5.pt")["epochs"]) == 3


@pytest.mark.slow
def test_a_model_or_a_result_that_does_not_fit_is_named(tmp_path, trained, tiny_data):
    exp = Path(shutil.copytree(trained, tmp_path / "exp"))
    before = (exp / "lenet5.onnx").read_bytes()
    out = run_limited(
        ["export", "--checkpoint", str(exp / "lenet5.pt"), "--data-dir", str(tiny_data)], tmp_path, 100_000
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert f"{exp / 'lenet5.onnx'}: could not be written (File too large; it needs " in out.stderr, out.stderr
    assert "the previous lenet5.onnx is kept" in out.stderr and (exp / "lenet5.onnx").read_bytes() == before
    bench = run_limited(
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
            "--runtimes",
            "onnxruntime",
        ],
        tmp_path,
        2000,
    )
    assert bench.returncode == 2 and "Traceback" not in bench.stderr, bench.stderr
    assert "results/bench-infer-" in bench.stderr and "could not be written (File too large" in bench.stderr
    assert no_temps(exp) and no_temps(tmp_path / "results")


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB filesystem (tmpfs), where this machine lets us mount one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (not root?)")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_says_how_much_room_there_is(tiny_disk, workdir, tiny_data, capsys):
    out = tiny_disk / "exp"
    assert main(["train", "--data-dir", str(tiny_data), "--epochs", "2", *QUICK, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{out / 'lenet5.pt'} could not be written (No space left on device" in err
    assert "free there" in err and "no checkpoint of this run was written" in err and no_temps(out)


# ---------------------------------------------------------------------------- 5. signals at the wrong moment


def _interrupt_checkpoint_write(monkeypatch, n: int):
    """A Ctrl-C in the middle of writing the nth checkpoint: half its bytes are in the temp file."""
    calls = []

    def write(path, data):
        calls.append(path)
        if len(calls) == n:
            with atomic_file(path, len(data)) as f:
                f.write(data[: len(data) // 2])
                raise KeyboardInterrupt
        atomic_write(path, data)

    monkeypatch.setattr(crossrt.checkpoint, "atomic_write", write)


@pytest.mark.parametrize("earlier", [False, True])
def test_a_signal_while_the_first_checkpoint_is_written_offers_no_resume(
    capsys, workdir, tiny_data, monkeypatch, earlier
):
    out = workdir / "exp"
    if earlier:  # a checkpoint of an earlier run is there: this run's resume would continue that one
        assert main(["train", "--data-dir", str(tiny_data), "--epochs", "1", *QUICK, "--out", str(out)]) == 0
        capsys.readouterr()
    _interrupt_checkpoint_write(monkeypatch, 1)
    assert (
        main(["train", "--data-dir", str(tiny_data), "--epochs", "3", *QUICK, "--out", str(out), "--seed", "7"]) == 130
    )
    err = capsys.readouterr().err
    assert (
        "Traceback" not in err
        and "interrupted after 1 completed epoch(s); no checkpoint of this run was written" in err
    )
    assert ("is from an earlier run" in err) == earlier and "Resume with" not in err and no_temps(out)


def test_a_signal_while_a_later_checkpoint_is_written_says_what_the_file_holds(capsys, workdir, tiny_data, monkeypatch):
    out = workdir / "exp"
    _interrupt_checkpoint_write(monkeypatch, 2)
    args = ["train", "--data-dir", str(tiny_data), "--epochs", "3", *QUICK, "--out", str(out)]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted after 2 completed epoch(s)" in err and f"{out / 'lenet5.pt'} keeps 1 epoch(s)" in err
    assert len(checkpoint.load(out / "lenet5.pt")["epochs"]) == 1 and no_temps(out)
    hint = shlex.split(err.split("Resume with: ")[1].strip())  # run as printed, here in this process
    monkeypatch.undo()
    assert hint[:3] == [sys.executable, "-m", "crossrt"] and main(hint[3:]) == 0
    assert len(checkpoint.load(out / "lenet5.pt")["epochs"]) == 3


def _popen(args, cwd: Path, **kw) -> subprocess.Popen:
    """crossrt in a session of its own, so that a signal can go to its whole process group, as
    Ctrl-C in a terminal does."""
    return subprocess.Popen(
        [sys.executable, "-m", "crossrt", *args],
        cwd=cwd,
        env=crossrt_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,
    )


def _ctrl_c_when(proc: subprocess.Popen, line_starts: str) -> tuple[str, str]:
    out = []
    for line in proc.stdout:
        out.append(line)
        if line.strip().startswith(line_starts):
            os.killpg(proc.pid, signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=120)
    return "".join(out) + rest, err


def _children(pid: int) -> list[str]:
    """The isolated children of pid (Linux's /proc): multiprocessing's, or crossrt's own."""
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [
            k
            for k in kids
            if any(w in Path(f"/proc/{k}/cmdline").read_bytes() for w in (b"multiprocessing", b"crossrt.isolate"))
        ]
    except OSError:
        return []


def _booting(pid: int) -> bool:
    """A spawned child of pid is still starting: it is loading torch to unpickle what it is to run."""
    for kid in _children(pid):
        try:
            if "libtorch" in Path(f"/proc/{kid}/maps").read_text():
                return True
        except OSError:
            pass
    return False


def _ctrl_c_when_a_child_starts(proc: subprocess.Popen) -> str:
    """Ctrl-C to the whole group while crossrt's first isolated child is still starting."""
    t0 = time.monotonic()
    while not _booting(proc.pid) and proc.poll() is None and time.monotonic() - t0 < 120:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGINT)
    return proc.communicate(timeout=120)[1]


@pytest.mark.slow
def test_ctrl_c_during_the_suites_validation_keeps_the_trained_mode(tmp_path, tiny_data):
    proc = _popen(
        [
            "suite",
            "--data-dir",
            str(tiny_data),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--min-time",
            "5",
            "--out",
            str(tmp_path / "s"),
            "--json",
            "suite.json",
        ],
        tmp_path,
    )
    out, err = _ctrl_c_when(proc, "cpu 1 thread: validation")  # an isolated child is starting now
    assert proc.returncode == 130 and "Traceback" not in err and "Error" not in err, err
    assert "kept as far as it got: cpu 1 thread" in err
    result = json.loads((tmp_path / "suite.json").read_text())
    assert [m["mode"] for m in result["modes"]] == ["cpu 1 thread"] and result["modes"][0]["train"]["complete"]


@pytest.mark.slow
@pytest.mark.parametrize("repeat", range(3))
def test_ctrl_c_while_an_isolated_child_starts_shows_no_traceback(trained, tiny_data, tmp_path, repeat):
    proc = _popen(
        [
            "bench-infer",
            "--model",
            str(trained / "lenet5.onnx"),
            "--data-dir",
            str(tiny_data),
            "--threads",
            "1,2",
            "--isolate",
            "--min-time",
            "5",
        ],
        tmp_path,
    )
    err = _ctrl_c_when_a_child_starts(proc)
    assert proc.returncode == 130 and "Traceback" not in err and "Error" not in err, err
    assert "partial results saved" in err


def test_a_child_whose_parent_stopped_before_handing_over_its_work_exits_quietly():
    """The race behind a rare traceback under load: Python raises a Ctrl-C in Popen's own code,
    after the fork, so the parent never knows its child, closes the socket, and the child reads
    nothing. Here the same child (isolate's own start line) gets a socket closed at once."""
    import socket

    mine, theirs = socket.socketpair()
    boot = f"from crossrt.isolate import _child_main; _child_main({theirs.fileno()})"
    proc = subprocess.Popen(
        [sys.executable, "-c", boot],
        pass_fds=(theirs.fileno(),),
        env=crossrt_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    theirs.close()
    mine.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out == err == b"", err


def test_a_temp_file_of_a_killed_write_is_removed_by_the_next_write(workdir, tiny_data):
    out = workdir / "exp"
    out.mkdir()
    code = (
        "import sys, time\nfrom crossrt.files import atomic_file\nwith atomic_file(sys.argv[1]) as f:\n"
        "    f.write(b'half a checkpoint'); f.flush(); print('writing', flush=True); time.sleep(600)"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", code, str(out / "lenet5.pt")], env=crossrt_env(), stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout.readline() == "writing\n"
    writer.kill()  # SIGKILL: no cleanup of its own runs
    writer.wait()
    killed = list(out.glob(".lenet5.pt.*.tmp"))
    assert len(killed) == 1
    old = out / ".lenet5.onnx.0123abcd.tmp"  # crossrt's temp name before it carried the pid, a day old
    old.write_bytes(b"x")
    os.utime(old, (time.time() - 86400,) * 2)
    live = out / f".run.json.{os.getpid()}.0123abcd.tmp"  # a live writer's (this process's)
    live.write_bytes(b"being written")
    other = out / ".notes.tmp"  # not crossrt's
    other.write_text("mine")
    assert main(["train", "--data-dir", str(tiny_data), "--epochs", "1", *QUICK, "--out", str(out)]) == 0
    assert not killed[0].exists() and not old.exists() and live.exists() and other.exists()


# ---------------------------------------------------------------------------- 10. caches


def test_a_cache_that_is_a_file_is_named_as_the_cache(trained, tiny_data, workdir, monkeypatch):
    (workdir / "cache").write_text("not a folder")
    monkeypatch.setenv("CROSSRT_CACHE", str(workdir / "cache" / "sub"))
    for argv in (
        ["fetch", "mnist"],
        ["bench-infer", "--model", str(trained / "lenet5.onnx"), "--data-dir", str(tiny_data)],
        ["train", "--data-dir", str(tiny_data), "--epochs", "1", "--out", "o"],
    ):
        out = run_main(*argv)
        assert out.code == 2 and "Traceback" not in out.err and len(out.err.strip().splitlines()) == 1, out.err
        assert f"the cache {workdir / 'cache' / 'sub'} ($CROSSRT_CACHE): {workdir / 'cache'} is a file" in out.err


def _peak_cache_entries(cache: Path) -> dict:
    return json.loads((cache / "peaks.json").read_text())


DAMAGED_PEAKS = {
    "peak 0": {"peak": 0},
    "negative": {"peak": -5.0},
    "a string": {"peak": "fast"},
    "NaN": {"peak": float("nan")},
    "1e308": {"peak": 1e308},
    "no tries": {"tries": None},
    "tries a string": {"tries": "3"},
    "not a dict": None,
}


def _bench_for_peaks(trained, tiny_data) -> list[str]:
    return [
        "bench-infer",
        "--model",
        str(trained / "lenet5.onnx"),
        "--data-dir",
        str(tiny_data),
        "--threads",
        "1",
        "--runtimes",
        "onnxruntime",
        "--min-time",
        "0",
        "--json",
        "b.json",
    ]


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    """A peak cache of this test's own, seeded as conftest seeds the session's."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CROSSRT_CACHE", str(cache))
    seed_peaks(cache)
    return cache


@pytest.mark.parametrize("damage", DAMAGED_PEAKS)
def test_a_damaged_peak_cache_entry_is_not_trusted_and_is_measured_again(own_cache, monkeypatch, damage):
    """The cache reader drops a damaged entry (and only it), and the peak is then measured and
    kept again. The measurement itself is replaced here by a sound entry (the real one takes a
    few seconds of every core); test_a_real_run_heals_a_damaged_peak_entry measures for real."""
    from crossrt import peak

    entries = _peak_cache_entries(own_cache)
    key = peak._resolve("cpu", 1, "fp32")[1]
    change = DAMAGED_PEAKS[damage]
    entries[key] = None if change is None else {**entries[key], **change}
    (own_cache / "peaks.json").write_text(json.dumps(entries))
    assert set(peak._load_peaks()) == set(entries) - {key}  # the others stand
    measured = []

    def measure(device, threads, math, tries):
        measured.append((device, threads, math, tries))
        return {
            "peak": 123.0,
            "tries": [120.0, 123.0, 121.0],
            "spread": 0.024,
            "device": device,
            "threads": threads,
            "math": math,
            "measured": "2026-12-07T00:00:00+0000",
        }

    monkeypatch.setattr(peak, "_measure_peak", measure)
    assert peak.measured_peak("cpu", 1).peak == 123.0 and measured == [("cpu", 1, "fp32", peak.PEAK_TRIES)]
    assert _peak_cache_entries(own_cache)[key]["peak"] == 123.0  # healed: kept for the next run
    assert peak.measured_peak("cpu", 1).peak == 123.0 and len(measured) == 1  # and read from there


@pytest.mark.parametrize("tries, kept", [([100.0, 96.0], True), ([100.0, 94.0], False), ([100.0, 60.0], False)])
def test_a_fresh_peak_whose_tries_differ_by_more_than_5_percent_is_not_cached(own_cache, monkeypatch, tries, kept):
    """The distrust rule as a user's run applies it: a measurement whose tries differ by more than
    MAX_SPREAD (5%) was not one steady machine's; it serves this run, marked, and is not kept."""
    from crossrt import peak

    monkeypatch.delenv("CROSSRT_PEAK_TRUST")
    (own_cache / "peaks.json").unlink()
    spread = (max(tries) - min(tries)) / max(tries)
    entry = {"peak": max(tries), "tries": tries, "spread": spread, "device": "cpu", "threads": 1, "math": "fp32"}
    monkeypatch.setattr(peak, "_measure_peak", lambda *a: dict(entry))
    got = peak.measured_peak("cpu", 1)
    assert got.peak == 100.0 and (own_cache / "peaks.json").exists() == kept
    if not kept:
        assert got.cached is False and f"differ by {100 * spread:.0f}% (more than 5%)" in got.why


@pytest.fixture(scope="module")
def measured_cache(trained, tiny_data, tmp_path_factory) -> Path:
    """A peak cache as a run leaves it (one entry: this machine, 1 thread, fp32)."""
    work = tmp_path_factory.mktemp("peaks")
    assert (
        run_cli(*_bench_for_peaks(trained, tiny_data), cwd=work, env={"CROSSRT_CACHE": str(work / "cache")}).returncode
        == 0
    )
    return work / "cache"


@pytest.mark.slow
def test_a_real_run_heals_a_damaged_peak_entry(trained, tiny_data, measured_cache, tmp_path):
    """`train` divides its GFLOP/s by the cached peak (1 thread, fp32: the entry bench-infer left);
    a damaged one is measured again by the real kernels, and kept."""
    cache = Path(shutil.copytree(measured_cache, tmp_path / "cache"))
    entries = _peak_cache_entries(cache)
    key = next(iter(entries))
    entries[key] = {**entries[key], "peak": float("nan")}
    (cache / "peaks.json").write_text(json.dumps(entries))
    out = run_cli(
        "train",
        "--data-dir",
        str(tiny_data),
        "--epochs",
        "1",
        *QUICK,
        "--out",
        "exp",
        "--no-export",
        "--json",
        "t.json",
        cwd=tmp_path,
        env={"CROSSRT_CACHE": str(cache)},
    )
    assert out.returncode == 0 and out.stderr == "", out.stderr
    result = json.loads((tmp_path / "t.json").read_text())
    assert 0 < result["peak"]["peak"] < 1e9 and 0 < result["percent_of_peak"] < 1e4
    healed = _peak_cache_entries(cache)[key]  # measured again, and kept
    assert healed["peak"] == result["peak"]["peak"] == max(healed["tries"]) and len(healed["tries"]) in (3, 5)


def test_a_peak_cache_that_is_a_fifo_or_a_link_is_neither_read_nor_replaced(tmp_path, monkeypatch, capsys):
    """The reader opens no FIFO (a read would hang) and the writer replaces no link or FIFO: a
    warning, and the run goes on with the peak it measured."""
    from crossrt import peak

    victim = tmp_path / "precious.json"
    victim.write_text("{}")
    for name, make in (("fifo", lambda p: os.mkfifo(p)), ("link", lambda p: os.symlink(victim, p))):
        cache = tmp_path / name
        cache.mkdir()
        make(cache / "peaks.json")
        monkeypatch.setenv("CROSSRT_CACHE", str(cache))
        assert peak._load_peaks() == {}
        peak._save_peaks({"cpu fp32 1 thr": {"peak": 1.0}})
        assert "warning: the peak cache cannot be written" in capsys.readouterr().err
        assert not stat.S_ISREG(os.lstat(cache / "peaks.json").st_mode)
    assert victim.read_text() == "{}"


@pytest.mark.slow
def test_a_peak_cache_that_is_a_fifo_or_a_link_costs_a_warning_not_the_run(trained, tiny_data, tmp_path):
    bench = _bench_for_peaks(trained, tiny_data)
    victim = tmp_path / "precious.json"
    victim.write_text("{}")
    for name, make in (("fifo", lambda p: os.mkfifo(p)), ("link", lambda p: os.symlink(victim, p))):
        cache = tmp_path / name
        cache.mkdir()
        make(cache / "peaks.json")
        out = run_cli(*bench, cwd=tmp_path, env={"CROSSRT_CACHE": str(cache)}, timeout=120)  # a FIFO read would hang
        assert out.returncode == 0, out.stderr
        assert "warning: the peak cache cannot be written" in out.stderr and "Traceback" not in out.stderr
        assert not stat.S_ISREG(os.lstat(cache / "peaks.json").st_mode)
    assert victim.read_text() == "{}"


def test_a_damaged_dataset_cache_is_named_when_it_cannot_be_used(workdir, monkeypatch):
    (workdir / "cache").mkdir()
    (workdir / "cache" / "mnist").write_text("a file where the MNIST folder goes")
    monkeypatch.setenv("CROSSRT_CACHE", str(workdir / "cache"))
    monkeypatch.setenv("CROSSRT_MIRROR", "http://127.0.0.1:9/")
    out = run_main("fetch", "mnist")
    assert out.code == 2 and "Traceback" not in out.err, out.err
    assert f"the cache folder {workdir / 'cache' / 'mnist'} for MNIST: cannot be created" in out.err


# ---------------------------------------------------------------------------- 11. code from the working folder


def _fake_package(folder: Path, name: str, marker: Path) -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('the fake {name} ran')\n")
    (folder / name / "__main__.py").write_text("")


def _as_installed(args, cwd: Path) -> subprocess.CompletedProcess:
    """crossrt started as its installed command is: this checkout first on the path, no working folder."""
    boot = f"import sys; sys.path[0] = {str(ROOT)!r}; from crossrt.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", boot, *args], cwd=cwd, env=crossrt_env(), capture_output=True, text=True, timeout=240
    )


@pytest.mark.slow
def test_ranks_run_the_crossrt_that_launched_them(tmp_path, tiny_data):
    work, marker = tmp_path / "work", tmp_path / "fake-ran"
    _fake_package(work, "crossrt", marker)
    out = _as_installed(
        [
            "train",
            "--nproc",
            "2",
            "--data-dir",
            str(tiny_data),
            "--epochs",
            "1",
            "--batch-size",
            "60",
            "--threads",
            "1",
            "--out",
            str(tmp_path / "exp"),
            "--no-export",
        ],
        work,
    )
    assert out.returncode == 0, out.stderr
    assert not marker.exists() and len(checkpoint.load(tmp_path / "exp" / "lenet5.pt")["epochs"]) == 1


@pytest.mark.slow
def test_isolated_children_take_no_module_from_the_working_folder(tmp_path, trained, tiny_data):
    work, marker = tmp_path / "work", tmp_path / "fake-ran"
    _fake_package(work, "multiprocessing", marker)
    out = _as_installed(
        [
            "bench-infer",
            "--model",
            str(trained / "lenet5.onnx"),
            "--data-dir",
            str(tiny_data),
            "--threads",
            "1",
            "--isolate",
            "--min-time",
            "0",
            "--runtimes",
            "onnxruntime",
        ],
        work,
    )
    assert out.returncode == 0, out.stderr
    assert not marker.exists()


# ---------------------------------------------------------------------------- 12. downloads that never end


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(respond):
    """A raw HTTP server on 127.0.0.1 whose every answer is respond(send); yields its base URL."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(65536)
            try:
                respond(self.request.sendall)
            except OSError:  # the client gave up: as it should
                pass

    server = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _drip_body(send):
    send(b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(300):  # five bytes a second, for a minute at most: the test never waits for it to end
        send(b"x")
        time.sleep(0.2)


def _drip_headers(send):
    send(b"HTTP/1.0 200 OK\r\n")
    for _ in range(300):
        send(b"X")
        time.sleep(0.2)


def _endless(send):
    send(b"HTTP/1.0 200 OK\r\n\r\n")  # no length: until the connection closes
    for _ in range(3200):  # 200 MiB at most
        send(bytes(65536))


def _claims_a_terabyte(send):
    send(b"HTTP/1.0 200 OK\r\nContent-Length: 1000000000000\r\n\r\n")


def _breaks_off(send):
    send(b"HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n" + bytes(10))


DOWNLOADS = {
    "five bytes a second": (_drip_body, "not done after 1 s"),
    "headers five bytes a second": (_drip_headers, "not done after 1 s"),
    "data without end": (_endless, "more than the 1,048,576 bytes any dataset file has"),
    "claims a terabyte": (_claims_a_terabyte, "1,000,000,000,000 bytes, more than"),
    "breaks off": (_breaks_off, "broke off after 10 of 1,000 bytes"),
}


@pytest.mark.parametrize("case", DOWNLOADS)
def test_a_download_ends_in_bounded_time_and_size(tmp_path, monkeypatch, case):
    respond, needle = DOWNLOADS[case]
    monkeypatch.setattr(fetch_module, "DEADLINE_S", 1.0, raising=False)
    monkeypatch.setattr(fetch_module, "MAX_BYTES", 2**20, raising=False)
    monkeypatch.setitem(fetch_module.SHA256, "mnist", {"t10k-labels-idx1-ubyte.gz": "0" * 64})
    server = _serve(respond)
    try:
        with pytest.raises(DataError, match=needle) as info:
            fetch_module.fetch(
                "mnist", tmp_path / "cache", urls=(f"http://127.0.0.1:{server.server_address[1]}/",), timeout=0.5
            )
    finally:
        server.shutdown()
        server.server_close()
    assert "\n" not in str(info.value)
    assert not (tmp_path / "cache").exists()  # nothing half-downloaded is left, not even the folder it made


def test_a_mirror_that_is_no_url_is_one_line(workdir, monkeypatch):
    monkeypatch.setenv("CROSSRT_MIRROR", "not a url")
    monkeypatch.setenv("CROSSRT_CACHE", str(workdir))
    out = run_main("fetch", "mnist")
    assert out.code == 2 and "Traceback" not in out.err and len(out.err.strip().splitlines()) == 1
    assert "could not download MNIST" in out.err and "not a url" in out.err
