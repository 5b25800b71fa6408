"""Validate a configuration against the project's JSON schema, with errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError


def load_schema(path: str | Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _key_of(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return ".".join(filter(None, [path, extra[0] if extra else ""]))
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        return ".".join(filter(None, [path, missing[0] if missing else ""]))
    return path or "(top level)"


def validate_config(config: dict[str, Any], schema_path: str | Path, source: str = "config.yaml") -> dict[str, Any]:
    """Raise ConfigError naming the first wrong key (all problems listed), else return the config."""
    schema = load_schema(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return config
    lines = []
    for error in errors:
        detail = error.message
        if error.validator == "additionalProperties":
            detail = f"unknown key ({error.message})"
        lines.append(f"{_key_of(error)}: {detail}")
    first = _key_of(errors[0])
    raise ConfigError(
        "invalid configuration:\n    " + "\n    ".join(lines),
        file=source,
        key=first,
        fix=f"correct '{first}' (allowed keys, types and ranges: {schema_path})",
    )
