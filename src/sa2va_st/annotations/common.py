"""Small shared pieces of the readers: loading JSON and pickles with located errors, type checks,
and the rounding every output number goes through."""

from __future__ import annotations

import contextlib
import gc
import json
import math
import operator
import pickle
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..data.pickles import UnsafePickleError, load_builtin_pickle
from ..errors import AnnotationError

DECIMALS = 6  # every float written to special_jsons is rounded to this, so bytes never depend on noise


def rounded(value: float) -> float:
    """`value` rounded to DECIMALS; -0.0 becomes 0.0 so that equal numbers print equally."""
    return round(float(value), DECIMALS) + 0.0


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (restored after; nests): parsing a mask dict, or building
    a split's records, makes millions of containers, and every collection would walk all of them again,
    with nothing to find: parsed JSON and records hold no reference cycles. Anything cyclic made inside
    is collected once collection resumes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_json(path: Path) -> Any:
    """A JSON file, or AnnotationError naming it (truncated downloads show up here)."""
    try:
        with open(path, "rb") as handle, gc_paused():
            return json.load(handle)
    except FileNotFoundError:
        raise AnnotationError(
            f"{path.name} does not exist", file=str(path), fix="re-run the unpack/layout step that places it"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AnnotationError(
            f"{path.name} is not valid JSON ({error})",
            file=str(path),
            fix="the file is truncated or not the released one; download and unpack it again",
        ) from None


def load_pickle(path: Path) -> Any:
    """A data pickle through the restricted unpickler (builtins only); a broken pickle is an AnnotationError.

    A pickle that asks for a forbidden global raises UnsafePickleError (also a Sa2vaError) and runs nothing.
    """
    try:
        with gc_paused():
            return load_builtin_pickle(path)
    except UnsafePickleError:
        raise
    except FileNotFoundError:
        raise AnnotationError(
            f"{path.name} does not exist", file=str(path), fix="re-run the unpack/layout step that places it"
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        AttributeError,
        UnicodeDecodeError,
    ) as error:
        raise AnnotationError(
            f"{path.name} is not a readable pickle ({type(error).__name__}: {error})",
            file=str(path),
            fix="the file is truncated or not the released one; download and unpack it again",
        ) from None


def load_mapping_file(path: Path) -> Any:
    """JSON or pickle, by suffix (mask dicts come in both forms)."""
    return load_pickle(path) if path.suffix.lower() in {".p", ".pkl", ".pickle"} else load_json(path)


def check_not_empty(entries: list, path: Path) -> None:
    """A released split always holds queries: an empty file is a failed download or the wrong file."""
    if not entries:
        raise AnnotationError(
            "the file holds no query", file=str(path), fix="download the annotation file again (it is empty)"
        )


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def require(
    mapping: Any, key: str, kind: type | tuple[type, ...], *, file: Path, where: str, fix: str | None = None
) -> Any:
    """mapping[key], checked to be a `kind`; AnnotationError naming `where.key` otherwise."""
    location = f"{where}.{key}" if where else key
    if not isinstance(mapping, Mapping):
        raise AnnotationError(
            f"{where or 'the top level'} is a {type_name(mapping)}, expected an object",
            file=str(file),
            key=where or None,
            fix=fix,
        )
    if key not in mapping:
        raise AnnotationError(
            f"missing key '{key}'", file=str(file), key=location, fix=fix or "the file is not in the released format"
        )
    value = mapping[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise AnnotationError(
            f"'{key}' is a {type_name(value)}, expected {_kind_text(kind)}",
            file=str(file),
            key=location,
            fix=fix or "the file is not in the released format",
        )
    return value


def as_int(value: Any, *, file: Path, key: str) -> int:
    """An integer id or index; accepts ints, numpy ints and integral floats, never bools or strings."""
    if isinstance(value, bool):
        raise AnnotationError(
            f"expected an integer, got {value!r}", file=str(file), key=key, fix="the file is not in the released format"
        )
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return operator.index(value)
    except TypeError:
        raise AnnotationError(
            f"expected an integer, got {type_name(value)} {value!r}",
            file=str(file),
            key=key,
            fix="the file is not in the released format",
        ) from None


def as_seconds(value: Any, *, file: Path, key: str) -> float:
    """A finite, non-negative time in seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise AnnotationError(
            f"expected a time in seconds (a finite number >= 0), got {value!r}",
            file=str(file),
            key=key,
            fix="correct or remove this entry",
        )
    return float(value)


def id_text(value: Any, *, file: Path, key: str) -> str:
    """An id that files spell as an int or a string (obj_id, anno_id, exp_id), as a string."""
    if isinstance(value, str) and value:
        return value
    return str(as_int(value, file=file, key=key))


def relative(path: Path, root: Path) -> str:
    """POSIX path of `path` under `root` (what the outputs record: never an absolute path)."""
    return Path(path).relative_to(root).as_posix()


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_text(kind: type | tuple[type, ...]) -> str:
    names = {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number", tuple: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))
