"""A real one-node SLURM cluster on this machine, for the tests that run the workflow through SLURM.

- **Packages.** Debian's ``slurmctld``, ``slurmd``, ``slurm-client`` and ``munge``; `ensure_packages`
  installs them with ``apt-get`` when they are missing (as root; otherwise `SlurmUnavailable`).
- **Configuration.** A ``slurm.conf`` for a container: process tracking by ``/proc``, no task
  plugin, no accounting, the cores and memory of this machine as one node (``hostname -s`` at
  127.0.0.1) in one default partition; finished jobs stay visible to ``squeue`` for 10 minutes;
  state, spool and logs in a scratch folder. It is written to SLURM's default path,
  ``/etc/slurm/slurm.conf`` (a file already there is kept aside and put back on exit), because the
  executor plugin's job step removes every ``SLURM_*`` variable, ``SLURM_CONF`` too, before it runs
  a rule: a ``srun`` inside a job finds only the default path, as on a real cluster.
- **Life.** `LocalSlurm` starts munged (as the munge user), slurmctld and slurmd, waits until
  ``sinfo`` shows the node idle, and on exit shuts the daemons down (``scontrol shutdown``, then
  munged by its pid). Where something cannot start, `SlurmUnavailable` says what and why.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
DAEMONS = ("slurmctld", "slurmd", "munged")
START_TIMEOUT_S = 60.0
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed or started here (the reason is the message)."""


def _which(name: str) -> str | None:
    """The program on PATH, or in /usr/sbin (where Debian puts the daemons, often off a user's PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin")


def ensure_packages() -> None:
    """Install the Debian packages when a daemon is missing (apt-get update first)."""
    if all(_which(d) for d in DAEMONS) and _which("sbatch"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SlurmUnavailable("slurm-wlm and munge are not installed, and apt-get cannot run here (not root)")
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
    ):
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SlurmUnavailable(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")


def _memory_mb() -> int:
    with open("/proc/meminfo") as handle:
        total_kb = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
    return int(total_kb / 1024 * 0.9)  # a bit below the real, as slurmd refuses a node that claims more


def slurm_conf(scratch: Path, node: str, cpus: int, memory_mb: int) -> str:
    return "\n".join(
        [
            "ClusterName=sa2va",
            f"SlurmctldHost={node}(127.0.0.1)",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "MinJobAge=600",
            "SlurmctldPort=6817",
            "SlurmdPort=6818",
            f"StateSaveLocation={scratch}/state",
            f"SlurmdSpoolDir={scratch}/spool",
            f"SlurmctldPidFile={scratch}/slurmctld.pid",
            f"SlurmdPidFile={scratch}/slurmd.pid",
            f"SlurmctldLogFile={scratch}/slurmctld.log",
            f"SlurmdLogFile={scratch}/slurmd.log",
            f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
            f"PartitionName=main Nodes={node} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


class LocalSlurm:
    """``with LocalSlurm(scratch) as env:`` a running one-node cluster; ``env`` is the environment to run
    its clients in."""

    def __init__(self, scratch: str | os.PathLike):
        self.scratch = Path(scratch).resolve()
        self.node = socket.gethostname().split(".")[0]
        self.conf = SYSTEM_CONF
        self.env = dict(os.environ)
        self._munged_pid: int | None = None
        self._kept_conf: bytes | None = None

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(command, capture_output=True, text=True, env=self.env)
        if check and done.returncode != 0:
            raise SlurmUnavailable(
                f"{' '.join(command)} failed: {done.stderr.strip() or done.stdout.strip()}{self._logs()}"
            )
        return done

    def _logs(self) -> str:
        tails = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.scratch / name
            if path.is_file():
                tails.append(f"\n--- {name}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:]))
        return "".join(tails)

    def __enter__(self) -> dict[str, str]:
        ensure_packages()
        for sub in ("state", "spool"):
            (self.scratch / sub).mkdir(parents=True, exist_ok=True)
        if self.conf.is_file():
            self._kept_conf = self.conf.read_bytes()
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(slurm_conf(self.scratch, self.node, os.cpu_count() or 1, _memory_mb()))
        self._start_munge()
        self._run(_which("slurmctld") or "slurmctld", "-i")
        self._run(_which("slurmd") or "slurmd")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            state = self._run("sinfo", "-h", "-N", "-o", "%T", check=False).stdout.strip()
            if state == "idle":
                return self.env
            if state.startswith("down") or state.startswith("drain"):
                self._run("scontrol", "update", f"NodeName={self.node}", "State=RESUME", check=False)
            time.sleep(1)
        self.__exit__(None, None, None)
        raise SlurmUnavailable(f"the node did not become idle within {START_TIMEOUT_S:.0f} s{self._logs()}")

    def _start_munge(self) -> None:
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode == 0:
            return  # one already runs (a previous cluster, or the system's)
        subprocess.run(["install", "-d", "-o", "munge", "-g", "munge", "/run/munge"], check=False)
        munged = _which("munged") or "munged"
        done = subprocess.run(["runuser", "-u", "munge", "--", munged], capture_output=True, text=True)
        if done.returncode != 0:
            raise SlurmUnavailable(f"munged did not start: {done.stderr.strip()}")
        pid_file = Path("/run/munge/munged.pid")
        self._munged_pid = int(pid_file.read_text()) if pid_file.is_file() else None

    def __exit__(self, *exc: object) -> None:
        self._run("scontrol", "shutdown", check=False)
        for name in ("slurmctld.pid", "slurmd.pid"):
            deadline = time.monotonic() + 15
            path = self.scratch / name
            while path.is_file() and time.monotonic() < deadline:
                time.sleep(0.5)
        if self._munged_pid is not None:
            try:
                os.kill(self._munged_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self._kept_conf is not None:
            self.conf.write_bytes(self._kept_conf)
        else:
            self.conf.unlink(missing_ok=True)


__all__ = ["LocalSlurm", "SlurmUnavailable", "ensure_packages", "slurm_conf"]
