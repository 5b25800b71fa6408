"""Run the pipeline on the synthetic world (what `make demo` does).

Extra arguments go to snakemake, e.g. `scripts/demo.py -n` for a dry run or
`scripts/demo.py prepare_data` for one target. Without any, it runs the whole DAG (rule all) and then
`snakemake --report results/report.html`. `--size smoke` runs the test suite's smaller demo (the base
world, ~1,000 training steps) in another folder.
"""

import argparse
import os
import sys
from pathlib import Path

from sa2va_st.demo import DEFAULT_PORT, SIZES, run_demo

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--dir", type=Path, default=None, help="the demo's working directory (default: demo/, demo_smoke/)"
    )
    parser.add_argument("--size", choices=sorted(SIZES), default="full", help="full: make demo; smoke: the tests' run")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("SA2VA_DEMO_PORT", DEFAULT_PORT)),
        help="port of the local hub server",
    )
    args, rest = parser.parse_known_args()
    folder = (args.dir or REPO / ("demo" if args.size == "full" else f"demo_{args.size}")).resolve()
    size = SIZES[args.size]
    status = run_demo(REPO, folder, args.port, rest, size=size)  # no target: snakemake's default, rule all
    if status == 0 and not rest:  # the whole DAG ran: wrap its outputs in Snakemake's report
        status = run_demo(REPO, folder, args.port, ["--report", "results/report.html"], size=size)
        if status == 0:
            print(f"demo: open {folder / 'results' / 'report' / 'index.html'} (or results/report.html)")
    return status


if __name__ == "__main__":
    sys.exit(main())
