"""What every benchmark prints: each line goes to stdout, the log and the saved report file.

Imported by the benchmark scripts, which run as ``python benchmarks/<name>.py`` (so this folder
is on ``sys.path``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from sa2va_st.atomic import atomic_write_text

log = logging.getLogger("benchmark")


def log_to_file(path: Path) -> None:
    """Send every logger's INFO records to `path` (results/logs/benchmark_<name>.log)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)


class Report:
    """Call it with a line to print and record it; `save` writes the lines atomically."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)
        log.info("| %s", line)

    def save(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, "\n".join(self.lines) + "\n")
