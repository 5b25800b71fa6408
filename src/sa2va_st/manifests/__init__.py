"""The manifests stage: training-ready Parquet tables and a validation report.

    build_spatial_manifests(special_jsons_dir, data_root, out_dir)
        -> {out_dir}/spatial/{dataset}/{split}.parquet, {out_dir}/spatial/report.{json,md}
    build_temporal_manifests(special_jsons_dir, data_root, features_label, fps, out_dir)
        -> {out_dir}/temporal/{features_label}/fps{fps:g}/{dataset}/{split}.parquet, .../report.{json,md}

Spatial manifests do not depend on fps; temporal ones do (targets in feature indices). Columns
are fixed (`schemas`: IMAGE_SCHEMA, VIDEO_SCHEMA, TEMPORAL_SCHEMA) and described for people in
workflow/schemas/manifests/. Every record of special_jsons is either kept (possibly clipped)
or dropped and counted by reason; structural problems raise ManifestError naming the file.
"""

from ..errors import ManifestError
from .schemas import CLIP_REASONS, DROP_REASONS, IMAGE_SCHEMA, SCHEMAS, TEMPORAL_SCHEMA, VIDEO_SCHEMA, column_spec
from .spatial import build_spatial_manifests, spatial_dir
from .temporal import build_temporal_manifests, feature_id, temporal_dir, window_indices

__all__ = [
    "CLIP_REASONS",
    "DROP_REASONS",
    "IMAGE_SCHEMA",
    "ManifestError",
    "SCHEMAS",
    "TEMPORAL_SCHEMA",
    "VIDEO_SCHEMA",
    "build_spatial_manifests",
    "build_temporal_manifests",
    "column_spec",
    "feature_id",
    "spatial_dir",
    "temporal_dir",
    "window_indices",
]
