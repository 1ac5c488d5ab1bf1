"""A user's own model as a first-class citizen (issue "Your own model, first class"): what it is
fed is part of every configuration's identity, repeated flags add up, inputs that disagree are
refused before any runtime runs, and the header says where every input comes from. Real ONNX
files (onnx.helper), real ONNX Runtime sessions, real result files."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto as T
from onnx import helper, numpy_helper
from test_any_model import _export, _graph, conv_net

from crossrt.bench_infer import compare_outputs
from crossrt.cli import main
from crossrt.compare import mann_whitney_p, ratio_ci
from crossrt.files import load_result
from crossrt.timing import stability
from crossrt.ui.bench import rounded_up
from crossrt.verdicts import verdicts

from conftest import canned, run_main

QUICK = ("--min-time", "0", "--min-repeats", "2", "--warmup", "1", "--batches-per-pass", "2", "--threads", "1")


def text_model(path):
    """A text classifier's signature: int64 input_ids and attention_mask of dynamic batch and sequence."""
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids"], to=T.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=T.FLOAT),
        helper.make_node("Mul", ["ids", "mask"], ["kept"]),
        helper.make_node("ReduceSum", ["kept", "axes"], ["score"], keepdims=0),
    ]
    ins = [helper.make_tensor_value_info(n, T.INT64, ["batch", "seq"]) for n in ("input_ids", "attention_mask")]
    return _graph(path, nodes, ins, [helper.make_tensor_value_info("score", T.FLOAT, ["batch"])], [axes])


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    folder = tmp_path_factory.mktemp("own")
    return {"text": text_model(folder / "text.onnx"), "conv": conv_net(folder / "conv.onnx")}


def bench(model, *flags, cwd, json_name="b.json"):
    out = run_main(
        "bench-infer", "--model", str(model), "--runtimes", "onnxruntime", *QUICK, *flags, "--json", json_name, cwd=cwd
    )
    path = cwd / json_name
    return out, json.loads(path.read_text()) if out.code == 0 else None


TEXT = ("--input-range", "input_ids=0:1000", "--value", "attention_mask=1", "--dim", "seq=16")


def test_runs_fed_different_inputs_are_two_configurations(own, tmp_path):
    """The conv net at 8x8 and at 32x32: report keeps two rows, each naming its feed; compare refuses
    them as one configuration unless told to hold one against the other, and then names both feeds."""
    for hw in (8, 32):
        assert (
            bench(own["conv"], "--dim", f"height={hw},width={hw}", cwd=tmp_path, json_name=f"c{hw}.json")[0].code == 0
        )
    out = run_main("report", "--csv", "c8.json", "c32.json", cwd=tmp_path)
    rows = list(csv.DictReader(io.StringIO(out.out)))
    assert out.code == 0 and len(rows) == 2, out
    small, big = "image[Bx3x8x8] uniform in [0, 1), seed 0", "image[Bx3x32x32] uniform in [0, 1), seed 0"
    assert {r["model"].split(", fed ")[1] for r in rows} == {small, big}
    assert all(r["n"] in ("", "1") for r in rows)
    refused = run_main("compare", "c8.json", "c32.json", cwd=tmp_path)
    assert refused.code == 2 and f"different inputs (A: {small}; B: {big})" in refused.err
    held = run_main("compare", "c8.json", "c32.json", "--allow-different-models", cwd=tmp_path)
    assert held.code == 0 and f"inputs differ: A fed {small}; B fed {big}" in " ".join(held.out.split())


@pytest.mark.parametrize(
    "a, b",
    [
        (("--dim", "height=8,width=8"), ("--dim", "width=8", "--dim", "height=8")),
        (("--dim", "batch=2,height=8,width=8"), ("--batch-size", "2", "--dim", "height=8,width=8")),
        (("--shape", "image=1x3x8x8"), ("--dim", "height=8,width=8")),
    ],
)
def test_the_same_tensors_however_the_flags_said_it_are_one_configuration(own, tmp_path, a, b):
    bench(own["conv"], *a, cwd=tmp_path, json_name="a.json")
    bench(own["conv"], *b, cwd=tmp_path, json_name="b.json")
    rows = list(csv.DictReader(io.StringIO(run_main("report", "--csv", "a.json", "b.json", cwd=tmp_path).out)))
    assert len(rows) == 1 and rows[0]["n"] == "2"
    assert run_main("compare", "a.json", "b.json", cwd=tmp_path).code == 0


def test_an_inputs_file_is_known_by_its_digest(own, tmp_path):
    for name, fill in (("one.npz", 1), ("two.npz", 2)):
        np.savez(tmp_path / name, input_ids=np.full((2, 5), fill, np.int64), attention_mask=np.ones((2, 5), np.int64))
        bench(own["text"], "--inputs", name, cwd=tmp_path, json_name=f"{name}.json")
    refused = run_main("compare", "one.npz.json", "two.npz.json", cwd=tmp_path)
    assert refused.code == 2 and "different inputs (A: input_ids[Bx5] file " in refused.err, refused


def test_repeated_train_runs_merge_into_medians_of_every_column(tmp_path):
    """Two runs of one training configuration: each figure of the merged row is the median of that
    figure over the runs (training time too, not one run's time beside the median throughput)."""
    a = json.loads(canned("train.json").read_text())
    b = json.loads(json.dumps(a))
    b["run_id"] = "0" * 8
    for epoch in b["epochs"]:
        epoch["train_s"] *= 3
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    one = {
        name: list(csv.DictReader(io.StringIO(run_main("report", "--csv", name, cwd=tmp_path).out)))[0]
        for name in ("a.json", "b.json")
    }
    (merged,) = csv.DictReader(io.StringIO(run_main("report", "--csv", "a.json", "b.json", cwd=tmp_path).out))
    assert merged["n"] == "2"
    for column in ("train_s", "samples_per_s"):
        want = (float(one["a.json"][column]) + float(one["b.json"][column])) / 2
        assert float(merged[column]) == pytest.approx(want, rel=1e-3), column


