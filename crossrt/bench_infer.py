"""bench-infer: time full passes of a model under every runtime asked for, on equal terms.

Every runtime gets the same batches (made before any clock starts), the same batch sizes and the
same thread counts, and is timed by the same loop (:func:`crossrt.timing.time_passes`). An MNIST
classifier (crossrt's LeNet5) runs the dataset's test images and is scored on their labels, as
the reference does; any other ONNX model runs the inputs crossrt.inputs binds and makes. Per
configuration we record the cold costs on their own (session creation or compilation, first
inference), then steady-state per-batch latency and whole-pass throughput with their spread and
CPU cost, and compare every output with ONNX Runtime CPU fp32 on the same inputs (and, for
LeNet5, accuracy and top-1 with PyTorch). Which runtimes exist, where they run and how their
runners are built is crossrt.runtimes.registry's to say.

With `isolate`, each configuration runs in a fresh spawned process, so no allocator or
thread-pool state carries over from the one before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from . import checkpoint, inputs, reference
from .checks import fits
from .config import MNIST_BATCH, BenchConfig
from .config.bench import DEFAULT_MODEL
from .data import Dataset
from .errors import ConfigError, ModelError
from .files import load_result, regular_file
from .flops import onnx_flops
from .isolate import isolated
from .peak import measured_peak, unbeaten
from .plan import configuration_of, one_line, plan, run_planned, skipped
from .results import BenchResult, Configuration, CudaSplit, Failed, InferRun, OutputComparison, TrainResult
from .runtimes.base import Row
from .runtimes.pytorch import archive, check_network
from .runtimes.registry import RUNTIMES, check_options
from .schema import plain
from .system import cpu_count, environment, peak_rss_mb
from .timing import time_passes, timed
from .verdicts import verdicts

# bf16 and int8 rows may differ from PyTorch's fp32 accuracy by this much (fp32 rows: not at all).
LOW_PRECISION_TOLERANCE = 0.005
# An fp32 model run in TF32 (cuDNN's convolutions, ORT CUDA's use_tf32), on either side of the
# comparison: 10 mantissa bits flip the near ties, a few images of 10,000.
TF32_TOLERANCE = 0.001
# The largest output difference from ONNX Runtime CPU fp32 on the same inputs, over the output's
# largest magnitude, that a row of each math mode may show (docs/methodology.md).
OUTPUT_TOLERANCE = {"fp32": 1e-4, "tf32": 1e-2, "bf16": 5e-2, "int8": 0.25}
# ... at least, for a model that itself computes in a narrower float (model_precision): ~10 fp16 steps.
MODEL_TOLERANCE = {"fp16": 1e-2, "bf16": OUTPUT_TOLERANCE["bf16"]}
# Operators that draw random numbers (Dropout too, when given its training_mode input): what
# depends on them differs from run to run and from runtime to runtime, with nothing to be held to.
RANDOM_OPS = {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli", "Multinomial"}
VARIES = "not compared: it depends on random numbers the model draws (a random operator, Dropout in training mode)"


@dataclass
class Prepared:
    """What bench-infer checked before any data is read: the model, how it is fed, what it costs."""

    flops_per_sample: int | None  # None: not counted (crossrt.flops)
    metadata: dict  # the model's metadata_props (dataset, data_dir, weights_sha256, ...)
    training: TrainResult | None  # the run that made the model, for the training-vs-validation table
    torch_rows: bool  # a runtime of the PyTorch model was asked for: the checkpoint is needed and was checked
    model_info: dict  # name, sha256, bytes, parameters, inputs as bound, outputs, arch
    mnist: bool  # fed the dataset's images and scored on labels (an MNIST classifier's signature)
    batch_sizes: tuple[int, ...]
    signature: tuple[list, list] = field(default_factory=lambda: ([], []))  # inputs, outputs (crossrt.inputs.Tensor)
    shapes: dict = field(default_factory=dict)  # batch size -> {input: shape}, for a model without a dataset

    @property
    def trained_on(self) -> tuple[str | None, str | None]:
        return self.metadata.get("dataset") or None, self.metadata.get("data_dir") or None


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read a MiB at a time (an --inputs file may be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def _model_info(path, model: onnx.ModelProto, meta: dict, sig, inputs_as_fed: list[str]) -> dict:
    params = sum(int(np.prod(init.dims)) for init in model.graph.initializer)
    return {
        "name": path.name,
        "path": str(path),
        "bytes": path.stat().st_size,
        "sha256": file_sha256(path),
        "parameters": params,
        "arch": meta.get("arch") or None,
        "weights_sha256": meta.get("weights_sha256") or None,
        "inputs": inputs_as_fed,
        "outputs": [t.shown() for t in sig[1]],
        "precision": model_precision(model),
    }


def prepare(cfg: BenchConfig) -> Prepared:
    """Fail on a bad model, binding, provider, checkpoint or training record before any work starts.
    Only the runtimes asked for are asked: PyTorch rows on CUDA need no ONNX Runtime CUDA session."""
    hint = None
    if cfg.checkpoint.is_file():  # a training run (stopped early, or --no-export) left its checkpoint
        hint = f"{cfg.checkpoint} is there: export it with `crossrt export --checkpoint {cfg.checkpoint}`"
    elif Path(cfg.model) == DEFAULT_MODEL:  # only crossrt's own export is made by `make train`
        hint = "run `make train` first to create it"
    path = regular_file(cfg.model, "model", missing=hint)
    model = inputs.load_model(path)
    inputs.check_external_data(path, model)
    check_options(cfg)  # a runtime option no runtime asked for takes, or a bad value: before any work
    reference.check(path)  # ONNX Runtime's CPU provider gives the outputs every runtime is held against
    meta = {p.key: p.value for p in model.metadata_props}
    sig = inputs.signature(model)
    if unknown := [n for n in cfg.tolerance_map if n and n not in {t.name for t in sig[1]}]:
        raise ConfigError(
            f"--tolerance {unknown[0]}: the model has no output {unknown[0]!r} "
            f"(its outputs: {', '.join(t.name for t in sig[1])})"
        )
    mnist = inputs.is_mnist_classifier(*sig)
    if mnist and (given := inputs.flags_given(cfg.feed)):
        raise ConfigError(
            f"{given[0]}: {path} is an MNIST classifier, fed the dataset's test images; "
            f"{', '.join(given)} are for other models"
        )
    rows = {} if mnist else inputs.table_rows(model, sig[0])
    inputs.use_graph_ranges(cfg.feed, rows)
    shapes = {} if mnist else inputs.bind_batches(cfg.feed, cfg.batch_sizes, path, sig, rows)
    batch_sizes = (cfg.batch_sizes or (MNIST_BATCH,)) if mnist else tuple(shapes)
    first = (
        {sig[0][0].name: np.zeros((1, 1, 28, 28), np.float32)}
        if mnist
        else inputs.feeds(cfg.feed, sig, shapes, batch_sizes[0], 1).feeds[0]
    )
    for provider in cfg.providers:
        for name in cfg.runtimes:
            if not RUNTIMES[name].unavailable(provider, cfg):
                RUNTIMES[name].check(cfg, provider, first)
    if not mnist:  # what a pass keeps of the outputs too, not of the inputs only (bind_batches)
        inputs.check_pass_memory(cfg.feed, sig[0], shapes, reference.first_outputs(path, first))
    torch_rows = any(RUNTIMES[r].model == "torch" and not RUNTIMES[r].unavailable("cpu", cfg) for r in cfg.runtimes)
    torch_model = None  # the user's network the PyTorch rows ran, for the title (ui.bench.model_title)
    if cfg.torch_model is not None and not torch_rows:
        raise ConfigError(
            f"--torch-model {cfg.torch_model}: no runtime that runs it among --runtimes "
            f"({', '.join(cfg.runtimes)}): add pytorch or torch-compile"
        )
    if torch_rows and cfg.torch_model is not None:
        if mnist:
            raise ConfigError(
                f"--torch-model: {path} is an MNIST classifier, whose PyTorch rows run --checkpoint's LeNet5"
            )
        check_network(regular_file(cfg.torch_model, "--torch-model"), first)
        torch_model = {"name": cfg.torch_model.name, "format": archive(cfg.torch_model)}
    elif torch_rows:
        state = checkpoint.load(cfg.checkpoint)
        checkpoint.build_model(state, cfg.checkpoint)  # weights of another shape fail here, not mid-run
        ours = state.get("weights_sha256") or checkpoint.fingerprint(state["model"])
        theirs = meta.get("weights_sha256")
        if not theirs:  # a model from elsewhere, timed against this checkpoint, would fail only on accuracy
            raise ModelError(
                f"{cfg.model} carries no weights fingerprint (weights_sha256), so nothing says it "
                f"holds the weights of {cfg.checkpoint}, which the PyTorch rows run: export that "
                f"checkpoint with `crossrt export --checkpoint {cfg.checkpoint}`, or time the model "
                f"alone with --runtimes onnxruntime"
            )
        if ours != theirs:
            done, wanted = len(state.get("epochs") or ()), (state.get("config") or {}).get("epochs")
            if wanted and done < wanted:  # a run stopped early left it: its export comes when it finishes
                raise ModelError(
                    f"{cfg.model} holds other weights than {cfg.checkpoint}, which holds a training run stopped "
                    f"after {done} of its {wanted} epoch(s) (Ctrl-C?): finish it with `crossrt train --resume` "
                    f"(it exports at the end), export these {done} epoch(s) with `crossrt export --checkpoint "
                    f"{cfg.checkpoint}`, or pass the --checkpoint {cfg.model} was exported from"
                )
            raise ModelError(
                f"{cfg.model} holds other weights than {cfg.checkpoint} (an older export, e.g. after "
                f"`train --no-export`): export this checkpoint with `crossrt export --checkpoint "
                f"{cfg.checkpoint}`, or pass the matching --checkpoint"
            )
    train_json = cfg.train_json or cfg.model.with_suffix(".train.json")
    training = None
    if cfg.train_json is not None or train_json.is_file():
        training = load_result(regular_file(train_json, "--train-json"), ("train",))
    one = {sig[0][0].name: (1, 1, 28, 28)} if mnist else shapes[batch_sizes[0]]
    flops = onnx_flops(model, one)
    per_sample = flops and flops // (1 if mnist else inputs.samples_per_batch(sig[0], one))
    fed = [t.shown() for t in sig[0]] if mnist else inputs.described(sig[0], cfg.feed, list(shapes.values()))
    info = _model_info(path, model, meta, sig, fed)
    if varies := random_outputs(model):
        info["random_outputs"] = varies
    if torch_model:
        info["torch_model"] = torch_model
    if not mnist:  # what it was fed is part of a configuration's identity (crossrt.compare.feed_of)
        digest = file_sha256(cfg.feed.inputs) if cfg.feed.inputs is not None else None
        if digest:
            info["inputs_sha256"] = digest
        info["feed"] = inputs.identity(sig[0], cfg.feed, shapes[batch_sizes[0]], digest)
    return Prepared(per_sample, meta, training, torch_rows, info, mnist, batch_sizes, sig, shapes)


def score(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Mean cross-entropy, accuracy and top-1 predictions of a pass's logits."""
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    preds = logits.argmax(axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean()), float((preds == labels).mean()), preds


