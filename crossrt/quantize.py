"""`crossrt quantize`: an int8 copy of the exported model, made with ONNX Runtime's own tools.

The steps ONNX Runtime documents for static quantization: `quant_pre_process` (shape inference
and graph clean-up), then `quantize_static` in the QDQ format, with per-channel int8 weights and
int8 activations whose ranges are calibrated (MinMax) on training images, never on the test
images the model is scored on. The int8 model keeps the fp32 model's metadata and adds how it
was made; it runs under ONNX Runtime's CPU provider as the `onnxruntime-int8` runtime.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import onnx

from .config import QuantizeConfig
from .data import Dataset, in_batches, normalize
from .files import atomic_write
from .runtimes.onnxruntime import cpu_logits, create_session

METHOD = "static QDQ, per-channel int8 weights, int8 activations calibrated with MinMax"


def quantize(cfg: QuantizeConfig, data: Dataset) -> dict:
    """Write cfg.out; return its size, the fp32 model's, and both accuracies on the test set."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    images = min(cfg.calibration_images, len(data.train_labels))
    calibration = iter(in_batches(normalize(data.train_images[:images]), 100))
    name = create_session(cfg.model).get_inputs()[0].name  # the model's own input name, whatever its exporter chose

    class Reader(CalibrationDataReader):
        def get_next(self):
            batch = next(calibration, None)
            return None if batch is None else {name: batch}

    logging.disable(logging.WARNING)  # the tools log advice on stderr; the result is checked below
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pre, out = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
            quant_pre_process(str(cfg.model), str(pre))
            quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax)
            proto = onnx.load(str(out))
    finally:
        logging.disable(logging.NOTSET)
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props},
                                           "quantization": f"{METHOD} on {images:,} {data.name} training images",
                                           "calibration_images": str(images), "quantized_from": str(cfg.model)})
    onnx.checker.check_model(proto)
    atomic_write(cfg.out, proto.SerializeToString())

    x, labels = normalize(data.test_images), data.test_labels
    preds = [cpu_logits(path, x).argmax(1) for path in (cfg.model, cfg.out)]
    return {"fp32_bytes": cfg.model.stat().st_size, "int8_bytes": cfg.out.stat().st_size,
            "fp32_accuracy": float((preds[0] == labels).mean()), "int8_accuracy": float((preds[1] == labels).mean()),
            "top1_agreement": float(np.mean(preds[0] == preds[1])), "test_images": len(labels),
            "calibration_images": images, "method": METHOD}