def test_a_repeated_flag_adds_up_and_a_name_given_two_values_is_refused(own, tmp_path):
    out, result = bench(own["conv"], "--dim", "height=8", "--dim", "width=12", cwd=tmp_path)
    assert out.code == 0, out.err
    assert result["model_info"]["inputs"][0].startswith("image float32[batch=1, 3, height=8, width=12]")
    out, _ = bench(own["conv"], "--dim", "height=8", "--dim", "height=9,width=8", cwd=tmp_path)
    assert out.code == 2 and out.err.strip() == "crossrt: error: --dim: 'height' is given twice, as 8 and 9"
    out, result = bench(own["text"], *TEXT, "--value", "attention_mask=1", cwd=tmp_path)  # the same twice: one request
    assert out.code == 0, out.err


def test_every_unbound_dimension_is_named_at_once(own, tmp_path):
    out, _ = bench(own["text"], "--value", "input_ids=1,attention_mask=1", cwd=tmp_path)
    assert (
        out.code == 2 and "not bound: seq (of input_ids int64[batch, seq]; attention_mask int64[batch, seq])" in out.err
    )
    out, _ = bench(own["conv"], cwd=tmp_path)
    assert out.code == 2 and "use --dim height=N,width=N" in out.err


@pytest.mark.parametrize(
    "arrays, flags, needle",
    [
        (
            {"input_ids": (4, 6), "attention_mask": (3, 6)},
            (),
            "input_ids gives batch=4 but attention_mask has batch=3; the graph names both dimensions 'batch'",
        ),
        (
            {"input_ids": (2, 6), "attention_mask": (2, 7)},
            (),
            "input_ids gives seq=6 but attention_mask has seq=7",
        ),
        (None, ("--shape", "attention_mask=1x8", *TEXT), "--shape: --dim gives seq=16 but attention_mask has seq=8"),
    ],
)
def test_inputs_that_disagree_are_refused_before_any_runtime(own, tmp_path, arrays, flags, needle):
    if arrays:
        np.savez(tmp_path / "in.npz", **{n: np.ones(s, np.int64) for n, s in arrays.items()})
        flags = ("--inputs", "in.npz")
    out, _ = bench(own["text"], *flags, cwd=tmp_path)
    assert out.code == 2 and len(out.err.strip().splitlines()) == 1 and needle in out.err, out.err
    assert "Traceback" not in out.err and not (tmp_path / "b.json").exists()


def test_the_header_shows_every_bound_dim_and_where_each_input_comes_from(own, tmp_path):
    out, result = bench(own["text"], *TEXT, "--batch-size", "1,2", cwd=tmp_path)
    assert out.code == 0, out.err
    assert result["model_info"]["inputs"] == [
        "input_ids int64[batch=1,2, seq=16] (uniform integers in [0, 1000), seed 0)",
        "attention_mask int64[batch=1,2, seq=16] (all 1)",
    ]
    assert "input_ids int64[batch=1,2, seq=16] (uniform integers in [0, 1000), seed 0)" in out.out
    out, result = bench(own["conv"], "--dim", "height=8,width=8", "--input-range", "normal", cwd=tmp_path)
    assert result["model_info"]["inputs"] == ["image float32[batch=1, 3, height=8, width=8] (normal, seed 0)"]


def test_a_conversion_of_the_inputs_file_is_named(own, tmp_path):
    np.savez(tmp_path / "in.npz", image=np.ones((1, 3, 8, 8), np.float64))
    out, result = bench(own["conv"], "--inputs", "in.npz", cwd=tmp_path)
    assert out.code == 0, out.err
    assert result["model_info"]["inputs"] == [
        "image float32[batch=1, 3, height=8, width=8] (from in.npz, float64 converted to float32)"
    ]
    assert len(result["model_info"]["inputs_sha256"]) == 64


# ---------------------------------------------------------------------------- --torch-model


