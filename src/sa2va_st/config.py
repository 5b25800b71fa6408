"""Validate a configuration against the project's JSON schema, with errors that name the key."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from . import catalog
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


def _resolve(node: dict, schema: dict) -> dict:
    ref = node.get("$ref", "")
    return schema["$defs"][ref.split("/")[-1]] if ref.startswith("#/$defs/") else node


def fill_defaults(instance: Any, node: dict, schema: dict) -> None:
    """Set the schema's `default` of every missing key, in place, so code reads one source of defaults."""
    node = _resolve(node, schema)
    if not isinstance(instance, dict):
        return
    for key, child in node.get("properties", {}).items():
        child = _resolve(child, schema)
        if key not in instance and "default" in child:
            instance[key] = copy.deepcopy(child["default"])
        if key in instance:
            fill_defaults(instance[key], child, schema)
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        for key in set(instance) - set(node.get("properties", {})):
            fill_defaults(instance[key], extra, schema)


def _types(node: dict) -> list[str]:
    wanted = node.get("type")
    return [wanted] if isinstance(wanted, str) else list(wanted or [])


def _as_wanted(value: Any, node: dict) -> Any:
    """``value`` parsed as YAML when it is a string, the schema wants no string, and the parse has a wanted type."""
    wanted = _types(node)
    if not isinstance(value, str) or not wanted or "string" in wanted:
        return value
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    if isinstance(parsed, str) and "number" in wanted:  # YAML 1.1 reads "1e-4" as text
        try:
            parsed = float(value)
        except ValueError:
            return value
    kind = {bool: "boolean", int: "integer", float: "number", type(None): "null"}.get(type(parsed))
    if kind == "boolean" and value.strip().lower() not in ("true", "false"):
        return value  # YAML 1.1's yes/no/on/off are too easy to write by mistake: only true/false
    fits = kind in wanted or (kind == "integer" and "number" in wanted)
    return parsed if fits else value


def coerce_command_line_strings(instance: Any, node: dict, schema: dict) -> None:
    """Snakemake reads nested ``--config`` values as strings (``training='{processes: 3}'`` gives
    ``'3'``; ``start_over=true`` gives ``'true'``): where the schema wants no string and the text reads
    as YAML of a wanted type, take that value, in place. Anything else is left to the validation."""
    node = _resolve(node, schema)
    if not isinstance(instance, dict):
        return
    for key, value in instance.items():
        child = node.get("properties", {}).get(key, node.get("additionalProperties"))
        if not isinstance(child, dict):
            continue
        child = _resolve(child, schema)
        if isinstance(value, dict):
            coerce_command_line_strings(value, child, schema)
        elif isinstance(value, list) and isinstance(child.get("items"), dict):
            instance[key] = [_as_wanted(v, _resolve(child["items"], schema)) for v in value]
        else:
            instance[key] = _as_wanted(value, child)


def _check_references(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Keys that name other keys, or datasets, must name existing ones: (key, what is wrong, the fix)."""
    problems = []
    sources = sorted(config.get("sources", {}))
    temporal = [d.name for d in catalog.of_task(catalog.TEMPORAL_GROUNDING)]
    for name, dataset in config.get("temporal_datasets", {}).items():
        if name not in temporal:
            problems.append((f"temporal_datasets.{name}", f"'{name}' is not a temporal dataset", f"use {temporal}"))
            continue
        source = dataset.get("videos_source")
        if source not in sources:
            key = f"temporal_datasets.{name}.videos_source"
            problems.append(
                (key, f"'{source}' is not a key of sources", f"set '{key}' to one of: {', '.join(sources)}")
            )
    for name in (config.get("training") or {}).get("repeats") or {}:
        if name not in catalog.BY_NAME:
            problems.append(
                (f"training.repeats.{name}", f"'{name}' is not a dataset", f"use one of: {', '.join(catalog.NAMES)}")
            )
    return problems


def _non_finite(node: Any, key: str = "") -> list[str]:
    """Keys holding NaN or an infinity (YAML's .nan / .inf / 1e400): JSON Schema's ranges cannot catch
    them (every comparison with NaN is false), so they are refused here, whatever the key."""
    if isinstance(node, float) and not math.isfinite(node):
        return [key]
    if isinstance(node, dict):
        return [k for name, value in node.items() for k in _non_finite(value, f"{key}.{name}" if key else str(name))]
    if isinstance(node, list):
        return [k for i, value in enumerate(node) for k in _non_finite(value, f"{key}[{i}]")]
    return []


def validate_config(config: dict[str, Any], schema_path: str | Path, source: str = "config.yaml") -> dict[str, Any]:
    """Fill defaults, then raise ConfigError naming the first wrong key (all problems listed), else return the config."""
    schema = load_schema(schema_path)
    coerce_command_line_strings(config, schema, schema)
    non_finite = _non_finite(config)
    if non_finite:
        raise ConfigError(
            "invalid configuration:\n    " + "\n    ".join(f"{k}: not a finite number" for k in non_finite),
            file=source,
            key=non_finite[0],
            fix=f"give '{non_finite[0]}' a finite number (allowed ranges: {schema_path})",
        )
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(config), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)))
    )
    if not errors:
        references = _check_references(config)
        if references:
            key, _, fix = references[0]
            raise ConfigError(
                "invalid configuration:\n    " + "\n    ".join(f"{k}: {d}" for k, d, _ in references),
                file=source,
                key=key,
                fix=fix,
            )
        fill_defaults(config, schema, schema)
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
