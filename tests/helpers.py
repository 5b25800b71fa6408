"""Small things several test files need (import them as `from helpers import ...`)."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sa2va_st.config import fill_defaults
from sa2va_st.data.archives import ExtractLimits

REPO = Path(__file__).resolve().parent.parent
CONFIG_SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def default_limits(**changes) -> ExtractLimits:
    """The archive limits of the config schema's defaults (the one place they live), with `changes`."""
    schema = yaml.safe_load(CONFIG_SCHEMA.read_text())
    unpack: dict = {}
    fill_defaults(unpack, schema["properties"]["unpack"], schema)
    return dataclasses.replace(ExtractLimits.from_config(unpack), **changes)


@contextlib.contextmanager
def small_tmpfs(mount: Path, size_bytes: int) -> Iterator[Path]:
    """A tmpfs of `size_bytes` mounted at `mount` while the block runs (root only: the test is skipped,
    saying why, where mounting is refused)."""
    mount.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
