"""Load the datasets' pickles (RefCOCO refs, Ref-YouTube-VOS masks) without running their code.

A pickle can name any importable callable, and unpickling calls it. These files only ever hold
builtin containers and scalars, so everything else is refused.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from ..errors import Sa2vaError

# Protocol-2 pickles (written by Python 2, as the RefCOCO ones are) spell bytes and sets through
# these callables; they build data and run nothing else.
ALLOWED_GLOBALS = frozenset(
    {
        ("_codecs", "encode"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "bytearray"),
        ("__builtin__", "set"),
    }
)


class UnsafePickleError(Sa2vaError):
    """A pickle asked for a global that a data file has no reason to use."""


class BuiltinsOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, label: str):
        super().__init__(file, encoding="latin1")
        self.label = label

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"pickle asks for {module}.{name}, which a data file never needs; refusing to load it",
            file=self.label,
            fix="only pickles of plain lists, dicts, strings and numbers are accepted; get the file from its official source",
        )


def load_builtin_pickle(path: str | Path) -> Any:
    data = Path(path).read_bytes()
    return BuiltinsOnlyUnpickler(io.BytesIO(data), str(path)).load()
