"""Build the fps-independent special_jsons sidecars from the prepared dataset tree (rule `special_jsons`)."""

import argparse
from pathlib import Path

from sa2va_st import catalog
from sa2va_st.annotations import build_special_jsons
from sa2va_st.cli import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", required=True, type=Path, help="the tree prepare_data made")
    parser.add_argument("--out-dir", required=True, type=Path, help="e.g. special_jsons")
    parser.add_argument("--datasets", nargs="+", choices=list(catalog.NAMES), help="default: every dataset present")
    parser.add_argument("--schema-dir", type=Path, help="default: workflow/schemas/special_jsons of this checkout")
    args = parser.parse_args()
    build_special_jsons(args.data_root, args.out_dir, args.datasets, args.schema_dir)


if __name__ == "__main__":
    run(main)
