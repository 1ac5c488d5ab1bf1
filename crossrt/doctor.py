"""`crossrt doctor`: is this machine ready for the CPU mode, or the CUDA mode? Every check is one
line; a failing one says how to fix it.

The CUDA checks do the real thing: a tensor operation on the GPU, and an ONNX Runtime CUDA
session on a tiny model, whose every node ONNX Runtime's profiler must place on the CUDA
provider. Nothing of ONNX Runtime's own output reaches the screen.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .config import DataConfig
from .errors import CrossrtError
from .system import cpu_count, cpu_model, no_cuda_reason, version_of


@dataclass
class Check:
    name: str
    ok: bool | None  # None: information only
    detail: str
    fix: str = ""
    needed_for: tuple[str, ...] = ()  # the modes that cannot run without it


MIN_DRIVER = 580  # CUDA 13.0's minimum Linux driver (580.65.06, NVIDIA's CUDA toolkit release notes)


def nvidia_smi() -> str | None:
    """'name, driver, memory' of the first GPU nvidia-smi lists, or None."""
    if not shutil.which("nvidia-smi"):
        return None
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def checks(data_dir: Path | None = None, measure_peak: bool = False) -> list[Check]:
    """Every check, in the order shown; data_dir: the folder `--data-dir` names, if any;
    measure_peak: measure the fp32 peaks again (replacing the cached ones when they can be trusted)."""
    out = [Check("crossrt", None, f"{__version__}, Python {platform.python_version()}")]
    try:
        import torch

        built = f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}" if torch.version.cuda else ""
        out.append(Check("torch", True, f"{torch.__version__} ({built or 'CPU build'})"))
    except ImportError:
        return out + [Check("torch", False, "not installed", "make setup", ("cpu", "cuda"))]
    versions = {d: version_of(d) for d in ("onnx", "onnxruntime-gpu", "onnxruntime", "openvino")}
    if not versions["onnx"]:
        return out + [Check("onnx", False, "not installed", "make setup", ("cpu", "cuda"))]
    out.append(Check("onnx", True, versions["onnx"]))
    try:
        import onnxruntime as ort

        ort.set_default_logger_severity(4)
        package = "onnxruntime-gpu" if versions["onnxruntime-gpu"] else "onnxruntime"
        out.append(
            Check(
                "onnxruntime",
                True,
                f"{package} {ort.__version__}; execution providers built in: "
                f"{', '.join(ort.get_available_providers())} (whether CUDA's runs here: below)",
            )
        )
    except ImportError:
        return out + [Check("onnxruntime", False, "not installed", "make setup", ("cpu", "cuda"))]
    out.append(
        Check("openvino", None, versions["openvino"] or "not installed (optional: pip install 'crossrt[openvino]')")
    )
    out.append(
        Check(
            "CPU",
            None,
            f"{cpu_model()}, {cpu_count()} cores usable; train uses {cpu_count()} threads, "
            f"bench-infer 1 and {cpu_count()}",
        )
    )
    out.append(_dataset(data_dir))
    out.append(_peaks(measure_peak))
    from .export import tiny_model  # needs torch and onnx, both checked above

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "tiny.onnx"
        tiny_model(model)
        out.append(_ort_session(model, "cpu"))
        out += _gpu(torch)
        out.append(_ort_session(model, "cuda"))
    return out


def _dataset(data_dir: Path | None) -> Check:
    """With --data-dir: that folder must hold the four IDX files (needed by both modes). Without:
    what `--dataset auto` would use, for information only: the data is not the machine, and any
    IDX folder serves through --data-dir."""
    from .data import load_folder
    from .fetch import resolve

    if data_dir is not None:
        try:
            ds = load_folder(data_dir, data_dir.name, "--data-dir")
            return Check(
                "dataset",
                True,
                f"--data-dir {data_dir}: {len(ds.train_labels):,} training and {len(ds.test_labels):,} test images",
            )
        except CrossrtError as e:
            return Check("dataset", False, str(e), "a folder with the four IDX files, raw or .gz", ("cpu", "cuda"))
    try:
        ds = resolve(DataConfig(), download=False)
    except CrossrtError:
        return Check(
            "dataset",
            None,
            "--dataset auto finds none here (no MNIST in the cache, no Debian "
            "Fashion-MNIST): train would try to download MNIST; or point crossrt at any "
            "IDX folder with --data-dir DIR (also: crossrt fetch mnist, make setup)",
        )
    if ds.name == "mnist":
        return Check("dataset", True, f"--dataset auto uses {ds.reason}")
    return Check(
        "dataset",
        True,
        f"--dataset auto: MNIST is not cached, so train downloads it when it can, "
        f"else uses {ds.reason.split(' (auto:')[0]}",
    )


def _peaks(measure: bool) -> Check:
    """The fp32 peaks "% of peak" divides by, at 1 thread and on all cores: cached (with their age
    and spread), or measured now with --measure-peak (crossrt.peak says when one is not cached)."""
    from .peak import cached_peak, measured_peak
    from .system import ago

    said = []
    for threads in dict.fromkeys((1, cpu_count())):
        p = measured_peak("cpu", threads, again="replace") if measure else cached_peak("cpu", threads)
        if p is None:
            said.append(f"{threads} thread(s): none cached yet")
            continue
        kept = f", not cached: {p.why}" if p.cached is False else ""
        said.append(
            f"{threads} thread(s) {p.peak:,.0f} GFLOP/s (spread {100 * p.spread:.0f}%, measured "
            f"{ago(p.measured)}{kept})"
        )
    hint = "" if measure else "; crossrt doctor --measure-peak measures them again"
    return Check("fp32 peak", None, "; ".join(said) + hint)


def _ort_session(model: Path, provider: str) -> Check:
    import numpy as np

    from .export import INPUT_NAME
    from .runtimes.onnxruntime import ORT_PROVIDERS, placement

    name = f"ONNX Runtime {provider.upper()} session"
    try:
        nodes = placement(model, provider, {INPUT_NAME: np.zeros((2, 1, 28, 28), np.float32)})
    except CrossrtError as e:
        return Check(
            name,
            False,
            getattr(e, "cause", str(e)),
            "make setup on a GPU machine: it installs onnxruntime-gpu with CUDA 13 and cuDNN 9",
            (provider,),
        )
    wanted = ORT_PROVIDERS[provider]
    where = ", ".join(f"{n} node(s) on {p}" for p, n in nodes.items())
    return Check(
        name,
        set(nodes) == {wanted},
        f"a tiny model runs, {where}",
        "every node must run on the GPU: check the onnxruntime-gpu install",
        (provider,),
    )


def _driver(smi: str) -> Check:
    """The driver nvidia-smi names, against the oldest that CUDA 13 (torch's and onnxruntime-gpu's
    build) runs on: an older one fails every CUDA call with a message about the CUDA version."""
    version = smi.split(",")[1].strip() if smi.count(",") >= 2 else ""
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return Check("NVIDIA driver", None, f"nvidia-smi names no version ({smi!r})")
    return Check(
        "NVIDIA driver",
        major >= MIN_DRIVER,
        version if major >= MIN_DRIVER else f"{version}: older than the {MIN_DRIVER} that CUDA 13 needs",
        f"update the NVIDIA driver to {MIN_DRIVER} or newer",
        ("cuda",),
    )


def _gpu(torch) -> list[Check]:
    smi = nvidia_smi()
    out = [
        Check(
            "GPU", bool(smi), smi or "nvidia-smi lists none", "a machine with an NVIDIA GPU and its driver", ("cuda",)
        )
    ]
    if smi:
        out.append(_driver(smi))
    if not torch.cuda.is_available():
        return out + [
            Check(
                "CUDA tensor op",
                False,
                no_cuda_reason(),
                "make setup on a GPU machine: it installs a CUDA 13 build of torch",
                ("cuda",),
            )
        ]
    try:
        value = torch.ones(2, device="cuda").sum().item()
        return out + [
            Check(
                "CUDA tensor op", value == 2, f"runs on {torch.cuda.get_device_name(0)}", "check the driver", ("cuda",)
            )
        ]
    except Exception as e:
        return out + [Check("CUDA tensor op", False, str(e).splitlines()[0][:160], "check the driver", ("cuda",))]


def default_mode() -> str:
    """What the machine has: the CUDA mode where a GPU is listed or usable, else the CPU mode."""
    import torch

    return "cuda" if nvidia_smi() or torch.cuda.is_available() else "cpu"


def line(c: Check, mode: str) -> str:
    """One check as one line (rich markup); a failure the mode does not need is shown, not counted."""
    from .ui.console import esc

    if c.ok is False and mode in c.needed_for:
        return f"[red]FAIL[/] {esc(c.name)}: {esc(c.detail)} [bold]-> fix:[/] {esc(c.fix)}"
    if c.ok is False:
        modes = "/".join(c.needed_for)
        return f"[yellow]no  [/] {esc(c.name)}: {esc(c.detail)} [dim](for the {modes} mode: {esc(c.fix)})[/]"
    return f"{'[green]ok  [/]' if c.ok else '[dim]--  [/]'} {esc(c.name)}: {esc(c.detail)}"


def ready(found: list[Check], mode: str) -> bool:
    """Every check the mode needs passed."""
    return all(c.ok for c in found if mode in c.needed_for)