def tolerance(dtype: np.dtype, math: str, precision: str = "fp32") -> float:
    """The max_rel an output of dtype may show in a row of math mode: the mode's (OUTPUT_TOLERANCE);
    an integer or boolean output of an fp32 row exactly (an index or a mask has no rounding); a
    float16 output at least fp16's own rounding (1e-3); and a model that computes in a narrower
    float (precision: model_precision) at least that float's (MODEL_TOLERANCE), whatever the row's
    math, since two runtimes may round its fp16 steps apart."""
    if dtype.kind in "iub":
        return 0.0 if math == "fp32" else OUTPUT_TOLERANCE[math]
    limit = max(OUTPUT_TOLERANCE[math], 1e-3) if dtype == np.float16 else OUTPUT_TOLERANCE[math]
    return max(limit, MODEL_TOLERANCE.get(precision, 0.0))


def model_precision(model: onnx.ModelProto) -> str:
    """The narrowest float the graph computes in: bf16 or fp16 where any weight, declared value or
    Cast is of that type (in subgraphs too), else fp32."""
    narrow = {TensorProto.FLOAT16: "fp16", TensorProto.BFLOAT16: "bf16"}
    found = set()
    for graph in inputs.graphs(model.graph):
        found |= {narrow.get(t.data_type) for t in graph.initializer}
        for vi in (*graph.input, *graph.output, *graph.value_info):
            found.add(narrow.get(vi.type.tensor_type.elem_type) if vi.type.HasField("tensor_type") else None)
        for node in graph.node:
            found |= {narrow.get(a.i) for a in node.attribute if node.op_type == "Cast" and a.name == "to"}
            found |= {narrow.get(a.t.data_type) for a in node.attribute if a.HasField("t")}
    return "bf16" if "bf16" in found else "fp16" if "fp16" in found else "fp32"


