"""Every runtime crossrt can time, by name: where it runs, why it cannot run here, its precisions
and data paths, and how its runner is built.

A runtime is a module in this folder and one line in RUNTIMES. The module defines

    Options                                        a frozen dataclass of its settings, with defaults
    unavailable(provider, options) -> str | None   why it cannot run here (not installed, ...)
    precisions(options) -> tuple[str, ...]         the precisions it runs the model in
    runner(model, row, batches, options) -> Runner a ready-to-time runner (crossrt.runtimes.base)
    check(model, provider, feed, options)          optional: refuse a bad model before any work
    cannot_run(model, options) -> str | None       optional: why it cannot run this model file

where `model` is the path of the file it runs: an ONNX model, or, for a runtime of the PyTorch
model, the crossrt checkpoint that holds it. A line's `options` set some of the module's Options
(torch-compile is the PyTorch module with compile=True; an ONNX Runtime execution provider is the
ONNX Runtime module with its `ep`); a run sets more with --runtime-option [RUNTIME.]NAME=VALUE.
Nothing heavy is imported until a runtime is asked for, so the CLI can list the names at once.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ..errors import ConfigError
from .options import with_options

# Where the data lives per provider: host arrays on the CPU; on CUDA, host arrays in and out
# (end-to-end), inputs resident on the GPU, or resident and replayed as a CUDA graph.
IO_PATHS = {"cpu": ("host",), "cuda": ("end-to-end", "device-resident", "cuda-graph")}


@dataclass(frozen=True)
class Runtime:
    name: str
    label: str  # as tables name it
    module: str  # crossrt.runtimes.<module> builds its runners
    providers: tuple[str, ...] = ("cpu",)
    model: str = (
        "onnx"  # what it runs: "onnx" (--model), "int8" (--int8-model), "torch" (--torch-model or --checkpoint)
    )
    precision: str | None = None  # fixed by the model file (int8); None: the module's precisions()
    spins: bool = False  # ONNX Runtime's intra-op spinning applies (a row per --spin setting)
    graphs: bool = False  # has the cuda-graph data path
    options: tuple[tuple[str, object], ...] = ()  # values of the module's Options for this line
    computes: bool = True  # its outputs are the model's: compared with ONNX Runtime's, a verdict may pick it

    def _module(self):
        return importlib.import_module(f"{__package__}.{self.module}")

    def unavailable(self, provider: str, cfg) -> str | None:
        """Why this runtime cannot run on provider with these settings (one line), or None."""
        if provider not in self.providers:
            return f"crossrt runs {self.name} on {' and '.join(p.upper() for p in self.providers)} only"
        if self.model == "int8" and not cfg.int8_model.is_file():
            return f"no int8 model {cfg.int8_model}: make one with `crossrt quantize --model {cfg.model}`"
        if self.model == "torch" and not getattr(cfg, "torch_model", None) and foreign(cfg.model):
            return (
                f"needs the network in PyTorch: {cfg.model.name} is not a crossrt LeNet5 export, so give "
                f"yours with --torch-model FILE (torch.export.save's .pt2, or TorchScript)"
            )
        module = self._module()
        if why := module.unavailable(provider, self.settings(cfg)):
            return why
        return module.cannot_run(self.model_of(cfg), self.settings(cfg)) if hasattr(module, "cannot_run") else None

    def settings(self, cfg=None):
        """The module's Options for this line, with the run's --runtime-option values for it (cfg's)."""
        options = self._module().Options(**dict(self.options))
        return with_options(options, given_options(cfg, self.name, options) if cfg is not None else {}, self.name)

    def precisions(self, cfg=None) -> tuple[str, ...]:
        return (self.precision,) if self.precision else self._module().precisions(self.settings(cfg))

    def io_paths(self, provider: str) -> tuple[str, ...]:
        return tuple(io for io in IO_PATHS[provider] if io != "cuda-graph" or self.graphs)

    def model_of(self, cfg):
        """The file this runtime runs: an ONNX model, or the checkpoint of the PyTorch network."""
        torch_model = getattr(cfg, "torch_model", None) or cfg.checkpoint
        return {"onnx": cfg.model, "int8": cfg.int8_model, "torch": torch_model}[self.model]

    def check(self, cfg, provider: str, feed: dict) -> None:
        """Refuse a model this runtime cannot load or run (on one batch, feed) on provider, before any
        work, where the module can tell."""
        module = self._module()
        if hasattr(module, "check"):
            module.check(self.model_of(cfg), provider, feed, self.settings(cfg))

    def runner(self, cfg, row, batches):
        return self._module().runner(self.model_of(cfg), row, batches, self.settings(cfg))


RUNTIMES = {
    r.name: r
    for r in (
        Runtime("onnxruntime", "ONNX Runtime", "onnxruntime", ("cpu", "cuda"), spins=True, graphs=True),
        Runtime("pytorch", "PyTorch eager", "pytorch", ("cpu", "cuda"), model="torch", graphs=True),
        Runtime("openvino", "OpenVINO", "openvino"),
        Runtime(
            "torch-compile", "torch.compile", "pytorch", ("cpu", "cuda"), model="torch", options=(("compile", True),)
        ),
        Runtime("onnxruntime-int8", "ONNX Runtime int8", "onnxruntime", model="int8", precision="int8", spins=True),
        Runtime("null", "null (no model runs)", "null", computes=False),
    )
}
DEFAULT = ("onnxruntime", "pytorch")
# What `--runtimes all` means: every runtime that runs the model (not null, which runs none).
ALL = tuple(name for name, r in RUNTIMES.items() if r.computes)


def option_items(items: tuple[str, ...]) -> list[tuple[str | None, str, str]]:
    """--runtime-option items `[RUNTIME.]NAME=VALUE` as (runtime or None, name, value)."""
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        runtime, _, name = key.strip().rpartition(".")
        if not (sep and name):
            raise ConfigError(f"--runtime-option {item!r}: expected [RUNTIME.]NAME=VALUE")
        if runtime and runtime not in RUNTIMES:
            raise ConfigError(f"--runtime-option {item!r}: no runtime {runtime!r} (from {', '.join(RUNTIMES)})")
        out.append((runtime or None, name, value.strip()))
    return out


def given_options(cfg, runtime: str, options) -> dict[str, str]:
    """The --runtime-option values that reach `runtime`: RUNTIME.NAME=VALUE items that name it, and
    NAME=VALUE items whose NAME its options have."""
    names = options.__dataclass_fields__
    return {
        name: value
        for target, name, value in option_items(getattr(cfg, "runtime_options", ()))
        if target == runtime or (target is None and name in names)
    }


def check_options(cfg) -> None:
    """Every --runtime-option reaches a runtime asked for, and each such runtime takes its value."""
    has = {r: RUNTIMES[r].settings(cfg).__dataclass_fields__ for r in cfg.runtimes}  # a bad name or value fails here
    for target, name, value in option_items(cfg.runtime_options):
        if target is not None and target not in has:
            raise ConfigError(
                f"--runtime-option {target}.{name}={value}: {target} is not among --runtimes ({', '.join(has)})"
            )
        if target is None and not any(name in fields for fields in has.values()):
            raise ConfigError(f"--runtime-option {name}={value}: any of {', '.join(has)} takes no option {name!r}")


def foreign(model: Path) -> bool:
    """Whether an ONNX file is one crossrt did not export (its metadata does not say producer
    crossrt): only crossrt's have a checkpoint that builds the same network in PyTorch. A file
    that is not there is not judged here (bench-infer refuses it in one line)."""
    try:
        stat = os.stat(model)
    except OSError:
        return False
    return _producer(str(model), stat.st_mtime_ns, stat.st_size) != "crossrt"


@lru_cache(maxsize=16)
def _producer(path: str, mtime_ns: int, size: int) -> str | None:
    import onnx

    try:
        props = onnx.load(path, load_external_data=False).metadata_props
    except Exception:  # not ONNX: prepare says so in one line
        return None
    return next((p.value for p in props if p.key == "producer"), None)
