"""What the three grounding datasets share: manifest reading, path resolution, per-item RNG, decoding.

- **Manifests** are Parquet tables (one per dataset and split, written by the manifests stage).
  `read_manifests` reads one or more of them, checks that the needed columns exist and
  returns the columns as Python lists plus, per row, the manifest it came from (so that an
  error about a row names its manifest).
- **Paths** in a manifest are used as written; a relative one is joined to ``root`` when a
  dataset is given one (``root=None``: relative to the current working directory, which is
  the Snakemake working directory in a run).
- **Randomness.** Every random choice of an item is drawn from
  ``numpy.random.default_rng([seed, epoch, index, salt(, stream)])`` (``salt`` differs per task;
  ``stream`` separates two kinds of choice of one item, e.g. a clip's frames and its expressions):
  deterministic for ``(seed, epoch, index)``, independent of the worker process, of the
  order in which items are fetched and of any global RNG state (``random``,
  ``np.random``, ``torch`` seeds are never read or advanced).
- **Lengths.** Each dataset's ``lengths()`` estimates every item's tokens without reading any image
  or feature file (sentences at `CHARS_PER_TOKEN` characters a token, boxes at
  `sa2va_st.formats.boxes.TOKENS_PER_BOX`): the sampler's length grouping needs an order, not counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DatasetError

PathLike = str | os.PathLike

# per-task salts of the item RNG (so that item i of two tasks never shares its random stream)
SALT_IMAGE, SALT_VIDEO, SALT_TEMPORAL = 1, 2, 3
CHARS_PER_TOKEN = 4  # English text with a BPE tokenizer, roughly


def as_path_list(manifest_paths: PathLike | Sequence[PathLike]) -> list[Path]:
    """One path or a sequence of paths → a list of `Path` (at least one)."""
    if isinstance(manifest_paths, (str, os.PathLike)):
        paths = [Path(manifest_paths)]
    else:
        paths = [Path(p) for p in manifest_paths]
    if not paths:
        raise DatasetError(
            "no manifest given", key="manifest_paths", fix="pass the Parquet manifest(s) of the split to load"
        )
    return paths


def read_manifests(
    manifest_paths: PathLike | Sequence[PathLike],
    required: Iterable[str],
    optional: Iterable[str] = (),
    *,
    kind: str,
) -> tuple[dict[str, list], list[str]]:
    """Read and concatenate Parquet manifests.

    Returns ``(columns, manifest_of_row)``: ``columns[name]`` is the list of the column's
    values over all rows (in file order, manifests in the order given); an ``optional``
    column a manifest lacks reads as ``None`` for its rows. ``manifest_of_row[i]`` is the
    path (as a string) of the manifest row ``i`` came from.
    """
    import pyarrow.parquet as pq

    required, optional = list(required), list(optional)
    columns: dict[str, list] = {c: [] for c in required + optional}
    origin: list[str] = []
    for path in as_path_list(manifest_paths):
        if not path.is_file():
            raise DatasetError(
                f"the {kind} manifest does not exist",
                file=str(path),
                fix="build it with the manifests stage (snakemake manifests) or correct the path",
            )
        try:
            schema = pq.read_schema(path)
        except Exception as exc:  # pyarrow raises several types for a non-Parquet file
            raise DatasetError(
                f"the {kind} manifest is not a readable Parquet file ({exc})",
                file=str(path),
                fix="rebuild it with the manifests stage",
            ) from exc
        missing = [c for c in required if c not in schema.names]
        if missing:
            raise DatasetError(
                f"the {kind} manifest lacks column(s) {missing} (it has {list(schema.names)})",
                file=str(path),
                key=missing[0],
                fix=f"pass a {kind} manifest, or rebuild it with the current manifests stage",
            )
        present = [c for c in optional if c in schema.names]
        table = pq.read_table(path, columns=required + present)
        n = table.num_rows
        for c in required + present:
            columns[c].extend(table.column(c).to_pylist())
        for c in optional:
            if c not in present:
                columns[c].extend([None] * n)
        origin.extend([str(path)] * n)
    return columns, origin


def resolve(path: str, root: Path | None) -> Path:
    p = Path(path)
    return p if (root is None or p.is_absolute()) else root / p


def missing_file_error(what: str, path: Path, manifest: str, row_id: object, column: str) -> DatasetError:
    return DatasetError(
        f"{what} named by manifest {manifest} (row id {row_id!r}, column {column!r}) does not exist: {path}",
        file=str(path),
        key=f"{manifest}:{row_id}:{column}",
        fix="re-run the unpack/features stage that writes it, or rebuild the manifest from the current data "
        "(and check the dataset's root)",
    )


def decode_rgb_chw(path: Path, *, manifest: str, row_id: object, column: str) -> torch.Tensor:
    """An image file → uint8 tensor (3, H, W), RGB (grayscale / CMYK / palette converted)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            array = np.array(image.convert("RGB"))  # (H, W, 3) uint8, a writable copy
    except FileNotFoundError:
        raise missing_file_error("the image", path, manifest, row_id, column) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError(
            f"cannot decode the image named by manifest {manifest} (row id {row_id!r}, column {column!r}): {exc}",
            file=str(path),
            key=f"{manifest}:{row_id}:{column}",
            fix="the file is truncated or not an image: unpack the archive again",
        ) from exc
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()  # (3, H, W)


def check_int(value: object, key: str, minimum: int, maximum: int | None = None, why: str = "") -> int:
    """``value`` as an int, or a DatasetError naming ``key`` (bools are not integers here)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise DatasetError(f"{key} must be an integer {bound}{why}, got {value!r}", key=key)
    return int(value)


def single_name(names: Sequence[str], given: str | None, kind: str) -> str:
    """The dataset's name for the sampler: ``given``, else the manifests' one ``dataset`` value."""
    if given is not None:
        return given
    distinct = list(dict.fromkeys(names))
    if not distinct:
        return kind
    return distinct[0] if len(distinct) == 1 else "+".join(distinct)


class GroundingDataset(Dataset):
    """Base of the three datasets: ``task``, ``name``, ``train``, ``seed``, ``root``, ``epoch``, `set_epoch`."""

    task: str = ""
    _salt: int = 0

    def __init__(self, *, train: bool, seed: int, root: PathLike | None) -> None:
        self.train = bool(train)
        self.seed = check_int(seed, "seed", 0)
        self.epoch = 0
        self.root = None if root is None else Path(root)  # the folder relative manifest paths start from

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random choices items use (training only; evaluation ignores it).

        Call it before creating the DataLoader iterator of each epoch (workers copy the
        dataset when the iterator starts; with ``persistent_workers=True`` they would keep
        the old epoch).
        """
        self.epoch = check_int(epoch, "epoch", 0)

    def item_rng(self, index: int, stream: int = 0) -> np.random.Generator | None:
        """The generator of item ``index`` for the current epoch (``stream`` k > 0: an independent one, for a
        second kind of choice); ``None`` in evaluation mode."""
        if not self.train:
            return None
        return np.random.default_rng([self.seed, self.epoch, int(index), self._salt, *([stream] if stream else [])])

    def _check_index(self, index: object) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{type(self).__name__} index must be an integer, got {index!r}")
        i = int(index)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"{type(self).__name__} index {index} out of range [0, {len(self)})")
        return i
