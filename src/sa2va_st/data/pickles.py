"""Load the datasets' pickles (RefCOCO refs, Ref-YouTube-VOS masks) without running their code.

A pickle can name any importable callable, and unpickling calls it. These files only ever hold
builtin containers and scalars (and, when written by numpy-using scripts, plain numpy arrays and
scalars), so every other global is refused before anything is called.
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
        ("__builtin__", "frozenset"),
        ("collections", "OrderedDict"),
    }
)

# numpy arrays and scalars pickle through these. They only build an array (or scalar) of a given
# dtype from bytes; the elements of an object array are themselves unpickled through find_class,
# so they cannot smuggle in another global. numpy 2 renamed numpy.core to numpy._core.
NUMPY_GLOBALS = frozenset(
    {
        (core, name)
        for core in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    }
    | {(numeric, "_frombuffer") for numeric in ("numpy.core.numeric", "numpy._core.numeric")}  # protocol 5
    | {("numpy", "ndarray"), ("numpy", "dtype")}
)


class UnsafePickleError(Sa2vaError):
    """A pickle asked for a global that a data file has no reason to use."""


class BuiltinsOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, label: str):
        super().__init__(file, encoding="latin1")
        self.label = label

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED_GLOBALS or (module, name) in NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"pickle asks for {module}.{name}, which a data file never needs; refusing to load it",
            file=self.label,
            fix="only pickles of plain lists, dicts, strings and numbers are accepted; get the file from its official source",
        )


def load_builtin_pickle(path: str | Path) -> Any:
    """The pickle's data; UnsafePickleError (naming the file and the global) if it asks for code."""
    data = Path(path).read_bytes()
    return BuiltinsOnlyUnpickler(io.BytesIO(data), str(path)).load()