class TwoInTwoOut(torch.nn.Module):
    """Two float inputs, two outputs: the user's own network, beside its ONNX export."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(6, 4), torch.nn.Linear(3, 4)

    def forward(self, feats, extra):
        h = torch.relu(self.a(feats)) + self.b(extra)
        return h.softmax(-1), h.sum(-1, keepdim=True)


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """twotwo.onnx (dynamic batch), its torch.export program (.pt2, dynamic batch) and TorchScript (.ts)."""
    folder = tmp_path_factory.mktemp("two")
    net, example = TwoInTwoOut().eval(), (torch.randn(2, 6), torch.randn(2, 3))
    batch = {0: "batch"}
    _export(
        net,
        example,
        folder / "twotwo.onnx",
        input_names=["feats", "extra"],
        output_names=["probs", "total"],
        dynamic_axes={"feats": batch, "extra": batch, "probs": batch, "total": batch},
    )
    auto = torch.export.Dim.AUTO
    program = torch.export.export(net, example, dynamic_shapes={"feats": {0: auto}, "extra": {0: auto}})
    torch.export.save(program, str(folder / "twotwo.pt2"))
    torch.jit.trace(net, example).save(str(folder / "twotwo.ts"))
    return folder


@pytest.mark.parametrize("saved", ["twotwo.pt2", "twotwo.ts"])
def test_the_user_s_network_is_timed_as_the_pytorch_row_with_its_outputs_compared(two, tmp_path, saved):
    flags = ("--torch-model", str(two / saved), "--runtimes", "onnxruntime,pytorch", "--batch-size", "3")
    out = run_main("bench-infer", "--model", str(two / "twotwo.onnx"), *QUICK, *flags, "--json", "b.json", cwd=tmp_path)
    assert out.code == 0, out.err
    result = json.loads((tmp_path / "b.json").read_text())
    (row,) = [r for r in result["runs"] if r["runtime"] == "pytorch"]
    assert row["parity_ok"] is True and row["samples_per_s"] > 0
    assert [o["name"] for o in row["outputs"]] == ["probs", "total"]
    assert all(o["ok"] and o["max_abs"] < 1e-5 for o in row["outputs"])
    assert result["skipped"] == [] and result["failed"] == []


def test_a_network_that_computes_something_else_disagrees(two, tmp_path):
    """The parity check is real: a network with other weights than the ONNX file's is flagged."""
    other = TwoInTwoOut().eval()
    with torch.no_grad():
        other.a.bias += 1
    torch.jit.trace(other, (torch.randn(2, 6), torch.randn(2, 3))).save(str(tmp_path / "other.ts"))
    flags = ("--torch-model", str(tmp_path / "other.ts"), "--runtimes", "onnxruntime,pytorch")
    out = run_main("bench-infer", "--model", str(two / "twotwo.onnx"), *QUICK, *flags, "--json", "b.json", cwd=tmp_path)
    result = json.loads((tmp_path / "b.json").read_text())
    (row,) = [r for r in result["runs"] if r["runtime"] == "pytorch"]
    assert row["parity_ok"] is False and out.code == 1


def test_torchscript_is_not_compiled_and_says_why(two, tmp_path):
    flags = ("--torch-model", str(two / "twotwo.ts"), "--runtimes", "pytorch,torch-compile")
    out = run_main("bench-infer", "--model", str(two / "twotwo.onnx"), *QUICK, *flags, "--json", "b.json", cwd=tmp_path)
    assert out.code == 0, out.err
    (skip,) = json.loads((tmp_path / "b.json").read_text())["skipped"]
    assert skip["runtime"] == "torch-compile" and "torch.export.save" in skip["reason"]


def test_nothing_that_can_run_exits_1_and_writes_no_result(two, tmp_path):
    out = run_main(
        "bench-infer",
        "--model",
        str(two / "twotwo.onnx"),
        *QUICK,
        "--runtimes",
        "pytorch",
        "--json",
        "b.json",
        cwd=tmp_path,
    )
    assert out.code == 1 and "nothing to run" in out.err and "--torch-model FILE" in out.err, out
    assert not (tmp_path / "b.json").exists() and not list((tmp_path / "results").glob("*.json"))


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda p: p.write_text("print('hi')"), "holds no network's code or program"),
        (lambda p: torch.save({"model": {}}, str(p)), "holds no network's code or program"),
        (lambda p: p.write_bytes(b"PK\x03\x04 cut short"), "holds no network's code or program"),
    ],
)
def test_a_torch_model_that_is_not_a_network_is_one_line(two, tmp_path, make, needle):
    make(tmp_path / "bad.pt2")
    flags = ("--torch-model", str(tmp_path / "bad.pt2"), "--runtimes", "pytorch")
    out = run_main("bench-infer", "--model", str(two / "twotwo.onnx"), *QUICK, *flags, "--json", "b.json", cwd=tmp_path)
    assert out.code == 2 and len(out.err.strip().splitlines()) == 1 and needle in out.err, out.err
    assert not (tmp_path / "b.json").exists()


def test_a_network_exported_for_other_shapes_is_refused_before_any_work(two, tmp_path):
    static = torch.export.export(TwoInTwoOut().eval(), (torch.randn(2, 6), torch.randn(2, 3)))
    torch.export.save(static, str(tmp_path / "static.pt2"))
    flags = ("--torch-model", str(tmp_path / "static.pt2"), "--runtimes", "pytorch", "--batch-size", "5")
    out = run_main("bench-infer", "--model", str(two / "twotwo.onnx"), *QUICK, *flags, "--json", "b.json", cwd=tmp_path)
    assert out.code == 2 and "fails on one batch of feats, extra (float32[5, 6], float32[5, 3]" in out.err, out.err


# ---------------------------------------------------------------------------- figures that mean something


def test_stability_is_judged_on_the_figure_not_on_single_repeats():
    """400 repeats that each vary by 20% give a mean known to +-2%: stable. Three repeats of 1, 1.5
    and 2 s are not, and the cause names the interval."""
    many = stability([0.8, 1.2] * 200, 100)
    assert many.cv > 0.19 and many.stable is True
    few = stability([1.0, 1.5, 2.0], 100)
    assert few.stable is False and few.cause.startswith("its 95% interval is -")


def _compared(tmp_path, a_times, b_times, *flags):
    """compare of two copies of the canned bench result whose every row took a_times and b_times."""
    for name, times in (("a.json", a_times), ("b.json", b_times)):
        data = json.loads(canned("bench.json").read_text())
        for r in data["runs"]:
            r["pass_times_s"] = list(times)
            r["samples_per_s"] = r["samples"] / (sum(times) / len(times))
        (tmp_path / name).write_text(json.dumps(data))
    return run_main("compare", "a.json", "b.json", *flags, cwd=tmp_path)


