"""What the benchmark scripts share: running a command with this checkout's crossrt importable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def run(cmd: list[str], cwd: Path, log: Path | None = None, env: dict | None = None) -> None:
    """Run cmd in cwd (its output to log, when given; env: variables added to ENV); stop the
    script with its errors if it fails."""
    env = {**ENV, **(env or {})}
    if log is None:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        detail = proc.stderr
    else:
        with log.open("w") as f:
            proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
        detail = f"see {log}"
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{detail}")
