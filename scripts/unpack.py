"""Unpack one verified archive into the dataset tree (rule `unpack`)."""

import argparse
from pathlib import Path

from sa2va_st.cli import add_extract_limit_options, extract_limits, run
from sa2va_st.data.unpack import unpack_archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--receipt", required=True, type=Path, help="the download's receipt (JSON)")
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument("--marker", required=True, type=Path, help="written last, when the datasets are in place")
    add_extract_limit_options(parser)
    args = parser.parse_args()
    unpack_archive(args.receipt, args.data_root, args.marker, extract_limits(args))


if __name__ == "__main__":
    run(main)
