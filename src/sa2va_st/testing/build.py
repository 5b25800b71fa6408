"""The synthetic world built as far as the manifests, in-process and without Snakemake (tests, benchmarks).

`build_synthetic_manifests(out)` generates the world, lays out its data tree, builds special_jsons and
every manifest exactly as the pipeline's stages do; only the CLIP features are not extracted: they are
seeded random numbers at the tiny preset's width (`TINY_CLIP_DIM`), one row per 1/fps second of each
video's measured duration (what extraction would give, minus the seconds it takes).
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FEATURES_LABEL = "tiny-vit_tiny_clip"
FPS = 10.0


def build_synthetic_manifests(out: str | Path, seed: int = 0) -> dict[str, Any]:
    """Build under ``out``: world/, data/, special_jsons/, manifests/. Returns the folders and reports."""
    from ..annotations import build_special_jsons
    from ..features.decode import probe_video
    from ..features.pipeline import IndexRow, write_index
    from ..features.timing import feature_count
    from ..manifests import build_spatial_manifests, build_temporal_manifests
    from .sample_tree import synthetic_data_root
    from .tiny import TINY_CLIP_DIM
    from .world import generate_world

    out = Path(out)
    world = generate_world(out / "world", seed=seed)
    root = synthetic_data_root(out / "world", out / "data")
    videos = {"charades": root / "temporal/Charades/videos", "didemo": root / "temporal/didemo/videos"}
    with zipfile.ZipFile(out / "world/static/charades/Charades_v1_480.zip") as archive:
        for info in archive.infolist():
            if info.filename.endswith(".mp4"):
                target = videos["charades"] / Path(info.filename).name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(info))
    shutil.copytree(out / "world/manual/didemo_videos", videos["didemo"])
    special = build_special_jsons(root, out / "special_jsons")
    rng = np.random.default_rng(seed)
    for dataset, folder in videos.items():
        features = root / f"clip_features/{dataset}/{FEATURES_LABEL}/fps{FPS:g}"
        features.mkdir(parents=True)
        rows = []
        for path in sorted(folder.glob("*.mp4")):
            probe = probe_video(path)
            count = feature_count(probe.duration_s, FPS)
            np.save(features / f"{path.stem}.npy", rng.standard_normal((count, TINY_CLIP_DIM)).astype(np.float16))
            rows.append(IndexRow(path.stem, count, FPS, probe.duration_s, probe.source_fps, probe.frame_count, "ok"))
        write_index(rows, features / "index.parquet")
    spatial = build_spatial_manifests(out / "special_jsons", root, out / "manifests")
    temporal = build_temporal_manifests(out / "special_jsons", root, FEATURES_LABEL, FPS, out / "manifests")
    return {
        "tmp": out,
        "world": world,
        "root": root,
        "special": special,
        "spatial": spatial,
        "temporal": temporal,
        "spatial_manifests": out / "manifests" / "spatial",
        "temporal_manifests": out / "manifests" / "temporal" / FEATURES_LABEL / f"fps{FPS:g}",
    }