def test_compare_calls_a_real_slowdown_slower_and_the_gate_fails_on_it(tmp_path):
    """B at 0.85x A, the ratio's 95% interval reaching above 0.9 while the runs' repeats differ
    (Mann-Whitney p = 0.001): slower, and --fail-if-slower 5 exits 1. The rule before called such a
    row "same within noise" (its interval not wholly beyond the band) and exited 0."""
    rng = np.random.default_rng(4)
    a = list(1.0 + 0.08 * rng.standard_normal(10))
    b = [t / 0.85 for t in a]
    assert ratio_ci(a, b)[1] > 0.9
    out = _compared(tmp_path, a, b, "--fail-if-slower", "5")
    assert out.code == 1 and "slower" in out.out and "0.850x" in out.err, out


def test_compare_within_the_noise_band_or_the_noise_is_inconclusive(tmp_path):
    """B 5% slower on tight repeats: the test says the runs differ, the ratio is inside the ±10% band,
    so the table says inconclusive and why; --fail-if-slower 3 (below the band) still fails on it,
    and the table and the exit code say the same thing."""
    rng = np.random.default_rng(1)
    a = list(1.0 + 0.01 * rng.standard_normal(10))
    within_band = _compared(tmp_path, a, [t / 0.95 for t in a], "--fail-if-slower", "10")
    said = " ".join(within_band.out.split())
    assert within_band.code == 0 and "inconclusive (slower beyond each run's noise, within the ±10% band)" in said
    gate = _compared(tmp_path, a, [t / 0.95 for t in a], "--fail-if-slower", "3")
    assert gate.code == 1, gate
    noisy = _compared(tmp_path, [1.0, 1.6, 0.7], [1.3, 0.9, 1.8], "--fail-if-slower", "5")
    assert noisy.code == 0 and "inconclusive" in noisy.out


def test_mann_whitney_matches_its_table():
    """Exact two-sided p-values of known cases: fully separated samples of 5 and 5 (2/252), and
    identical samples (1)."""
    assert mann_whitney_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    assert mann_whitney_p([1, 2, 3], [1, 2, 3]) == 1.0
    big = mann_whitney_p(list(range(40)), list(range(100, 140)))  # the normal approximation
    assert big < 1e-10


def _verdict_of(tmp_path, edit):
    data = json.loads(canned("bench.json").read_text())
    data.pop("verdicts", None)
    edit(data["runs"])
    (tmp_path / "r.json").write_text(json.dumps(data))
    return verdicts(load_result(tmp_path / "r.json").runs)


def test_a_verdict_within_the_noise_says_there_is_no_clear_winner(tmp_path):
    def overlap(runs):
        for r in runs:
            r["ci95"] = [r["samples_per_s"] * 0.5, r["samples_per_s"] * 1.5]

    vs = _verdict_of(tmp_path, overlap)
    assert vs and all("no clear winner" in v.text and "use " not in v.text for v in vs)


def test_a_verdict_for_a_lower_precision_names_its_accuracy_cost(tmp_path):
    def cheaper(runs):
        for r in runs:
            r["ci95"] = [r["samples_per_s"] * 0.99, r["samples_per_s"] * 1.01]
        fast = runs[0]
        fast.update(precision="bf16", math="bf16", accuracy_delta=-0.0012, parity_ok=True)
        fast["samples_per_s"] *= 10
        fast["ci95"] = [fast["samples_per_s"] * 0.99, fast["samples_per_s"] * 1.01]

    v = next(v for v in _verdict_of(tmp_path, cheaper) if "bf16" in v.pick)
    assert "(bf16: accuracy -0.12 points against fp32)" in v.text


def test_flop_figures_only_where_a_batch_does_real_work(own, tmp_path):
    out, result = bench(own["text"], *TEXT, cwd=tmp_path)
    text = " ".join(out.out.split())
    assert result["flops_per_sample"] < 1e6 and "% peak" not in text and "GFLOP/s" not in text
    assert "0.00 MFLOP" not in text and " FLOP/sample" in text
    out, _ = bench(own["conv"], "--dim", "height=64,width=64", cwd=tmp_path)
    assert "% peak" in out.out and "MFLOP/sample" in " ".join(out.out.split())


# ---------------------------------------------------------------------------- training's Ctrl-C


def _ctrl_c_in_epoch(monkeypatch, epoch: int) -> None:
    """Ctrl-C as epoch `epoch` starts its validation (its training done, not yet recorded)."""
    from crossrt.ui import console as ui_console

    seen = []
    real = ui_console.TrainProgress.validating

    def validating(self):
        seen.append(1)
        if len(seen) == epoch:
            raise KeyboardInterrupt
        real(self)

    monkeypatch.setattr(ui_console.TrainProgress, "validating", validating)


TRAIN_QUICK = ("--threads", "1", "--batch-size", "100", "--valid-batch-size", "100")


def test_ctrl_c_before_the_first_epoch_ends_saves_no_result_and_no_table(workdir, tiny_data, monkeypatch, capsys):
    _ctrl_c_in_epoch(monkeypatch, 1)
    code = main(["train", "--data-dir", str(tiny_data), "--epochs", "2", *TRAIN_QUICK, "--out", "exp"])
    out, err = capsys.readouterr()
    assert code == 130 and "no epoch finished, so no result was saved" in err, err
    assert "┃" not in out and "—" not in out  # no summary table of dashes
    assert not (workdir / "results").exists() and not list((workdir / "exp").glob("*.json"))


