"""The suite, the reference figures, merging results across machines, and plots."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import pytest

from crossrt.cli import main
from crossrt.columns import FILE, report_columns
from crossrt.compare import load_results, merge
from crossrt.files import load_result
from crossrt.suite import rank_scaling, reference, scaling
from crossrt.system import cpu_count

from conftest import canned, run_main, suite_whose_second_bench_raises

ARTICLE_RESULTS = Path(__file__).parent / "data" / "reference-results.txt"
SECTIONS = {
    "GPU(CUDA 11)": "gpu (CUDA 11)",
    "GPU(CUDA 10)": "gpu (CUDA 10)",
    "CPU单线程": "cpu 1 thread",
    "CPU多线程": "cpu 18 threads",
}


def article_figures() -> dict[tuple[str, str], dict]:
    """{(mode, runtime family): figures} parsed from the article's own printed lines."""
    found, mode, family = {}, None, None
    for line in ARTICLE_RESULTS.read_text().splitlines():
        if line.startswith("#"):
            continue
        mode = next((m for head, m in SECTIONS.items() if line.startswith(head)), mode)
        if line.endswith("运行结果"):
            family = next(f for f in ("matlab", "pytorch", "flux") if f in line.lower())
            found[mode, family] = {}
        figures = found.get((mode, family), {})
        if m := re.search(r"Total time: ([\d.]+)(?:, training time: ([\d.]+), validation time: ([\d.]+))?", line):
            figures.update(total_s=float(m[1]), train_s=m[2] and float(m[2]), valid_s=m[3] and float(m[3]))
        elif m := re.search(r"accuracy: ([\d.]+)", line):  # PyTorch: a fraction; Flux: a percentage
            figures["final_accuracy"] = round(float(m[1]) / (100 if float(m[1]) > 1 else 1), 4)
        elif m := re.match(r"\|\s+100 \|(?:[^|]*\|){3}\s+([\d.]+)%", line):  # MATLAB's table: validation accuracy
            figures["final_accuracy"] = round(float(m[1]) / 100, 4)
    return {k: v for k, v in found.items() if v}


def test_reference_rows_are_the_articles_numbers():
    """reference.json against the article's printed results (tests/data/reference-results.txt)."""
    ref = reference()
    assert ref["epochs"] == 100 and "E5-2699 v3" in ref["machine"]["cpu"] and "1080 Ti" in ref["machine"]["gpu"]
    assert "Julia深度学习" in ref["source"]
    article = article_figures()
    rows = {(r["mode"], r["runtime"].split()[0].lower()): r for r in ref["rows"]}
    assert rows.keys() == article.keys()  # Flux has no multi-threaded row: it had no CPU threading
    assert len(article) == 11
    for key, figures in article.items():
        assert {k: rows[key][k] for k in figures} == figures, key


@pytest.fixture(scope="module")
def two_machines(tmp_path_factory):
    """A train and a bench-infer result from this machine (canned), and copies 'from' another machine."""
    work = tmp_path_factory.mktemp("machines")
    files = [canned("train.json"), canned("bench.json")]
    for f in list(files):
        data = json.loads(f.read_text())
        data["environment"].update(cpu_model="Other CPU 9000", cpu_cores=64, hostname="elsewhere")
        other = work / f"other-{f.name}"
        other.write_text(json.dumps(data))
        files.append(other)
    return files


def test_report_groups_by_machine(two_machines):
    rows = merge(load_results(two_machines))
    machines = [r["machine"] for r in rows]
    assert len(set(machines)) == 2
    assert machines == sorted(machines)  # grouped: each machine's rows together
    assert sum("Other CPU 9000 (64 cores)" in m for m in machines) == len(rows) // 2
    assert {r["kind"] for r in rows} == {"train", "bench-infer"}


def test_markdown_and_csv_parse_back(capsys, two_machines):
    rows = merge(load_results(two_machines))
    assert main(["report", *map(str, two_machines), "--markdown"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    shown = [c.name for c in report_columns() if c.places & FILE and any(r[c.name] not in (None, "") for r in rows)]
    assert header == shown and set(lines[1]) <= set("|-")  # the columns that hold something
    body = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    assert len(body) == len(rows)
    assert [b[header.index("runtime")] for b in body] == [r["runtime"] for r in rows]

    assert main(["report", *map(str, two_machines), "--csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(parsed) == len(rows)
    for p, r in zip(parsed, rows):
        assert p["machine"] == r["machine"] and int(p["threads"]) == r["threads"]
        assert float(p["samples_per_s"]) == pytest.approx(r["samples_per_s"])


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"kind": "seed-baseline"}, "is a 'seed-baseline' result, expected 'train' or 'bench-infer' or 'suite'"),
        ({"schema_version": 99}, "schema_version 99 is not supported"),
    ],
)
def test_report_refuses_other_kinds_and_schemas(capsys, tmp_path, two_machines, change, needle):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(two_machines[0].read_text()), **change}))
    assert main(["report", str(two_machines[0]), str(bad)]) == 2
    err = capsys.readouterr().err
    assert needle in err and str(bad) in err and "Traceback" not in err


PNG = b"\x89PNG\r\n\x1a\n"


def test_report_plots_are_written(capsys, tmp_path, two_machines):
    assert main(["report", *map(str, two_machines), "--plots", str(tmp_path / "p")]) == 0
    pngs = sorted((tmp_path / "p").glob("*.png"))
    assert [p.name for p in pngs] == ["learning_curves.png", "throughput_vs_threads.png", "train_vs_valid.png"]
    for p in pngs:
        data = p.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, p


