"""Bring one extra source (url, hf or local) into the dataset tree (rule `fetch_source`)."""

import argparse
import json
from pathlib import Path

from sa2va_st.cli import add_extract_limit_options, extract_limits, run
from sa2va_st.data.sources import SourceSpec, fetch_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="the source's key in the config")
    parser.add_argument("--spec", required=True, help="the source's config entry, as JSON")
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument("--download-dir", required=True, type=Path)
    parser.add_argument("--marker", required=True, type=Path)
    add_extract_limit_options(parser)
    args = parser.parse_args()
    spec = SourceSpec.from_config(args.name, json.loads(args.spec))
    fetch_source(spec, args.data_root, args.download_dir, args.marker, extract_limits(args))


if __name__ == "__main__":
    run(main)