def _draws(node: onnx.NodeProto) -> bool:
    """The node draws random numbers, itself or in a subgraph (a Loop's body)."""
    if node.op_type in RANDOM_OPS or (node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]):
        return True
    return any(_draws(n) for a in node.attribute for g in ((a.g,) if a.HasField("g") else a.graphs) for n in g.node)


def random_outputs(model: onnx.ModelProto) -> list[str]:
    """The graph's outputs that depend on a random draw, followed through its nodes (in the
    topological order ONNX keeps them in)."""
    tainted: set[str] = set()
    for node in model.graph.node:
        if _draws(node) or tainted.intersection(node.input):
            tainted.update(node.output)
    return [o.name for o in model.graph.output if o.name in tainted]


def compare_outputs(
    reference: list[list[np.ndarray]],
    got: list[list[np.ndarray]],
    names: list[str],
    math: str,
    tolerances: dict[str, float] | None = None,
    precision: str = "fp32",
) -> list[OutputComparison]:
    """Per output, over every batch: the largest absolute difference from the reference, that over
    the reference's largest magnitude (max_rel), the cosine similarity of all values, top-1
    agreement where the output looks like class scores (floats, last dimension of 2 or more), and
    whether max_rel is within its tolerance: tolerances[name] (--tolerance NAME=R), tolerances[""]
    (--tolerance R), else tolerance() by its dtype, math and the model's precision. A sequence output
    is compared element by element, strings exactly."""
    tolerances = tolerances or {}
    out = []
    for k, name in enumerate(names):
        ref = [a for r in reference for a in _tensors(r[k])]
        row = [a for g in got for a in _tensors(g[k])]
        if len(ref) != len(row) or any(a.shape != b.shape for a, b in zip(ref, row)):
            out.append(OutputComparison(name, None, None, None, False, "shapes differ from the reference"))
            continue
        if not ref:
            out.append(OutputComparison(name, None, None, None, True, "empty on both sides"))
            continue
        if not all(a.dtype.kind in "fiub" for a in ref + row):  # strings: equal or not, no rounding
            same = all(a.dtype.kind in "UO" and np.array_equal(a, b) for a, b in zip(ref, row))
            out.append(OutputComparison(name, None, None, None, same, "compared exactly" if same else "values differ"))
            continue
        diff, scale, strays = _differences(ref, row)
        if strays:
            out.append(OutputComparison(name, None, None, None, False, "NaN or infinity where the reference differs"))
            continue
        rel = diff / scale if scale else diff
        scores = ref[0].dtype.kind == "f" and ref[0].ndim >= 2 and ref[0].shape[-1] >= 2
        top1 = (
            float(np.mean(np.concatenate([(a.argmax(-1) == b.argmax(-1)).ravel() for a, b in zip(ref, row)])))
            if scores and ref[0].size
            else None
        )
        limit = tolerances.get(name, tolerances.get("", tolerance(ref[0].dtype, math, precision)))
        ok = np.isfinite(rel) and rel <= limit
        out.append(OutputComparison(name, diff, rel, top1, bool(ok), cosine=_cosine(ref, row), tolerance=limit))
    return out


