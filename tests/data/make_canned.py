"""Make the canned result files of tests/data again: real crossrt runs on a tiny generated dataset.

    .venv/bin/python tests/data/make_canned.py          # the files of today's schema, from this checkout
    .venv/bin/python tests/data/make_canned.py --old    # also one train and one bench-infer file per older
                                                         # schema version, each run by the last commit of
                                                         # that version (a git worktree of it, this .venv)

The tests of `report`, `show`, `compare`, the plots, hostile strings, malformed numbers and terminal
widths read these files instead of making a result first (as pyperf's tests read its canned
telco.json): a result is made once here, by the real commands, and read by many tests. One test
(tests/test_canned.py) still checks that a fresh bench-infer writes a file that loads and renders,
and that these files load under today's code. The temporary folder each run used is written as
`canned/` in the files, so that they do not change with the folder's name.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
from conftest import write_dataset  # noqa: E402  the tests' own tiny IDX dataset

# The last commit of each older schema version (crossrt.schema's history): its code wrote that version.
OLD = {
    1: "24a7e21",
    2: "e493822",
    3: "7adddb8",
    4: "2fad07c",
    5: "3bfb502",
    6: "8f39516",
    7: "3b10770",
    8: "5da9aad",
    9: "c19a7b4",
    10: "8870346",
    11: "825cd9f",
}
TRAIN = ["--epochs", "3", "--batch-size", "60", "--threads", "1"]


def crossrt(source: Path, work: Path, *args: str) -> None:
    """`python -m crossrt args` with the code of `source`, in work, with a peak cache of its own."""
    env = {
        **os.environ,
        "PYTHONPATH": str(source),
        "COLUMNS": "120",
        "CROSSRT_CACHE": str(work / "cache"),
        "CROSSRT_PEAK_TRUST": "always",
    }
    out = subprocess.run([sys.executable, "-m", "crossrt", *args], cwd=work, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"crossrt {' '.join(args)} (code of {source}) failed:\n{out.stderr[-2000:]}")


def keep(src: Path, name: str, work: Path) -> None:
    """src as tests/data/name, with the run's temporary folder written as canned/."""
    text = src.read_text().replace(str(work) + "/", "canned/").replace(str(work), "canned")
    json.loads(text)  # still JSON
    (HERE / name).write_text(text)
    print(f"tests/data/{name}: {len(text):,} bytes")


def two_in_two_out(path: Path) -> None:
    """A model of one's own: two float inputs of a dynamic batch, two outputs (a sum and a product)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Mul", ["a", "b"], ["product"])],
        "two-in-two-out",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 8]) for n in "ab"],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 8]) for n in ("sum", "product")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))


def today(work: Path) -> None:
    data = write_dataset(work / "data")
    crossrt(ROOT, work, "train", "--data-dir", str(data), *TRAIN, "--json", "train.json")
    keep(work / "train.json", "train.json", work)
    crossrt(
        ROOT,
        work,
        "bench-infer",
        "--model",
        "exports/lenet5.onnx",
        "--data-dir",
        str(data),
        "--threads",
        "1,2",
        "--spin",
        "both",
        "--min-time",
        "0.2",
        "--min-repeats",
        "5",
        "--json",
        "bench.json",
    )
    keep(work / "bench.json", "bench.json", work)
    two_in_two_out(work / "two.onnx")
    crossrt(
        ROOT,
        work,
        "bench-infer",
        "--model",
        "two.onnx",
        "--threads",
        "1",
        "--batch-size",
        "1,4",
        "--min-time",
        "0.1",
        "--json",
        "bench-any.json",
    )
    keep(work / "bench-any.json", "bench-any.json", work)
    crossrt(
        ROOT,
        work,
        "suite",
        "--data-dir",
        str(data),
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--min-time",
        "0.1",
        "--no-isolate",
        "--out",
        "suite",
        "--sweep",
        "--sweep-threads",
        "1,2",
        "--sweep-ranks",
        "2",
        "--sweep-train-batches",
        "200",
        "--sweep-valid-batches",
        "50",
        "--json",
        "suite.json",
    )
    keep(work / "suite.json", "suite.json", work)
    crossrt(
        ROOT,
        work,
        "loadgen",
        "--model",
        "exports/lenet5.onnx",
        "--data-dir",
        str(data),
        "--threads",
        "1",
        "--duration",
        "0.3",
        "--scenarios",
        "single-stream,multi-stream,offline,server",
        "--latency-bound",
        "20",
        "--max-batch",
        "16",
        "--accuracy",
        "--json",
        "loadgen.json",
    )
    keep(work / "loadgen.json", "loadgen.json", work)


def old(work: Path) -> None:
    data = write_dataset(work / "data")
    for version, commit in OLD.items():
        tree = work / f"v{version}"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), commit],
            check=True,
            capture_output=True,
        )
        try:
            run = work / f"run{version}"
            run.mkdir()
            crossrt(tree, run, "train", "--data-dir", str(data), *TRAIN, "--json", "train.json")
            crossrt(
                tree,
                run,
                "bench-infer",
                "--model",
                "exports/lenet5.onnx",
                "--data-dir",
                str(data),
                "--threads",
                "1",
                "--min-time",
                "0",
                "--json",
                "bench.json",
            )
            for kind in ("train", "bench"):
                assert json.loads((run / f"{kind}.json").read_text()).get("schema_version", 1) == version, commit
                keep(run / f"{kind}.json", f"v{version:02d}-{'bench-infer' if kind == 'bench' else kind}.json", work)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", action="store_true", help="also the files of every older schema version (minutes)")
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crossrt-canned-"))
    try:
        today(work)
        if a.old:
            old(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
