"""Build the training manifests and their validation report (rule `manifests`).

build_manifests.py spatial  --special-jsons special_jsons --data-root DATA --out-dir results/manifests
build_manifests.py temporal --special-jsons special_jsons --data-root DATA --out-dir results/manifests
                            --features-label ViT-H-14_laion2b_s32b_b79k --fps 10
"""

import argparse
from pathlib import Path

from sa2va_st.cli import run
from sa2va_st.errors import ManifestError
from sa2va_st.manifests import build_spatial_manifests, build_temporal_manifests


def folders(pairs: list[str] | None, option: str) -> dict[str, str]:
    """['charades=path', ...] -> {'charades': 'path'}."""
    result = {}
    for pair in pairs or []:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise ManifestError(
                f"{option} takes DATASET=FOLDER, got {pair!r}", key=option, fix=f"e.g. {option} charades=path/to/folder"
            )
        result[name] = path
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True)
    for name in ("spatial", "temporal"):
        p = sub.add_parser(name)
        p.add_argument("--special-jsons", required=True, type=Path, help="the special_jsons folder")
        p.add_argument("--data-root", required=True, help="the dataset tree; output paths start with it as written")
        p.add_argument("--out-dir", required=True, type=Path, help="e.g. results/manifests")
        p.add_argument("--datasets", nargs="+", help="default: every dataset of this kind with special_jsons")
        p.add_argument("--schema-root", type=Path, help="default: workflow/schemas of this checkout")
        if name == "temporal":
            p.add_argument("--features-label", required=True, help="the feature set's folder name, {model}_{weights}")
            p.add_argument("--fps", required=True, type=float)
            p.add_argument(
                "--videos",
                nargs="+",
                metavar="DATASET=FOLDER",
                help="videos folder per dataset (default: the catalog's videos folder under data_root)",
            )
            p.add_argument(
                "--features",
                nargs="+",
                metavar="DATASET=FOLDER",
                help="feature folder per dataset (default: {data_root}/clip_features/{dataset}/{label}/fps{fps})",
            )
    args = parser.parse_args()
    if args.stage == "spatial":
        build_spatial_manifests(
            args.special_jsons, args.data_root, args.out_dir, datasets=args.datasets, schema_root=args.schema_root
        )
    else:
        build_temporal_manifests(
            args.special_jsons,
            args.data_root,
            args.features_label,
            args.fps,
            args.out_dir,
            datasets=args.datasets,
            video_dirs=folders(args.videos, "--videos"),
            features_dirs=folders(args.features, "--features"),
            schema_root=args.schema_root,
        )


if __name__ == "__main__":
    run(main)
