"""Small things several test files need (import them as `from helpers import ...`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

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