def test_ctrl_c_after_a_complete_run_says_which_file_holds_what(workdir, tiny_data, monkeypatch, capsys):
    """A complete run, then a longer one stopped after its first epoch: the message says the checkpoint
    holds that 1 epoch while the ONNX file is still the earlier run's, and bench-infer says so too
    (not "--no-export")."""
    args = ["train", "--data-dir", str(tiny_data), *TRAIN_QUICK, "--out", "exp"]
    assert main([*args, "--epochs", "1"]) == 0
    _ctrl_c_in_epoch(monkeypatch, 2)
    assert main([*args, "--epochs", "3", "--seed", "5"]) == 130
    err = capsys.readouterr().err
    assert "exp/lenet5.pt keeps 1 epoch(s), and exp/lenet5.onnx is still the model of an earlier run" in err, err
    out = run_main("bench-infer", "--model", "exp/lenet5.onnx", "--data-dir", str(tiny_data), cwd=workdir)
    assert out.code == 2 and "stopped after 1 of its 3 epoch(s)" in out.err and "--no-export" not in out.err, out.err


# ---------------------------------------------------------------------------- hints that name the cause


def test_hints_name_the_real_cause(own, tmp_path):
    missing = run_main("bench-infer", "--model", "mine.onnx", cwd=tmp_path)
    assert missing.code == 2 and missing.err.strip() == "crossrt: error: mine.onnx: no such model"
    default = run_main("bench-infer", cwd=tmp_path)  # crossrt's own export is what `make train` makes
    assert default.code == 2 and "run `make train` first" in default.err
    (tmp_path / "empty.onnx").write_bytes(b"")
    empty = run_main("bench-infer", "--model", "empty.onnx", cwd=tmp_path)
    assert empty.code == 2 and "empty.onnx: not an ONNX model (it holds no graph: 0 bytes)" in empty.err
    both = bench(own["conv"], "--dim", "batch=8,height=8,width=8", "--batch-size", "4", cwd=tmp_path)[0]
    assert both.code == 2 and "--dim batch=8 binds the batch dimension too" in both.err, both.err
    (tmp_path / "bin.json").write_bytes(own["conv"].read_bytes()[:200])
    binary = run_main("show", "bin.json", cwd=tmp_path)
    assert binary.code == 2 and "not a result file (binary, not JSON text)" in binary.err
    kinds = run_main("compare", str(canned("train.json")), str(canned("bench.json")), cwd=tmp_path)
    assert kinds.code == 2 and "is a train result and" in kinds.err and "a bench-infer result" in kinds.err


def test_doctor_does_not_call_a_provider_ok_for_being_built_in():
    out = run_main("doctor")
    line = next(ln for ln in out.out.splitlines() if "onnxruntime:" in ln)
    assert "execution providers built in:" in line and "(whether CUDA's runs here: below)" in line


# ---------------------------------------------------------------------------- LoadGen for any model

LOADGEN = ("--duration", "0.3", "--threads", "1", "--max-batch", "4")


def test_loadgen_serves_a_model_of_ones_own_on_its_own_inputs(own, tmp_path):
    flags = (*TEXT, "--runtimes", "onnxruntime", "--scenarios", "single-stream,offline", "--batches-per-pass", "3")
    out = run_main("loadgen", "--model", str(own["text"]), *LOADGEN, *flags, "--json", "lg.json", cwd=tmp_path)
    assert out.code == 0, out.err
    result = json.loads((tmp_path / "lg.json").read_text())
    assert result["dataset"] is None and result["samples"] == 3 * 4  # --batches-per-pass x --max-batch
    assert [r["scenario"] for r in result["runs"]] == ["single-stream", "offline"]
    assert all(r["valid"] and r["runtime"] == "onnxruntime" for r in result["runs"])
    assert result["model_info"]["inputs"][1] == "attention_mask int64[batch=4, seq=16] (all 1)"
    assert "its own inputs: input_ids int64[batch=4, seq=16]" in " ".join(out.out.split())


@pytest.mark.slow
def test_loadgen_serves_an_inputs_file_s_samples_and_the_user_s_torch_network(two, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "in.npz", feats=rng.random((6, 6), np.float32), extra=rng.random((6, 3), np.float32))
    flags = ("--inputs", "in.npz", "--torch-model", str(two / "twotwo.pt2"), "--scenarios", "offline")
    args = ("loadgen", "--model", str(two / "twotwo.onnx"), *LOADGEN, "--runtimes", "onnxruntime,pytorch", *flags)
    out = run_main(*args, "--json", "lg.json", cwd=tmp_path)
    assert out.code == 0, out.err
    result = json.loads((tmp_path / "lg.json").read_text())
    assert result["samples"] == 6 and {r["runtime"] for r in result["runs"]} == {"onnxruntime", "pytorch"}


@pytest.mark.parametrize(
    "flags, says",
    [
        (("--accuracy",), "--accuracy: text.onnx has no dataset, so no labels to score LoadGen's accuracy on"),
        (("--value", "input_ids=1,attention_mask=1"), "not bound: seq"),
        (("--dim", "seq=4", "--value", "input_ids=1"), "input 'attention_mask' is int64"),
    ],
)
def test_what_loadgen_cannot_serve_is_said_first_in_one_line(own, tmp_path, flags, says):
    out = run_main("loadgen", "--model", str(own["text"]), *LOADGEN, "--runtimes", "onnxruntime", *flags, cwd=tmp_path)
    assert out.code == 2 and len(out.err.strip().splitlines()) == 1 and says in out.err, out.err