def _tensors(output) -> list[np.ndarray]:
    """One batch's output as its arrays: a tensor is one, a sequence (a list, from ONNX Runtime)
    its elements, whatever their shapes."""
    if isinstance(output, (list, tuple)):
        return [a for item in output for a in _tensors(item)]
    return [np.asarray(output)]


def _cosine(ref: list[np.ndarray], got: list[np.ndarray]) -> float | None:
    """Cosine similarity of every finite value of the output, over all batches; 1 for two zero outputs."""
    a = np.concatenate([x.astype(np.float64).ravel() for x in ref])
    b = np.concatenate([x.astype(np.float64).ravel() for x in got])
    if not a.size:
        return None
    kept = np.isfinite(a) & np.isfinite(b)
    a, b = a[kept], b[kept]
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / norms) if norms else float(np.array_equal(a, b))


def _differences(ref: list[np.ndarray], got: list[np.ndarray]) -> tuple[float, float, bool]:
    """The largest |difference| over the elements finite on both sides, the reference's largest
    finite magnitude, and whether a non-finite value stands where the other side differs. NaN
    where the reference is NaN, or the same infinity, agrees."""
    diff = scale = 0.0
    strays = False
    for a, b in zip(ref, got):
        a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
        finite = np.isfinite(a) & np.isfinite(b)
        strays |= bool((~finite & ~((a == b) | (np.isnan(a) & np.isnan(b)))).any())
        if finite.any():
            diff = max(diff, float(np.abs(a[finite] - b[finite]).max()))
        if (kept := a[np.isfinite(a)]).size:
            scale = max(scale, float(np.abs(kept).max()))
    return diff, scale, strays


