"""PyTorch datasets over the Parquet manifests (stage `train` and `evaluate`).

One concept per module:

- `image`     `ImageGroundingDataset`: RefCOCO/+/g, one item per image, up to 5 expressions
- `video`     `VideoGroundingDataset`: MeViS / Ref-YouTube-VOS / ReVOS, one item per expression,
              6 frames over the whole clip, ``<no_box>`` where the object is absent
- `temporal`  `TemporalGroundingDataset`: Charades-STA / DiDeMo, one item per query,
              100 memory-mapped CLIP features over the whole video (never chosen by the target)
- `concat`    `ConcatTaskDataset` (the sampler's index space) and `collate_keep_lists`
- `common`    manifest reading, path resolution, the per-item RNG, image decoding
- `npy`       `read_rows`: chosen rows of a .npy, one open per call, memory-mapped, header cached

Every dataset has ``task`` (the sampler's task name), ``name`` (its sampler name: the
manifests' ``dataset`` value unless ``name=`` is given), ``train``, ``seed``, `set_epoch`;
items are dicts (documented in each module) and are deterministic for
``(seed, epoch, index)`` in training, for ``index`` alone in evaluation; no global RNG state
is read. Missing manifests, columns or files raise `sa2va_st.errors.DatasetError` (a `Sa2vaError`), naming the
file and the manifest (row id and column). Images and frames are uint8 CHW tensors.
"""

from ..errors import DatasetError
from .concat import ConcatTaskDataset, collate_keep_lists
from .image import ImageGroundingDataset
from .temporal import TemporalGroundingDataset
from .video import VideoGroundingDataset

__all__ = [
    "ConcatTaskDataset",
    "DatasetError",
    "ImageGroundingDataset",
    "TemporalGroundingDataset",
    "VideoGroundingDataset",
    "collate_keep_lists",
]