# ---------------------------------------------------------------------------- LoadGen's words


def test_a_server_search_that_kept_no_rate_claims_no_qps(capsys):
    from crossrt.ui import serving

    result = load_result(canned("loadgen.json"))
    run = next(r for r in result.runs if r.scenario == "server")
    run.valid = False
    for step in run.search:
        step.valid = False
    serving.run_line(run)
    line = " ".join(capsys.readouterr().out.split())
    lowest = min(run.search, key=lambda t: t.qps)
    assert f"no rate tried kept p99 <= {run.latency_bound_ms:g} ms; the lowest, " in line
    assert f"had p99 {lowest.p99_ms:.3f} ms" in line and "QPS at p99" not in line


def test_report_gives_loadgen_s_scenario_and_verdict_columns_of_their_own():
    out = run_main("report", "--csv", str(canned("loadgen.json")))
    rows = list(csv.DictReader(io.StringIO(out.out)))
    assert {r["device"] for r in rows} == {"cpu"}
    assert {(r["scenario"], r["loadgen"]) for r in rows if r["runtime"] == "onnxruntime"} == {
        ("single-stream", "VALID"),
        ("multi-stream", "INVALID"),
        ("offline", "VALID"),
        ("server p99<=20 ms", "VALID"),
        ("offline accuracy", ""),
    }
    table = run_main("report", str(canned("loadgen.json")), columns=80)
    assert "batch None" not in table.out and "None" not in table.out


# ---------------------------------------------------------------------------- outputs compared


def test_outputs_are_held_to_a_tolerance_by_dtype_and_precision_or_the_user_s():
    ref = [[np.array([[1.0, 2.0, 3.0]], np.float32), np.array([[2]], np.int64)]]
    close = [[np.array([[1.0, 2.0, 3.0005]], np.float32), np.array([[2]], np.int64)]]
    f, i = compare_outputs(ref, close, ["scores", "index"], "fp32")
    assert not f.ok and f.tolerance == 1e-4 and f.max_rel == pytest.approx(0.0005 / 3, rel=1e-3)
    assert f.cosine == pytest.approx(1.0, abs=1e-7) and i.ok and i.tolerance == 0.0  # an index: exactly
    wrong_index = [[close[0][0], np.array([[3]], np.int64)]]
    assert not compare_outputs(ref, wrong_index, ["scores", "index"], "fp32")[1].ok
    assert compare_outputs(ref, wrong_index, ["scores", "index"], "int8")[1].tolerance == 0.25
    given = compare_outputs(ref, close, ["scores", "index"], "fp32", {"scores": 1e-3})
    assert given[0].ok and given[0].tolerance == 1e-3
    every = compare_outputs(ref, close, ["scores", "index"], "fp32", {"": 1e-3})
    assert every[0].ok and every[1].tolerance == 1e-3


def test_a_failed_output_shows_the_tolerance_that_would_have_passed(two, tmp_path):
    """A network a hair off the ONNX file's (a bias moved by 1e-3) fails the fp32 tolerance; the
    table says what tolerance it would pass at, and --tolerance at that passes it."""
    near = TwoInTwoOut().eval()
    with torch.no_grad():
        near.a.bias += 1e-3
    torch.jit.trace(near, (torch.randn(2, 6), torch.randn(2, 3))).save(str(tmp_path / "near.ts"))
    flags = ("--torch-model", str(tmp_path / "near.ts"), "--runtimes", "onnxruntime,pytorch")
    args = ("bench-infer", "--model", str(two / "twotwo.onnx"), *QUICK, *flags, "--json", "b.json")
    out = run_main(*args, cwd=tmp_path)
    (row,) = [r for r in json.loads((tmp_path / "b.json").read_text())["runs"] if r["runtime"] == "pytorch"]
    worst = max(row["outputs"], key=lambda o: o["max_rel"])
    assert out.code == 1 and worst["ok"] is False and worst["tolerance"] == 1e-4 and worst["cosine"] > 0.99
    printed = rounded_up(worst["max_rel"])
    assert f"no (passes at {printed})" in " ".join(out.out.split())
    assert run_main(*args, "--tolerance", printed, cwd=tmp_path).code == 0  # the tolerance as printed passes


@pytest.mark.parametrize(
    "flags, says",
    [
        (
            ("--tolerance", "nosuch=1"),
            "--tolerance nosuch: the model has no output 'nosuch' (its outputs: probs, total)",
        ),
        (("--tolerance", "1,2"), "--tolerance: one tolerance for every output, got 1, 2"),
        (("--tolerance", "nan"), "--tolerance 'nan': expected a number from 0 to 1e6"),
    ],
)
def test_a_bad_tolerance_is_one_line(two, tmp_path, flags, says):
    out = run_main("bench-infer", "--model", str(two / "twotwo.onnx"), *QUICK, *flags, cwd=tmp_path)
    assert out.code == 2 and out.err.strip() == f"crossrt: error: {says}"


def test_no_lock_file_is_left_in_the_model_s_folder(own, tmp_path):
    from crossrt.files import LOCK_FILE, FolderLock

    model = tmp_path / "conv.onnx"
    model.write_bytes(own["conv"].read_bytes())
    out = run_main("quantize", "--model", str(model), "--dim", "height=8,width=8", cwd=tmp_path)
    assert out.code == 0, out.err
    assert not (tmp_path / LOCK_FILE).exists() and (tmp_path / "conv.int8.onnx").is_file()
    with FolderLock(tmp_path):  # held, it is there; released, it is gone, and the next run takes it
        assert (tmp_path / LOCK_FILE).is_file()
    assert not (tmp_path / LOCK_FILE).exists()
    with FolderLock(tmp_path):
        pass