def _noise_hint(row: Row) -> str | None:
    if row.provider == "cpu" and (row.threads or cpu_count()) > cpu_count():
        return f"{row.threads} threads on {cpu_count()} cores" + (", spinning" if row.spin else "")
    return None


def measure(cfg: BenchConfig, work: inputs.Workload, row: Row, flops: int | None) -> tuple[InferRun, list]:
    """Build one configuration's runner, run every batch untimed for its outputs (and score them on
    labels), time it; (row result, every batch's outputs). A top-level function of picklable
    arguments, so that it can run in a fresh process."""
    runtime = RUNTIMES[row.runtime]
    runner = runtime.runner(cfg, row, work.feeds)
    _, first_s = timed(partial(runner.run, 0))
    outputs = [runner.outputs(i) for i in range(len(work.feeds))]
    loss = accuracy = None
    if work.labels is not None and runtime.computes:  # null's zeros score nothing
        loss, accuracy, _ = score(np.concatenate([o[0] for o in outputs]), work.labels)
    passes = time_passes(
        runner.run, len(work.feeds), warmup=cfg.warmup, min_time=cfg.min_time, min_repeats=cfg.min_repeats
    )
    met = len(passes.pass_times_s) >= cfg.min_repeats and passes.total_s >= cfg.min_time
    run = InferRun.from_samples(
        passes,
        samples=work.samples,
        flops_per_sample=flops,
        rules_met=met,
        noise_hint=_noise_hint(row),
        **configuration_of(row),
        threads_effective=runner.threads_effective,
        session_create_s=runner.create_s,
        first_run_s=first_s,
        accuracy=accuracy,
        loss=loss,
        providers=runner.providers,
        split_ms=CudaSplit(**runner.split()) if runner.split else None,
        isolated=cfg.isolate,
        math=row.math,
        placement=runner.placement() if runner.placement else None,  # where every node really ran
        options=asdict(runtime.settings(cfg)),
    )
    return run, outputs


