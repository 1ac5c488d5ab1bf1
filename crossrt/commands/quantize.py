"""`crossrt quantize`: the int8 model."""

from __future__ import annotations

from .. import reference
from ..errors import EXIT_OK, ConfigError
from ..fetch import resolve
from ..files import FolderLock
from ..inputs import check_external_data, flags_given, is_mnist_classifier, load_model, signature
from ..quantize import quantize
from ..ui import console
from .common import check_inputs


def cmd_quantize(a, cfg) -> int:
    check_inputs(cfg)
    model = load_model(cfg.model)
    check_external_data(cfg.model, model)
    reference.check(cfg.model)  # a bad model fails here, before any data is read
    meta = {p.key: p.value for p in model.metadata_props}
    mnist = is_mnist_classifier(*signature(model))
    if mnist and (given := flags_given(cfg.feed)):  # its calibration and test inputs are the dataset's images
        raise ConfigError(
            f"{given[0]}: {cfg.model} is an MNIST classifier, calibrated and checked on the dataset's images; "
            f"{', '.join(given)} are for other models"
        )
    ds = resolve(cfg.data, trained_on=(meta.get("dataset") or None, meta.get("data_dir") or None)) if mnist else None
    with FolderLock(cfg.out.parent):
        q = quantize(cfg, ds)
    said = (
        f"On the {q['test_images']:,} test images: accuracy {100 * q['fp32_accuracy']:.2f}% -> "
        f"{100 * q['int8_accuracy']:.2f}% ({100 * (q['int8_accuracy'] - q['fp32_accuracy']):+.2f} points), "
        f"top-1 agreement {100 * q['top1_agreement']:.2f}%"
        if mnist
        else "Against the fp32 model on fresh inputs: "
        + "; ".join(
            f"{o.name} max |diff| / max |fp32| {o.max_rel:.2e}"
            + (f", top-1 agreement {100 * o.top1:.2f}%" if o.top1 is not None else "")
            for o in q["outputs"]
        )
    )
    console.note(
        console.esc(
            f"quantized {cfg.model} ({q['fp32_bytes']:,} bytes) to {cfg.out} ({q['int8_bytes']:,} "
            f"bytes): {q['method']} on {q['calibration']}. {said}"
        )
    )
    return EXIT_OK
