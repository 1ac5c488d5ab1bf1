"""Result dataclasses: derived figures from known samples, JSON round trips, older schemas."""

from __future__ import annotations

import json

import pytest

from crossrt.compare import cost_rows
from crossrt.errors import ResultError
from crossrt.files import load_result
from crossrt.results import BenchResult, EpochResult, InferRun, ModeResult, Peak, SuiteResult, Sweep, TrainResult
from crossrt.timing import Latency


def train_result(**kw) -> TrainResult:
    # Three epochs of 1,000 images: accuracy 0.5, 0.8, 0.7, so the best is epoch 2 and 0.75 is
    # first reached there; 10 MFLOP per image against a 100 GFLOP/s peak.
    epochs = [
        EpochResult(1, 2.0, 4.0, 1.5, 0.5, 1.0, 1e-3),
        EpochResult(2, 1.0, 2.0, 0.9, 0.8, 0.5, 1e-3),
        EpochResult(3, 0.8, 2.0, 1.0, 0.7, 0.5, 1e-3),
    ]
    values = dict(
        dataset="tiny",
        dataset_source="test",
        device="cpu",
        threads=2,
        arch="lenet5",
        precision="fp32",
        batch_size=100,
        valid_batch_size=100,
        train_images=1000,
        valid_images=500,
        flops_per_image=10_000_000,
        target_accuracy=0.75,
        config={},
        epochs=epochs,
        peak=Peak(100.0),
    )
    return TrainResult(**{**values, **kw})


def infer_run(**kw) -> InferRun:
    values = dict(
        runtime="onnxruntime",
        provider="cpu",
        io="host",
        threads=1,
        threads_effective=None,
        batch_size=100,
        samples=500,
        passes=2,
        samples_per_s=1000.0,
        gflops=10.0,
        latency_ms=Latency(1.0, 1.0, 1.2, 1.5, 0.1, 10),
        session_create_s=0.01,
        first_run_s=0.002,
        accuracy=0.7,
        loss=1.0,
        providers=["CPUExecutionProvider"],
    )
    return InferRun(**{**values, **kw})


def test_train_summary_figures():
    s = train_result().summary()
    assert s["train_s"] == 8.0 and s["valid_s"] == 2.0 and s["total_s"] == 10.0
    assert s["first_epoch_s"] == 5.0 and s["steady_epoch_train_s"] == 2.0
    assert s["images_per_s"] == 3000 / 8.0 and s["steady_images_per_s"] == 1000 / 2.0  # epochs 2 and 3: 2 s each
    assert s["train_gflops"] == pytest.approx(3 * 10e6 * 500 / 1e9)  # 15, of the steady epochs, as the interval
    assert s["percent_of_peak"] == pytest.approx(15.0)
    assert (s["final_accuracy"], s["best_accuracy"], s["best_epoch"]) == (0.7, 0.8, 2)
    assert s["target_epoch"] == 2 and s["target_s"] == 7.5  # (4 + 1) + (2 + 0.5)
    graphed = train_result(setup_s=1.5).summary()  # warm-up and capture: in the total, and shown apart
    assert graphed["total_s"] == 11.5 and graphed["total_without_setup_s"] == 10.0


def test_train_summary_when_nothing_ran_or_target_missed():
    s = train_result(target_accuracy=0.99).summary()
    assert s["target_epoch"] is None and s["target_s"] is None
    empty = train_result(epochs=[]).summary()
    assert empty["train_s"] == 0 and empty["images_per_s"] is None and empty["final_accuracy"] is None


def test_cost_rows_price_each_epoch_with_each_runtime():
    runs = [infer_run(), infer_run(runtime="pytorch", io="end-to-end", provider="cuda", threads=0, samples_per_s=250.0)]
    rows = cost_rows(train_result(), runs)
    assert rows == [
        ("PyTorch inside `train`", 8.0, 2.0),
        ("onnxruntime cpu, 1 thr, batch 100", 8.0, 3 * 0.5),  # 3 epochs x 500 images / 1000 img/s
        ("pytorch cuda end-to-end, default thr, batch 100", 8.0, 3 * 2.0),
    ]