def test_quantize_states_the_samples_it_really_used(own, tmp_path):
    np.savez(tmp_path / "in4.npz", image=np.random.default_rng(0).random((4, 3, 8, 8), np.float32))
    model = tmp_path / "conv.onnx"
    model.write_bytes(own["conv"].read_bytes())
    out = run_main("quantize", "--model", str(model), "--inputs", "in4.npz", cwd=tmp_path)
    assert out.code == 0 and "calibrated with MinMax on the 4 given samples of in4.npz" in " ".join(out.out.split())


def test_an_index_into_an_embedding_is_drawn_from_its_table_s_rows(tmp_path):
    """input_ids feeds a Gather of a 50-row table: with no --input-range it is drawn from [0, 50),
    said in the header, and every value is a valid row (ONNX Runtime would fail on 50 or more)."""
    table = numpy_helper.from_array(np.random.default_rng(0).random((50, 4), np.float32), "table")
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["vectors"], axis=0)]
    ins = [helper.make_tensor_value_info("input_ids", T.INT64, ["batch", "seq"])]
    model = _graph(
        tmp_path / "emb.onnx",
        nodes,
        ins,
        [helper.make_tensor_value_info("vectors", T.FLOAT, ["batch", "seq", 4])],
        [table],
    )
    out, result = bench(model, "--dim", "seq=64", "--batch-size", "8", cwd=tmp_path)
    assert out.code == 0, out.err
    assert result["model_info"]["inputs"] == [
        "input_ids int64[batch=8, seq=64] (uniform integers in [0, 50), seed 0; the range of the table it "
        "indexes (Gather), from the graph)"
    ]
    from crossrt.config import InputsConfig
    from crossrt.inputs import generate, signature, table_rows, use_graph_ranges

    feed = InputsConfig(dims=("seq=64",))
    sig = signature(onnx.load(str(model)))
    use_graph_ranges(feed, table_rows(onnx.load(str(model)), sig[0]))
    drawn = generate(sig[0], {"input_ids": (8, 64)}, feed, 3)
    assert all(0 <= b["input_ids"].min() and b["input_ids"].max() < 50 for b in drawn)
    assert len({int(v) for b in drawn for v in b["input_ids"].ravel()}) > 40  # the whole table, not a corner
    given = bench(model, "--dim", "seq=4", "--input-range", "input_ids=0:5", cwd=tmp_path)[1]  # the user's wins
    assert given["model_info"]["inputs"][0].endswith("(uniform integers in [0, 5), seed 0)")


def test_plots_give_each_model_and_feed_a_row_of_its_own(own, tmp_path):
    pytest.importorskip("matplotlib")
    from crossrt.ui.plots import model_groups

    for hw in (8, 32):
        bench(own["conv"], "--dim", f"height={hw},width={hw}", cwd=tmp_path, json_name=f"c{hw}.json")
    results = [load_result(tmp_path / f"c{hw}.json") for hw in (8, 32)] + [load_result(canned("bench.json"))]
    labels = [label for label, _ in model_groups(results).values()]
    assert len(labels) == 3
    assert any("image float32[batch=1, 3, height=32, width=32]" in label for label in labels)
    out = run_main("report", "c8.json", "c32.json", str(canned("bench.json")), "--plots", "plots", cwd=tmp_path)
    assert out.code == 0 and (tmp_path / "plots" / "throughput_vs_threads.png").stat().st_size > 10_000


# ---------------------------------------------------------------------------- layout


def test_notes_and_verdicts_wrap_at_the_terminal_s_width_not_the_table_s():
    """At 60 columns: no line is wider than the terminal; the caption under a narrow table (LoadGen's
    search) uses the whole width, not the table's; LoadGen's reason is said once under the table,
    not eight lines per row; verdict lines wrap between words."""
    lg = run_main("show", str(canned("loadgen.json")), columns=60)
    lines = lg.out.splitlines()
    assert lg.code == 0 and max(map(len, lines)) <= 60
    assert not any("Reduce" in ln and "│" in ln for ln in lines)  # no reason sentence inside a cell
    bench_out = run_main("show", str(canned("bench.json")), columns=60)
    lines = bench_out.out.splitlines()
    assert max(map(len, lines)) <= 60
    verdict = [i for i, ln in enumerate(lines) if ln.startswith("verdict")]
    assert verdict and all(len(lines[i]) > 40 for i in verdict)  # wrapped near the width, not at a column's
    narrow_table = max(len(ln) for ln in lines if ln.startswith("┃"))
    text = [ln for ln in lines if ln and not set(ln) & set("┃│┏└┡━─")]
    assert any(len(ln.rstrip()) > narrow_table for ln in text) or narrow_table >= 58


def test_json_into_a_folder_that_does_not_exist_is_refused_not_created(own, tmp_path):
    out, _ = bench(own["conv"], "--dim", "height=8,width=8", cwd=tmp_path, json_name="typo/x.json")
    assert out.code == 2 and "--json typo/x.json: no folder typo to write it in (create it first)" in out.err
    assert not (tmp_path / "typo").exists() and not (tmp_path / "results").exists()


def test_a_missing_export_beside_its_checkpoint_says_to_export_it(tmp_path, trained):
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "lenet5.pt").write_bytes((trained / "lenet5.pt").read_bytes())
    out = run_main("bench-infer", cwd=tmp_path)
    assert out.code == 2 and "exports/lenet5.pt is there: export it with `crossrt export --checkpoint" in out.err


