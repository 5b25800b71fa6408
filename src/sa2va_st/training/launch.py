"""The launcher's side of a run: the torchrun command of the `train` rule, and what to say when a rank dies.

- **Command** (`launch_command`): ``torchrun`` with c10d rendezvous on this node, one process per
  rank (`torchrun_command`), or on a SLURM allocation of N nodes ``srun`` starting one torchrun per
  node that meet at the first node (`srun_torchrun_command`); every rank's stdout and stderr also
  written to ``{log_dir}/<run id>_<random>/attempt_<n>/<local rank>/`` (``--redirects 3 --tee 3``),
  so that a rank that dies leaves its last lines behind (on several nodes every node's torchrun
  writes its own ``<run id>_<random>`` folder there, and each rank's first line, `rank_banner`, says which
  global rank wrote it).
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


RDZV_PORT = 29500  # the c10d store on the first node of a SLURM allocation
# the first host of the allocation, evaluated by the job's shell on the batch host. From the job id:
# the executor plugin's job step removes every other SLURM_* variable (SLURM_JOB_NODELIST too)
# before it runs the rule's shell.
FIRST_HOST = '"$(scontrol show hostnames "$(squeue -h -j "$SLURM_JOB_ID" -o %N)" | head -n 1)"'


def torchrun_command(torchrun: str, processes: int, log_dir: str, run_id: str) -> str:
    """The torchrun prefix of the rule's shell command on one node: ``processes`` ranks, c10d on localhost."""
    return (
        f"{shlex.quote(torchrun)} --nnodes 1 --nproc-per-node {int(processes)} --rdzv-backend c10d --rdzv-endpoint localhost:0"
        f" --rdzv-id {run_id} --max-restarts 0 --log-dir {log_dir} --redirects 3 --tee 3"
    )


def srun_torchrun_command(
    srun: str, torchrun: str, nodes: int, ranks_per_node: int, cpus_per_node: int, log_dir: str
) -> str:
    """The prefix inside a SLURM allocation of ``nodes`` nodes: ``srun`` starts one torchrun per node
    (with the ``cpus_per_node`` CPUs the job asked for on each), each spawns ``ranks_per_node`` ranks,
    and they meet through c10d at the allocation's first host. The run id is the SLURM job id, so a
    requeued job rendezvouses afresh."""
    return (
        f"{srun} --nodes={int(nodes)} --ntasks={int(nodes)} --ntasks-per-node=1 --cpus-per-task={int(cpus_per_node)}"
        " --kill-on-bad-exit=1"
        f" {shlex.quote(torchrun)} --nnodes {int(nodes)} --nproc-per-node {int(ranks_per_node)}"
        f' --rdzv-backend c10d --rdzv-endpoint {FIRST_HOST}:{RDZV_PORT} --rdzv-id "$SLURM_JOB_ID"'
        f" --max-restarts 0 --log-dir {log_dir} --redirects 3 --tee 3"
    )


def launch_command(torchrun: str, processes: int, log_dir: str, run_id: str, resources) -> str:
    """The launcher of the `train` rule for the resources its job was given.

    A job whose resources name ``mpi`` (the SLURM profile: ``mpi: srun``, ``nodes``, ``tasks_per_node``)
    runs its own ``srun`` (the executor plugin then does not wrap it in one): one torchrun per node with
    ``tasks_per_node`` ranks each (one per GPU), `srun_torchrun_command`. Anything else is one node,
    ``processes`` ranks, `torchrun_command`.
    """
    mpi = resources.get("mpi")
    if not mpi:
        return torchrun_command(torchrun, processes, log_dir, run_id)
    nodes = int(resources.get("nodes") or 1)
    ranks_per_node = int(resources.get("tasks_per_node") or processes)
    cpus_per_node = ranks_per_node * int(resources.get("cpus_per_task") or 1)
    return srun_torchrun_command(str(mpi), torchrun, nodes, ranks_per_node, cpus_per_node, log_dir)


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _rank_id(rank: int, local_rank: int) -> str:
    return f"rank {rank} (local rank {local_rank})"


def rank_banner(rank: int, world_size: int, local_rank: int, host: str) -> str:
    """The first line every rank logs: it tells the node folders of a multi-node run apart (`_rank_log`)."""
    return f"{_rank_id(rank, local_rank)} of {world_size} on {host}"


def _rank_log(log_dir: Path, rank: int, local_rank: int) -> Path | None:
    """The stderr of global ``rank``: on several nodes every node has a ``local_rank`` folder, and the one
    whose rank logged its banner as ``rank`` is it; otherwise (it died before logging) the newest."""
    candidates = sorted(log_dir.glob(f"*/attempt_*/{local_rank}/stderr.log"), key=lambda p: p.stat().st_mtime)
    banner = re.compile(rf"\b{re.escape(_rank_id(rank, local_rank))} of ")
    for path in reversed(candidates):
        with path.open(errors="replace") as handle:
            if any(banner.search(line) for _, line in zip(range(200), handle)):
                return path
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
        log = _rank_log(Path(log_dir), rank, local_rank)
        lines = log.read_text(errors="replace").splitlines()[-TAIL_LINES:] if log else ["(no log found)"]
        where = f" ({log})" if log else ""
        parts.append(f"rank {rank} died: {_exit_text(code)}; its last lines{where}:\n  " + "\n  ".join(lines))
    return "\n".join(parts)
