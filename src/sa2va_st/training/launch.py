"""The launcher's side of a run: the torchrun command of the `train` rule, and what to say when a rank dies.

- **Command** (`torchrun_command`): ``torchrun`` with c10d rendezvous on this node, one process per
  rank, every rank's stdout and stderr also written to ``{log_dir}/<run id>/attempt_<n>/<rank>/``
  (``--redirects 3 --tee 3``), so that a rank that dies leaves its last lines behind.
- **Failure** (`describe_failure`): torchrun's summary names the ranks that failed and their exit
  codes (a negative code is the signal, e.g. -9 for SIGKILL, as the out-of-memory killer sends); this
  turns it into one paragraph per dead rank with the last lines that rank wrote.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
from pathlib import Path

_FAILURE = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*(\d+)\)\s*\n\s*exitcode\s*:\s*(-?\d+)")
TAIL_LINES = 20


def torchrun_command(torchrun: str, processes: int, log_dir: str, run_id: str) -> str:
    """The torchrun prefix of the rule's shell command (single node; the SLURM profile sets its own)."""
    return (
        f"{shlex.quote(torchrun)} --nnodes 1 --nproc-per-node {int(processes)} --rdzv-backend c10d --rdzv-endpoint localhost:0"
        f" --rdzv-id {run_id} --max-restarts 0 --log-dir {log_dir} --redirects 3 --tee 3"
    )


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _rank_log(log_dir: Path, local_rank: int) -> Path | None:
    candidates = sorted(log_dir.glob(f"*/attempt_*/{local_rank}/stderr.log"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def describe_failure(torchrun_log: str | os.PathLike, log_dir: str | os.PathLike) -> str:
    """Which ranks died, how, and the last lines each wrote (see the module docstring)."""
    text = Path(torchrun_log).read_text(errors="replace") if Path(torchrun_log).is_file() else ""
    failures = {}
    for rank, local_rank, code in _FAILURE.findall(text):
        failures.setdefault(int(rank), (int(local_rank), int(code)))
    if not failures:
        tail = "\n".join(text.splitlines()[-TAIL_LINES:])
        return f"training failed before any rank reported (torchrun's last lines):\n{tail}"
    parts = []
    for rank, (local_rank, code) in sorted(failures.items()):
        log = _rank_log(Path(log_dir), local_rank)
        lines = log.read_text(errors="replace").splitlines()[-TAIL_LINES:] if log else ["(no log found)"]
        where = f" ({log})" if log else ""
        parts.append(f"rank {rank} died: {_exit_text(code)}; its last lines{where}:\n  " + "\n  ".join(lines))
    return "\n".join(parts)