def test_an_inputs_file_s_index_beyond_its_table_is_refused(tmp_path):
    table = numpy_helper.from_array(np.zeros((10, 2), np.float32), "table")
    nodes = [helper.make_node("Gather", ["table", "ids"], ["v"])]
    ins = [helper.make_tensor_value_info("ids", T.INT64, ["batch", 3])]
    model = _graph(
        tmp_path / "g.onnx", nodes, ins, [helper.make_tensor_value_info("v", T.FLOAT, ["batch", 3, 2])], [table]
    )
    np.savez(tmp_path / "in.npz", ids=np.array([[1, 2, 12]], np.int64))
    out, _ = bench(model, "--inputs", "in.npz", cwd=tmp_path)
    assert (
        out.code == 2
        and "ids holds values from 1 to 12, and the table of the graph it indexes (Gather) has 10 rows" in out.err
    )


def test_a_torch_model_of_another_network_says_so(two, tmp_path):
    one_input = torch.jit.trace(torch.nn.Linear(6, 2).eval(), (torch.randn(1, 6),))
    one_input.save(str(tmp_path / "one.ts"))
    flags = ("--torch-model", str(tmp_path / "one.ts"), "--runtimes", "pytorch")
    out = run_main("bench-infer", "--model", str(two / "twotwo.onnx"), *QUICK, *flags, cwd=tmp_path)
    assert out.code == 2 and "the network takes 1 input(s) (input), the ONNX graph has 2 (feats, extra)" in out.err, (
        out.err
    )
    alone = run_main(
        "bench-infer",
        "--model",
        str(two / "twotwo.onnx"),
        "--torch-model",
        str(two / "twotwo.ts"),
        "--runtimes",
        "onnxruntime",
        cwd=tmp_path,
    )
    assert alone.code == 2 and "no runtime that runs it among --runtimes (onnxruntime)" in alone.err


def test_apart_rarely_finds_a_difference_that_is_not_there():
    """Two runs of the same noise, at the repeat counts compare meets (2 steady epochs, 3 passes,
    5, 10): fewer than 1% are called apart (a percentile bootstrap at 3 repeats called 10%)."""
    from crossrt.compare import apart

    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 10):
        same = [
            apart(list(1 + 0.05 * rng.standard_normal(n)), list(1 + 0.05 * rng.standard_normal(n))) for _ in range(500)
        ]
        assert sum(same) / len(same) < 0.01, n
    assert apart([1.0, 1.01, 0.99], [2.0, 2.02, 1.98])  # a real 2x stands out even at 3 repeats


def test_the_network_is_fed_in_the_graph_s_order_whatever_the_file_s(tmp_path):
    """An .npz saved as (mask, ids) for a graph of (ids, mask), both [B, 4] int64: the user's network
    gets ids first; fed in the file's order it would compute something else without a word."""

    class IdsMask(torch.nn.Module):
        def forward(self, ids, mask):
            return (ids * 10 + mask).to(torch.float32)

    net = IdsMask().eval()
    example = (torch.ones(2, 4, dtype=torch.int64), torch.zeros(2, 4, dtype=torch.int64))
    _export(
        net,
        example,
        tmp_path / "im.onnx",
        input_names=["ids", "mask"],
        output_names=["y"],
        dynamic_axes={"ids": {0: "b"}, "mask": {0: "b"}, "y": {0: "b"}},
    )
    torch.jit.trace(net, example).save(str(tmp_path / "im.ts"))
    np.savez(tmp_path / "in.npz", mask=np.zeros((2, 4), np.int64), ids=np.full((2, 4), 3, np.int64))
    flags = ("--torch-model", "im.ts", "--runtimes", "onnxruntime,pytorch", "--inputs", "in.npz")
    out = run_main("bench-infer", "--model", "im.onnx", *QUICK, *flags, "--json", "b.json", cwd=tmp_path)
    assert out.code == 0, out.err
    (row,) = [r for r in json.loads((tmp_path / "b.json").read_text())["runs"] if r["runtime"] == "pytorch"]
    assert row["parity_ok"] is True and row["outputs"][0]["max_abs"] == 0


def test_repeated_runs_merge_into_medians_with_an_outlier(tmp_path):
    base = json.loads(canned("train.json").read_text())
    for k, scale in enumerate((1.0, 1.1, 5.0)):  # the third is an outlier: the median ignores it
        run = json.loads(json.dumps(base))
        run["run_id"] = f"{k:08d}"
        for epoch in run["epochs"]:
            epoch["train_s"] *= scale
        (tmp_path / f"{k}.json").write_text(json.dumps(run))
    one = list(csv.DictReader(io.StringIO(run_main("report", "--csv", "1.json", cwd=tmp_path).out)))[0]
    (merged,) = csv.DictReader(io.StringIO(run_main("report", "--csv", "0.json", "1.json", "2.json", cwd=tmp_path).out))
    assert merged["n"] == "3"
    assert float(merged["train_s"]) == pytest.approx(float(one["train_s"]), rel=1e-6)
    assert float(merged["samples_per_s"]) == pytest.approx(float(one["samples_per_s"]), rel=1e-6)


def test_passes_at_is_a_tolerance_that_passes():
    for x in (1.24e-4, 1.2e-4, 1.21e-07, 9.99e-3, 0.0005 / 3):
        assert float(rounded_up(x)) >= x and float(rounded_up(x)) <= 1.1 * x + 1e-12