def _roundtrip(result, tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result.to_dict()))
    return load_result(path)


def test_every_result_round_trips(tmp_path):
    train = train_result(complete=True)
    bench = BenchResult(
        model="m.onnx",
        checkpoint="m.pt",
        dataset="tiny",
        dataset_source="test",
        flops_per_sample=10,
        config={"spin": True},
        runs=[infer_run(top1_agreement=1.0)],
    )
    suite = SuiteResult(
        dataset="tiny",
        dataset_source="test",
        config={"epochs": 3},
        modes=[ModeResult("cpu 1 thread", "cpu", 1, train, bench)],
        sweep=Sweep([train], bench),
        complete=True,
    )
    for result in (train, bench, suite):
        assert _roundtrip(result, tmp_path) == result
    assert _roundtrip(suite, tmp_path).parts() == [train, bench, train, bench]


def test_schema_1_files_still_load(tmp_path):
    """Old names read as the new ones: mode (1) -> io, settings (7) -> config, images (9) -> samples."""
    old = {
        **infer_run().__dict__,
        "latency_ms": vars(infer_run().latency_ms),
        "mode": "device-resident",
        "images": 500,
        "images_per_s": 1000.0,
    }
    for renamed in ("io", "samples", "samples_per_s", "outputs"):
        del old[renamed]
    bench = BenchResult(
        model="m", checkpoint=None, dataset="d", dataset_source="s", flops_per_sample=1, config={}
    ).to_dict()
    del bench["config"], bench["flops_per_sample"], bench["model_info"], bench["failed"]
    path = tmp_path / "old.json"
    path.write_text(
        json.dumps({**bench, "schema_version": 1, "settings": {"spin": "on"}, "flops_per_image": 7, "runs": [old]})
    )
    loaded = load_result(path)
    assert loaded.runs[0].io == "device-resident" and loaded.config == {"spin": "on"}
    assert (loaded.runs[0].samples, loaded.runs[0].samples_per_s, loaded.flops_per_sample) == (500, 1000.0, 7)


def test_malformed_result_is_one_clear_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"kind": "train", "schema_version": 3, "dataset": "x"}))
    with pytest.raises(ResultError, match=r"bad.json: a 'train' result with missing or malformed fields"):
        load_result(path)


def test_a_new_result_field_is_its_field_and_one_column(monkeypatch, tmp_path):
    """A field added to a bench row (watts, in a test-only subclass) and one column declared beside
    the others (crossrt.columns) reach bench-infer's table, report's CSV and Markdown, and the JSON,
    with no other code changed."""
    import csv
    import io
    from dataclasses import dataclass, fields
    from pathlib import Path

    from crossrt import columns
    from crossrt.compare import merge, to_csv, to_markdown
    from crossrt.schema import plain
    from crossrt.ui import console
    from crossrt.ui.bench import bench_table

    from conftest import canned

    @dataclass
    class MeteredRun(InferRun):
        watts: float | None = None  # what a power meter read over the timed passes

    result = load_result(canned("bench.json"))
    result.runs = [
        MeteredRun(**{f.name: getattr(r, f.name) for f in fields(r)}, watts=40.0 + i) for i, r in enumerate(result.runs)
    ]
    watts = columns.Column(
        "watts", "W", bench=lambda run, r: run.watts, shown=columns.num1, places=columns.BENCH | columns.FILE
    )
    monkeypatch.setattr(columns, "BENCH_COLUMNS", (*columns.BENCH_COLUMNS, watts))

    width = console.console.width
    console.set_width(400)
    try:
        with console.console.capture() as shown:
            console.console.print(bench_table(result))
    finally:
        console.set_width(width)
    header = next(ln for ln in shown.get().splitlines() if "runtime" in ln)
    assert header.rstrip(" ┃").endswith("┃    W") and "│ 45.0 │" in shown.get()

    rows = merge([(Path("bench.json"), result)], group=False)
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert [float(r["watts"]) for r in table] == [40.0 + i for i in range(len(result.runs))]
    assert "| watts |" in to_markdown(rows).splitlines()[0]
    assert plain(result)["runs"][0]["watts"] == 40.0  # the JSON follows the dataclass: no word in crossrt.schema
