"""Count what prepare_data produced, per dataset (rule `inventory`)."""

import argparse
import logging
from pathlib import Path

from sa2va_st.atomic import atomic_write_json
from sa2va_st.cli import run
from sa2va_st.data.inventory import build_inventory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    inventory = build_inventory(args.data_root)
    atomic_write_json(args.out, inventory)
    for name, entry in inventory["datasets"].items():
        logging.info("%-9s %s", name, {k: v for k, v in entry.items() if k != "path"})


if __name__ == "__main__":
    run(main)
