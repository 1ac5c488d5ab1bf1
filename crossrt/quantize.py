"""`crossrt quantize`: an int8 copy of an ONNX model, made with ONNX Runtime's own tools.

The steps ONNX Runtime documents for static quantization: `quant_pre_process` (shape inference
and graph clean-up), then `quantize_static` in the QDQ format, with per-channel int8 weights and
int8 activations whose ranges are calibrated (MinMax) on training images for an MNIST classifier
(never on the test images it is scored on), or, for any other model, on the inputs bench-infer
would give it (the same flags; checked on other, fresh ones). The int8 model keeps the fp32
model's metadata and adds how it was made; it runs under ONNX Runtime's CPU provider as the
`onnxruntime-int8` runtime.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx

from . import inputs, reference
from .bench_infer import compare_outputs
from .config import QuantizeConfig
from .data import Dataset, in_batches, normalize
from .errors import ModelError
from .files import atomic_write
from .system import available_memory

METHOD = "static QDQ, per-channel int8 weights, int8 activations calibrated with MinMax"


def calibration_feeds(cfg: QuantizeConfig, sig, data: Dataset | None) -> tuple[Iterable[dict], str]:
    """The batches the activation ranges come from, and what they are in words: an MNIST
    classifier's training images (never the test images it is scored on), else the inputs
    bench-infer gives the model (generated with the same flags, or --inputs)."""
    if data is not None:
        n = min(cfg.calibration_images, len(data.train_labels))
        name = sig[0][0].name  # the model's own input name, whatever its exporter chose
        return (
            [{name: b} for b in in_batches(normalize(data.train_images[:n]), 100)],
            f"{n:,} {data.name} training images",
        )
    shapes = inputs.bind_batches(cfg.feed, None, cfg.model, sig)
    batch = next(iter(shapes))
    per = inputs.samples_per_batch(sig[0], shapes[batch])
    if cfg.feed.inputs is not None:  # the file's samples, once each: repeating them adds no range
        work = inputs.feeds(cfg.feed, sig, shapes, batch, 1)
        return work.feeds, f"the {work.samples:,} given samples of {cfg.feed.inputs.name}"
    n = max(1, min(cfg.calibration_images // per, 1000))
    # ONNX Runtime's MinMax calibrator keeps every intermediate tensor of every batch until the end
    # (its CalibMaxIntermediateOutputs drops them instead of merging them): as many batches as fit.
    kept, have = activation_bytes(cfg.model, shapes[batch]), available_memory("cpu")
    fits = n if have is None else max(1, min(n, int(have // 2 // max(1, kept))))
    what = f"{fits * per:,} generated samples" + (
        f" (of the {n * per:,} asked for: the activations of more, {kept / 2**20:,.0f} MiB a batch, would not "
        f"fit in memory)"
        if fits < n
        else ""
    )
    # Made one at a time as the calibrator asks: the batches themselves are never all in memory.
    return inputs.generated(sig[0], shapes[batch], cfg.feed, fits), what


def activation_bytes(model: Path, shapes: dict[str, tuple[int, ...]]) -> int:
    """The bytes of every tensor one batch of these input shapes makes in the graph, by ONNX's shape
    inference with the inputs bound (a tensor of a shape it cannot infer counts as the inputs do)."""
    graph = inputs.load_model(model)
    for vi in graph.graph.input:
        if vi.name in shapes and vi.type.HasField("tensor_type"):
            vi.type.tensor_type.shape.Clear()
            for d in shapes[vi.name]:
                vi.type.tensor_type.shape.dim.add().dim_value = d
    try:
        graph = onnx.shape_inference.infer_shapes(graph)
    except Exception:  # a graph ONNX cannot infer: each tensor counted as the inputs
        pass
    floor = max((int(np.prod(s)) * 4 for s in shapes.values()), default=0)
    total = 0
    for vi in (*graph.graph.value_info, *graph.graph.output):
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        known = t.elem_type in inputs.DTYPES and None not in dims and inputs.DTYPES[t.elem_type] != "str"
        total += int(np.prod(dims)) * np.dtype(inputs.DTYPES[t.elem_type]).itemsize if known else floor
    return total


def quantize(cfg: QuantizeConfig, data: Dataset | None) -> dict:
    """Write cfg.out; return its size, the fp32 model's, and how the two agree: accuracies and
    top-1 on the test set for an MNIST classifier, every output on fresh inputs for another model."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    graph = inputs.load_model(cfg.model)
    inputs.check_external_data(cfg.model, graph)  # as the command did: quantize() is called on its own too
    sig = inputs.signature(graph)
    if data is None:
        inputs.use_graph_ranges(cfg.feed, inputs.table_rows(graph, sig[0]))
    feeds, what = calibration_feeds(cfg, sig, data)
    calibration = iter(feeds)

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(calibration, None)

    logging.disable(logging.WARNING)  # the tools log advice on stderr; the result is checked below
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
            quant_pre_process(str(cfg.model), str(pre))
            quantize_static(
                str(pre),
                str(out),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
            proto = onnx.load(str(out))
            onnx.helper.set_model_props(
                proto,
                {
                    **{p.key: p.value for p in proto.metadata_props},
                    "quantization": f"{METHOD} on {what}",
                    "calibration_images": what.split()[0].replace(",", ""),
                    "quantized_from": str(cfg.model),
                },
            )
            onnx.checker.check_model(proto)
    except (OSError, MemoryError):  # the machine's, not the model's (a full disk): said as such by the CLI
        raise
    except Exception as e:  # ONNX Runtime's tools and ONNX's checker: the model is the cause, said in one line
        why = (str(e).strip().splitlines() or [""])[0][:200]
        raise ModelError(f"{cfg.model}: cannot be quantized ({type(e).__name__}: {why})") from None
    finally:
        logging.disable(logging.NOTSET)
    atomic_write(cfg.out, proto.SerializeToString())

    sizes = {
        "fp32_bytes": cfg.model.stat().st_size,
        "int8_bytes": cfg.out.stat().st_size,
        "calibration": what,
        "method": METHOD,
    }
    if data is not None:
        x, labels = normalize(data.test_images), data.test_labels
        preds = [reference.logits(path, x).argmax(1) for path in (cfg.model, cfg.out)]
        return {
            **sizes,
            "fp32_accuracy": float((preds[0] == labels).mean()),
            "int8_accuracy": float((preds[1] == labels).mean()),
            "top1_agreement": float(np.mean(preds[0] == preds[1])),
            "test_images": len(labels),
        }
    fresh = replace(cfg.feed, input_seed=cfg.feed.input_seed + 1)  # not the calibration batches
    fresh.range_map.update(cfg.feed.range_map)  # with the ranges the graph gave
    shapes = inputs.bind_batches(fresh, None, cfg.model, sig)
    test = inputs.feeds(fresh, sig, shapes, next(iter(shapes))).feeds
    fp32, int8 = (reference.outputs(path, test) for path in (cfg.model, cfg.out))
    return {**sizes, "outputs": compare_outputs(fp32, int8, [t.name for t in sig[1]], "int8")}
