"""crossrt over ONNX's own backend test models: every model the onnx wheel ships (light, simple,
pytorch-converted, pytorch-operator; `real` needs downloads) and every node test that
onnx.backend.test.case.node generates (a model of one operator), each with its recorded inputs,
first under plain ONNX Runtime, then under `crossrt bench-infer --inputs` of those inputs. Prints
how many ran, how many crossrt refused and why, and every model plain ONNX Runtime runs that
crossrt did not time. Minutes on 2 cores for the shipped models, about half an hour with the node
tests (each model is one short bench-infer, in this process).

    python benchmarks/onnx_corpus.py [--sets shipped,node] [--limit N]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from common import ROOT

sys.path.insert(0, str(ROOT))
from crossrt.cli import main as crossrt_main  # noqa: E402

SETS = ("light", "simple", "pytorch-converted", "pytorch-operator")


def models() -> list[Path]:
    data = Path(onnx.__file__).parent / "backend" / "test" / "data"
    return sorted(p for s in SETS for p in (data / s).glob("*/model.onnx"))


def shipped(tmp: Path):
    """(name, model file, its recorded inputs or why they cannot be given) of each shipped model."""
    for model in models():
        feeds = recorded_inputs(model)
        yield f"{model.parent.parent.name}/{model.parent.name}", model, "no recorded inputs" if feeds is None else feeds


def node_tests(tmp: Path):
    """The same of each node test, its model written to tmp."""
    from onnx.backend.test.case.node import collect_testcases

    with np.errstate(all="ignore"), warnings.catch_warnings():  # the cases' own inf and NaN, made on purpose
        warnings.simplefilter("ignore")
        cases = collect_testcases(None)
    for case in cases:
        path = tmp / f"{case.name}.onnx"
        onnx.save(case.model, str(path))
        graph = case.model.graph
        names = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
        values = list(case.data_sets[0][0]) if case.data_sets else None
        yield f"node/{case.name}", path, _node_feeds(names, values)


def _node_feeds(names: list[str], values) -> dict | str:
    if values is None or len(values) != len(names):
        return "no recorded inputs"
    feeds = {}
    for name, v in zip(names, values):
        if v is None or isinstance(v, list):  # an optional left out, or a sequence: not an .npz array
            return "a sequence or optional input (an .npz file holds tensors only)"
        feeds[name] = numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v)
    return feeds


def recorded_inputs(model: Path) -> dict[str, np.ndarray] | None:
    """The inputs of the model's first recorded test, by the graph's input names (None: none recorded)."""
    files = sorted((model.parent / "test_data_set_0").glob("input_*.pb"))
    if not files:
        return None
    graph = onnx.load(str(model), load_external_data=False).graph
    names = [i.name for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    tensors = []
    for f in files:
        t = onnx.TensorProto()
        t.ParseFromString(f.read_bytes())
        tensors.append(numpy_helper.to_array(t))
    return dict(zip(names, tensors)) if len(names) == len(tensors) else None


def plain_ort(model: Path, feeds: dict) -> str | None:
    """Why plain ONNX Runtime cannot run the model on its inputs, or None."""
    try:
        quiet = ort.SessionOptions()
        quiet.log_severity_level = 3  # errors only: ORT's warnings about old opsets are not the subject
        ort.InferenceSession(str(model), quiet, providers=["CPUExecutionProvider"]).run(None, feeds)
    except Exception as e:  # ORT's own refusal: the model is out of scope for crossrt too
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:80]}"
    return None


def crossrt_bench(model: Path, feeds: dict, work: Path) -> tuple[int, str]:
    """crossrt bench-infer of the model on its recorded inputs: (exit code, its last stderr line)."""
    npz = work / "in.npz"
    np.savez(npz, **{n: a.astype(str) if a.dtype.kind in "OS" else a for n, a in feeds.items()})  # no pickle
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), contextlib.chdir(work):  # its results/ there
        given = ["--inputs", str(npz), "--allow-non-finite"] if feeds else []  # a graph of constants takes none
        code = crossrt_main(
            ["bench-infer", "--model", str(model), *given, "--runtimes", "onnxruntime", "--threads",
             "1", "--min-time", "0", "--min-repeats", "2", "--warmup", "0", "--json", str(work / "b.json")]
        )  # fmt: skip
    lines = [ln for ln in (err.getvalue() + out.getvalue()).splitlines() if "error" in ln or "failed" in ln]
    return code, (lines[-1] if lines else "")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sets", default="shipped,node", help="shipped (the wheel's models), node (the node tests)")
    p.add_argument("--limit", type=int, default=0, help="the first N models of each set only")
    a = p.parse_args(argv)
    chosen = a.sets.split(",")
    tally, refused, ort_cannot = collections.Counter(), [], collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        found = 0
        for which in chosen:
            for k, (name, model, feeds) in enumerate({"shipped": shipped, "node": node_tests}[which](Path(tmp))):
                if a.limit and k >= a.limit:
                    break
                found += 1
                if isinstance(feeds, str):
                    tally[feeds] += 1
                    continue
                if why := plain_ort(model, feeds):
                    tally["plain ONNX Runtime cannot run it"] += 1
                    ort_cannot[why.split(":")[0]] += 1
                    continue
                work = Path(tmp) / f"{which}-{k}"
                work.mkdir()
                code, said = crossrt_bench(model, feeds, work)
                tally[f"crossrt exit {code}"] += 1
                if code != 0:
                    refused.append((name, code, said[:200]))
    print(f"{found} models ({', '.join(chosen)}; shipped: {', '.join(SETS)})")
    for what, n in tally.most_common():
        print(f"  {n:4d}  {what}")
    for why, n in ort_cannot.most_common():
        print(f"        {n:4d}  ORT: {why}")
    print("plain ONNX Runtime runs these, crossrt did not time them (exit 0):")
    for name, code, said in refused:
        print(f"  {name}: exit {code}: {said}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
