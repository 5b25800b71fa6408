"""Kill a stage's script with SIGKILL at a chosen point of its writes, for the fault-injection tests.

- **Points.** Every call of ``os.fsync`` (data written, not yet durable or renamed), ``os.replace``
  and ``os.rename`` (a temporary name about to become the final one) in the script's process. The
  outputs of every stage go through these (`sa2va_st.atomic`, the staging folders, the checkpoint
  and feature writers), so point ``n`` is a moment inside a write or right before a rename.
- **Run.** `run_script` starts ``python <bootstrap> script args...``: the bootstrap wraps those
  functions, runs the script as ``__main__`` and, with ``kill_at=n``, sends itself SIGKILL on entering
  point ``n`` (the call itself never happens); with ``kill_at=None`` it counts the points and writes
  the count to ``count_file``.
- **Choice.** `kill_points(total, seed, k)`: ``k`` distinct points of ``1..total`` drawn with ``seed``,
  so a failing case is named by its seed and re-runs exactly.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

_BOOTSTRAP = """
import os, runpy, signal, sys
kill_at = int(os.environ.get("SA2VA_FAULT_KILL_AT") or 0)
count_file = os.environ.get("SA2VA_FAULT_COUNT_FILE")
seen = [0]
def wrap(real):
    def point(*args, **kwargs):
        seen[0] += 1
        if seen[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return point
for name in ("fsync", "replace", "rename"):
    setattr(os, name, wrap(getattr(os, name)))
if count_file:
    import atexit
    atexit.register(lambda: open(count_file, "w").write(str(seen[0])))
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")
"""


def run_script(
    script: str | os.PathLike,
    args: Sequence[str],
    *,
    cwd: str | os.PathLike,
    kill_at: int | None = None,
    count_file: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``script args`` under the bootstrap (module docstring); returns the finished process."""
    environment = (env or dict(os.environ)) | {
        "SA2VA_FAULT_KILL_AT": str(kill_at or 0),
        "SA2VA_FAULT_COUNT_FILE": str(count_file or ""),
    }
    return subprocess.run(
        [sys.executable, "-c", _BOOTSTRAP, str(script), *map(str, args)],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def count_points(script: str | os.PathLike, args: Sequence[str], *, cwd: str | os.PathLike, **kwargs) -> int:
    """How many points an uninterrupted run of ``script args`` passes (it must succeed)."""
    count_file = Path(cwd) / ".fault_points"
    done = run_script(script, args, cwd=cwd, count_file=count_file, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed without a fault:\n{done.stderr[-3000:]}")
    total = int(count_file.read_text())
    count_file.unlink()
    return total


def kill_points(total: int, seed: int, k: int = 3) -> list[int]:
    """``k`` distinct points of ``1..total`` chosen by ``seed`` (all of them when there are fewer)."""
    return sorted(random.Random(seed).sample(range(1, total + 1), min(k, total)))


__all__ = ["count_points", "kill_points", "run_script"]
