"""Charades-STA / DiDeMo: one item per query, ``num_positions`` (100) CLIP features of the whole video.

**Which features.** The video's feature file (float16 ``(T, D)`` ``.npy``, row ``i`` = the
frame at ``i / fps``) is opened ONCE per item and memory-mapped (`sa2va_st.datasets.npy.read_rows`:
what ``np.load(path, mmap_mode="r")[rows]`` does, with one ``open`` instead of numpy's three
and the parsed header cached; only the pages of the chosen rows are read), and the rows
``sample_positions(T, num_positions, rng)`` are copied out as float32: one row per bin of
``N = num_positions`` equal bins over the whole video, a random row inside each bin in
training (from the item RNG: deterministic for ``(seed, epoch, index)``), the row nearest
each bin centre in evaluation. The rows depend on ``T``, ``N``, the seed, epoch and index
only — **never on the target window** (upstream picked 20–40 features inside the target
window: a label leak that test-time sampling cannot reproduce; upstream also re-read the
whole feature file once per sampled frame).

**Answer.** The window in seconds (manifest ``start_s``, ``end_s``, clipped to the video) →
bins ``(a, b) = window_to_indices(start_s, end_s, duration, N)`` →
``encode_window_tokens(a, b)``, e.g. ``<frame_0><frame_7>-<frame_2><frame_3>``. Feature
``j`` stands for bin ``j``, so ``indices_to_window(a, b, duration, N)`` maps the answer
back to seconds (within ``duration / N`` of the manifest window at each end).

Item dict:

=================  ==========================================================================
``task``           ``"temporal_grounding"``
``dataset``        manifest ``dataset`` (``charades``, ``didemo``)
``split``          manifest ``split``
``index``          the item's index in this dataset (= its manifest row)
``id``             manifest ``id``
``video``          manifest ``video``
``sentence``       the query
``features_path``  the resolved features file (str)
``features``       float32 tensor **(N, D)**: the chosen feature rows, in time order
``positions``      int64 tensor (N,): the rows of the feature file (non-decreasing)
``fps``            manifest ``fps`` (feature rate; row ``i`` is at ``i / fps`` s)
``num_features``   ``T``
``duration``       video duration in seconds (float)
``window_s``       ``(start_s, end_s)``: the target window in seconds
``truths_s``       tuple of ``(start_s, end_s)``: every ground-truth window (manifest
                   ``ground_truth_windows``; DiDeMo's annotators), what evaluation matches against;
                   ``(window_s,)`` for a manifest without that column
``window_idx``     ``(a, b)``: the target bins, ``0 <= a <= b < N``
``answer``         ``encode_window_tokens(a, b)``
=================  ==========================================================================
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..catalog import TEMPORAL_GROUNDING
from ..errors import DatasetError
from ..formats.common import FormatError
from ..formats.windows import DEFAULT_NUM_BINS, encode_window_tokens, sample_positions, window_to_indices
from .common import (
    CHARS_PER_TOKEN,
    SALT_TEMPORAL,
    GroundingDataset,
    PathLike,
    check_int,
    missing_file_error,
    read_manifests,
    resolve,
    single_name,
)
from .npy import HeaderCache, read_rows

TEMPORAL_COLUMNS = (
    "id",
    "dataset",
    "split",
    "video",
    "sentence",
    "video_path",
    "features_path",
    "fps",
    "num_features",
    "duration",
    "start_s",
    "end_s",
    "start_idx",
    "end_idx",
)
OPTIONAL_COLUMNS = ("ground_truth_windows",)  # absent (a manifest written by hand): the target is the one truth


class TemporalGroundingDataset(GroundingDataset):
    """Moment retrieval over per-video CLIP features; see the module docstring for the item dict."""

    task = TEMPORAL_GROUNDING
    _salt = SALT_TEMPORAL

    def __init__(
        self,
        manifest_paths: PathLike | Sequence[PathLike],
        *,
        num_positions: int = DEFAULT_NUM_BINS,
        train: bool = True,
        seed: int = 0,
        root: PathLike | None = None,
        name: str | None = None,
        check_files: bool = False,
    ) -> None:
        super().__init__(train=train, seed=seed, root=root)
        self.num_positions = check_int(num_positions, "num_positions", 1, 100, why=" (two-digit frame tokens)")
        cols, origin = read_manifests(manifest_paths, TEMPORAL_COLUMNS, OPTIONAL_COLUMNS, kind="temporal")
        self.name = single_name(cols["dataset"], name, "temporal")
        keep = ("id", "dataset", "split", "video", "sentence", "features_path")
        self._cols = {k: cols[k] for k in keep}
        self._paths = [os.fspath(resolve(p, self.root)) for p in cols["features_path"]]
        self._headers = HeaderCache()  # parsed .npy headers, re-parsed when a file changes
        self._origin = origin
        n = len(origin)
        self._fps = np.asarray(cols["fps"], dtype=np.float64).reshape(n)
        self._duration = np.asarray(cols["duration"], dtype=np.float64).reshape(n)
        self._window = np.asarray([cols["start_s"], cols["end_s"]], dtype=np.float64).reshape(2, n).T  # (n, 2)
        self._truths = [
            tuple((float(a), float(b)) for a, b in windows) if windows else (tuple(self._window[i]),)
            for i, windows in enumerate(cols["ground_truth_windows"])
        ]
        self._num_features = np.asarray(cols["num_features"], dtype=np.int64).reshape(n)
        self._bins = np.zeros((n, 2), dtype=np.int64)
        for i in range(n):
            if self._num_features[i] < 1:
                raise DatasetError(
                    f"row id {cols['id'][i]!r} has num_features {self._num_features[i]}",
                    file=origin[i],
                    key=f"{cols['id'][i]}:num_features",
                    fix="re-extract the video's features; the manifests stage drops failed videos",
                )
            try:
                self._bins[i] = window_to_indices(*self._window[i], self._duration[i], self.num_positions)
            except FormatError as exc:
                raise DatasetError(
                    f"row id {cols['id'][i]!r}: bad window [{self._window[i][0]}, {self._window[i][1]}] "
                    f"or duration {self._duration[i]}: {exc.what}",
                    file=origin[i],
                    key=f"{cols['id'][i]}:start_s",
                    fix="rebuild the manifest (it clips and orders windows)",
                ) from exc
        if check_files:
            for i in range(n):
                path = resolve(cols["features_path"][i], self.root)
                if not path.is_file():
                    raise missing_file_error("the features file", path, origin[i], cols["id"][i], "features_path")

    def __len__(self) -> int:
        return len(self._origin)

    def lengths(self) -> np.ndarray:
        """(items,) a rough token count of each query (~4 characters a token); the features cost every
        query the same, so only the sentence varies."""
        return np.asarray([len(s) / CHARS_PER_TOKEN for s in self._cols["sentence"]], dtype=np.float64)

    def positions(self, index: int) -> np.ndarray:
        """(N,) int64: the feature rows item ``index`` shows in the current epoch (no file access)."""
        index = self._check_index(index)
        return sample_positions(int(self._num_features[index]), self.num_positions, self.item_rng(index))

    def _features(self, index: int, rows: np.ndarray) -> torch.Tensor:
        c = self._cols
        row_id, manifest = c["id"][index], self._origin[index]
        path = self._paths[index]
        t = int(self._num_features[index])

        def validate(shape: tuple[int, ...], dtype: np.dtype) -> None:
            if dtype.kind != "f":
                raise DatasetError(
                    f"the features file holds {dtype}, not floating-point features",
                    file=path,
                    key=f"{manifest}:{row_id}:features_path",
                    fix="re-run extract_clip_features for this video",
                )
            if len(shape) != 2 or shape[0] != t:
                raise DatasetError(
                    f"the features file has shape {shape} but manifest {manifest} (row id {row_id!r}) "
                    f"says num_features {t}",
                    file=path,
                    key=f"{manifest}:{row_id}:num_features",
                    fix="the features were re-extracted after the manifest was built: rebuild the manifest",
                )

        try:
            # the one open of this file for this item: memory-mapped, only the chosen rows are read
            picked = read_rows(path, rows, self._headers, validate)  # (N, D), the file's dtype
        except FileNotFoundError:
            raise missing_file_error("the features file", Path(path), manifest, row_id, "features_path") from None
        except (OSError, ValueError) as exc:
            raise DatasetError(
                f"cannot read the features file named by manifest {manifest} (row id {row_id!r}): {exc}",
                file=path,
                key=f"{manifest}:{row_id}:features_path",
                fix="re-run extract_clip_features for this video",
            ) from exc
        if not picked.dtype.isnative:
            picked = picked.astype(picked.dtype.newbyteorder("="))
        # torch's float16 -> float32 cast is ~30x faster than numpy's
        return torch.from_numpy(picked).to(torch.float32)

    def __getitem__(self, index: int) -> dict:
        index = self._check_index(index)
        c = self._cols
        rows = self.positions(index)  # (N,)
        features = self._features(index, rows)  # (N, D)
        a, b = (int(v) for v in self._bins[index])
        return {
            "task": self.task,
            "dataset": c["dataset"][index],
            "split": c["split"][index],
            "index": index,
            "id": c["id"][index],
            "video": c["video"][index],
            "sentence": c["sentence"][index],
            "features_path": self._paths[index],
            "features": features,
            "positions": torch.from_numpy(rows),
            "fps": float(self._fps[index]),
            "num_features": int(self._num_features[index]),
            "duration": float(self._duration[index]),
            "window_s": (float(self._window[index, 0]), float(self._window[index, 1])),
            "truths_s": self._truths[index],
            "window_idx": (a, b),
            "answer": encode_window_tokens(a, b, self.num_positions),
        }