def run_bench(
    cfg: BenchConfig,
    data: Dataset | None,
    prepared: Prepared,
    on_run: Callable[[InferRun], None] | None = None,
    on_fail: Callable[[Failed], None] | None = None,
    on_start: Callable[[Configuration, int, int], None] | None = None,
) -> BenchResult:
    """Run every configuration of cfg (on the test split of data, for an MNIST classifier);
    Stopped keeps finished rows.

    A configuration that cannot run here (ProviderError) is listed in `skipped`; one that fails
    (a model error, an ONNX Runtime or CUDA error in that configuration alone) in `failed` with
    its reason, and the others still run."""
    if prepared.mnist:
        fits("--batch-size", prepared.batch_sizes, len(data.test_labels), "test images")
    ort_options = RUNTIMES["onnxruntime"].settings(cfg)
    result = BenchResult(
        model=str(cfg.model),
        checkpoint=str(cfg.checkpoint) if prepared.torch_rows else None,
        dataset=data.name if prepared.mnist else None,
        dataset_source=data.source if prepared.mnist else None,
        flops_per_sample=prepared.flops_per_sample,
        model_info=prepared.model_info,
        config={
            **plain(cfg),
            "batch_sizes": list(prepared.batch_sizes),
            "inter_op_threads": ort_options.inter_op_threads,  # ONNX Runtime's line; each row's are its `options`
            "execution_mode": ort_options.execution_mode,
            "graph_optimization": ort_options.graph_optimization,
            "cpu_cores": cpu_count(),
            "spin_note": "ORT session.intra_op.allow_spinning",
        },
        skipped=skipped(cfg),
    )
    names = [t.name for t in prepared.signature[1]]
    preds: list[np.ndarray | None] = []  # top-1 of the first output, for agreement with PyTorch (LeNet5)
    rows = plan(cfg, prepared.batch_sizes)
    works, references, broken = {}, {}, {}  # broken: batch size -> why the reference cannot run it

    def ready(row: Row) -> None:  # every runtime gets the very same batches, made once per batch size
        if row.batch not in works:
            works[row.batch] = inputs.workload(cfg, prepared, row.batch, data)
            try:
                references[row.batch] = reference.outputs(cfg.model, works[row.batch].feeds)
            except Exception as e:  # the model itself fails at this batch size: so will every row
                broken[row.batch] = one_line(e)

    def timed_row(row: Row) -> tuple[list, str]:
        if row.batch in broken:
            return [], broken[row.batch]
        flops = prepared.flops_per_sample if RUNTIMES[row.runtime].computes else None
        job = partial(measure, cfg, works[row.batch], row, flops)
        return [isolated(job) if cfg.isolate else job()], ""

    def keep(row: Row, made: tuple[InferRun, list]) -> InferRun:
        run, outputs = made
        computes = RUNTIMES[row.runtime].computes  # not null: it does no FLOP, its zeros are no outputs
        if computes:
            run.outputs = [
                OutputComparison(c.name, None, None, None, True, VARIES)
                if c.name in prepared.model_info.get("random_outputs", ())
                else c
                for c in compare_outputs(
                    references[row.batch], outputs, names, row.math, cfg.tolerance_map, prepared.model_info["precision"]
                )
            ]
        # The peak (measured once per machine and cached) in this process, not in an isolated child.
        peak = computes and unbeaten(
            measured_peak(row.provider, row.threads, row.math),
            run.gflops,
            partial(measured_peak, row.provider, row.threads, row.math, again=True),
        )
        run.peak_gflops = peak.peak if peak else None
        if peak and peak not in result.peaks:
            result.peaks.append(peak)
        preds.append(np.concatenate([o[0] for o in outputs]).argmax(1) if prepared.mnist and computes else None)
        return run

    run_planned(
        result,
        rows,
        timed_row,
        keep,
        noun="configuration(s)",
        finish=partial(_finish, result, preds),
        ready=ready,
        on_start=on_start,
        on_run=on_run,
        on_fail=on_fail,
    )
    return result


def _finish(result: BenchResult, preds: list) -> None:
    """Parity: every output within its math mode's tolerance of ONNX Runtime CPU fp32; for LeNet5
    also top-1 agreement with PyTorch's run (its first in fp32 math, the CPU's, when there is one),
    accuracies equal to it where both compute in fp32, within TF32_TOLERANCE where either runs
    in TF32, and bf16 and int8 ones within LOW_PRECISION_TOLERANCE."""
    pytorch = [i for i, r in enumerate(result.runs) if r.runtime == "pytorch"]
    ref = next((i for i in pytorch if result.runs[i].math == "fp32"), pytorch[0] if pytorch else None)
    for i, r in enumerate(result.runs):
        if r.outputs is None:  # nothing computed the model (null): nothing to agree or disagree
            continue
        r.parity_ok = all(o.ok for o in r.outputs)
        if ref is not None and preds[i] is not None:
            r.top1_agreement = float((preds[i] == preds[ref]).mean())
            r.accuracy_delta = r.accuracy - result.runs[ref].accuracy
            if r.precision != "fp32":
                limit = LOW_PRECISION_TOLERANCE
            else:
                limit = 0.0 if r.math == result.runs[ref].math == "fp32" else TF32_TOLERANCE
            r.parity_ok &= abs(r.accuracy_delta) <= limit
    result.verdicts = verdicts(result.runs)
    result.environment = environment()
    result.peak_rss_mb = peak_rss_mb()
