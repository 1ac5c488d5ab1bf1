"""Which runtime to pick, per setting of a bench-infer result: the analysis of its rows, beside the
results it reads and writes (crossrt.results.Verdict)."""

from __future__ import annotations

from .results import InferRun, Verdict, place
from .runtimes.registry import RUNTIMES


def computes(run: InferRun) -> bool:
    """Whether a row ran the model (not the null runtime, which only times the harness)."""
    return RUNTIMES[run.runtime].computes if run.runtime in RUNTIMES else True


def verdicts(runs: list[InferRun]) -> list[Verdict]:
    """Per setting (provider, data path, threads, batch size) with two runtimes or more: the fastest
    that agrees with the reference (parity), by how much over the next and over PyTorch, and
    whether that is beyond this run's noise (their 95% intervals apart); an unstable row is named
    wherever a ratio uses it."""
    out = []
    for setting in dict.fromkeys(r.setting for r in runs):
        rows = sorted((r for r in runs if r.setting == setting and computes(r)), key=lambda r: -r.samples_per_s)
        ok = [r for r in rows if r.parity_ok is not False]
        if len(rows) < 2 or not ok:
            continue
        pick, others = ok[0], [r for r in ok[1:]]
        nxt = others[0] if others else None
        torch_row = next((r for r in ok if r.runtime == "pytorch" and r is not pick), None)
        sure = bool(nxt and pick.ci95 and nxt.ci95 and pick.ci95[0] > nxt.ci95[1])
        shaky = [r.runtime_label for r in (pick, nxt, torch_row) if r is not None and r.stable is False]
        if sure or not nxt:
            text = f"{place(*setting)}: use {pick.runtime_label}{_cost(pick)}"
            if nxt:
                text += f", {pick.samples_per_s / nxt.samples_per_s:.2f}x {nxt.runtime_label} (the next)"
        else:  # the order of two rows within the noise is no advice
            text = (
                f"{place(*setting)}: no clear winner: {pick.runtime_label}{_cost(pick)} and {nxt.runtime_label} "
                f"are {pick.samples_per_s / nxt.samples_per_s:.2f}x apart"
            )
        if torch_row and torch_row is not nxt:
            text += f", {pick.samples_per_s / torch_row.samples_per_s:.2f}x PyTorch"
        text += (
            "; beyond this run's noise (95% intervals apart)" if sure else "; within this run's noise" if nxt else ""
        )
        if shaky:
            text += f"; unstable, so take the ratio with care: {', '.join(dict.fromkeys(shaky))}"
        if left := [r.runtime_label for r in rows if r.parity_ok is False]:
            text += f"; not picked, their outputs disagree: {', '.join(left)}"
        out.append(
            Verdict(
                *setting,
                pick=pick.runtime_label,
                next=nxt.runtime_label if nxt else None,
                ratio=pick.samples_per_s / nxt.samples_per_s if nxt else None,
                sure=sure,
                unstable=shaky,
                text=text,
            )
        )
    return out


def _cost(run: InferRun) -> str:
    """What a lower precision cost, beside the runtime a verdict names: the accuracy it lost against
    PyTorch fp32 on the labels, else how far its outputs are from ONNX Runtime CPU fp32's."""
    if run.precision == "fp32":
        return ""
    if run.accuracy_delta is not None:
        return f" ({run.precision}: accuracy {100 * run.accuracy_delta:+.2f} points against fp32)"
    rel = [o.max_rel for o in run.outputs or () if o.max_rel is not None]
    return f" ({run.precision}: outputs off fp32 by up to {max(rel):.1e} relative)" if rel else f" ({run.precision})"