def test_plots_without_matplotlib_is_one_clear_line(capsys, tmp_path, monkeypatch, two_machines):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    assert main(["report", str(two_machines[0]), "--plots", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "--plots needs matplotlib: pip install 'crossrt[plots]'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p").exists()


def test_suite_runs_every_mode_and_shows_the_reference_beside_it(capsys, workdir, tiny_data):
    """The suite in this process, its validation not isolated, without the sweep (the slow test
    below runs both; the canned suite.json holds a sweep for the tables)."""
    out = workdir / "suite"
    argv = ["suite", "--data-dir", str(tiny_data), "--epochs", "2", "--device", "cpu", "--out", str(out)]
    assert main([*argv, "--min-time", "0", "--no-isolate", "--json", "suite.json", "--plots", "plots"]) == 0
    text = capsys.readouterr().out
    assert "(reference)" in text and "times per epoch" in text and "verdict (cpu 1 thread)" in text
    result = load_result(workdir / "suite.json")
    assert result.complete is True and result.sweep is None
    assert [m.mode for m in result.modes] == ["cpu 1 thread"] + (
        [f"cpu {cpu_count()} threads"] if cpu_count() > 1 else []
    )
    for m in result.modes:
        assert m.train.threads == m.threads and len(m.train.epochs) == 2 and Path(m.train.onnx.path).is_file()
        assert {r.runtime for r in m.bench.runs} == {"onnxruntime", "pytorch"} and {
            r.threads for r in m.bench.runs
        } == {m.threads}
        assert not any(r.isolated for r in m.bench.runs)
    assert len(list((workdir / "plots").glob("*.png"))) == 3


def test_show_lays_out_a_suites_sweep_as_the_suite_did():
    """The sweep's tables from a suite's file (canned: 1 and 2 threads, a 2-rank run): show prints
    every table the suite printed, its scaling against 1 thread and the ranks beside one process."""
    result = load_result(canned("suite.json"))
    rows = scaling(result)
    assert {r["phase"] for r in rows} == {"training (pytorch)", "validation (onnxruntime)", "validation (pytorch)"}
    assert all(r["speedup"] == 1.0 for r in rows if r["threads"] == 1)
    assert [(r["ranks"], r["threads"], r["batch_size"]) for r in rank_scaling(result)] == [(2, 1, 200)]
    out = run_main("show", str(canned("suite.json")))
    assert out.code == 0, out.err
    for words in ("(reference)", "Scaling against 1 thread", "Data-parallel ranks against one process", "verdict"):
        assert words in out.out, words


@pytest.mark.slow
def test_suite_end_to_end(capsys, workdir, tiny_data):
    out = workdir / "suite"
    assert (
        main(
            [
                "suite",
                "--data-dir",
                str(tiny_data),
                "--epochs",
                "2",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--min-time",
                "0",
                "--sweep",
                "--sweep-threads",
                "1,2",
                "--sweep-ranks",
                "2",
                "--sweep-train-batches",
                "200",
                "--sweep-valid-batches",
                "50",
                "--json",
                "suite.json",
                "--plots",
                "plots",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "(reference)" in text and "times per epoch" in text and "Scaling against 1 thread" in text
    assert "Data-parallel ranks against one process on the same total cores" in text
    result = load_result(workdir / "suite.json")
    assert result.kind == "suite" and result.complete is True
    names = [m.mode for m in result.modes]
    assert names == ["cpu 1 thread"] + ([f"cpu {cpu_count()} threads"] if cpu_count() > 1 else [])
    for m in result.modes:
        assert m.train.threads == m.threads and len(m.train.epochs) == 2
        assert {r.runtime for r in m.bench.runs} == {"onnxruntime", "pytorch"}
        assert {r.threads for r in m.bench.runs} == {m.threads}
        assert Path(m.train.onnx.path).is_file()
    rows = scaling(result)
    assert {r["phase"] for r in rows} == {"training (pytorch)", "validation (onnxruntime)", "validation (pytorch)"}
    assert all(r["speedup"] == 1.0 for r in rows if r["threads"] == 1)
    assert len(list((workdir / "plots").glob("*.png"))) == 3
    ranks = [r for r in result.sweep.train if r.world_size == 2]
    assert len(ranks) == 1 and ranks[0].backend == "gloo" and len(ranks[0].epochs) == 1
    # Every mode: its training row and 2 validation rows; the sweep: 2 thread counts x 1 training
    # batch, a 2-rank run, and 2 runtimes x 2 thread counts x 1 validation batch.
    assert len(merge(load_results([workdir / "suite.json"]))) == 3 * len(names) + 2 + 1 + 4


def test_suite_interrupted_keeps_finished_modes(capsys, workdir, tiny_data, monkeypatch):
    assert suite_whose_second_bench_raises(KeyboardInterrupt(), tiny_data, workdir / "s", monkeypatch) == 130
    err = capsys.readouterr().err
    assert "partial results saved" in err and "after 1 complete mode(s) (kept as far as it got: cpu 2 threads)" in err
    result = load_result(workdir / "suite.json")
    # The second mode was stopped in its validation: its finished training is kept, without a bench.
    assert result.complete is False and [m.mode for m in result.modes] == ["cpu 1 thread", "cpu 2 threads"]
    assert result.modes[0].bench.complete and result.modes[1].train.complete and result.modes[1].bench is None
