"""Run the pipeline on the synthetic world (what `make demo` does).

Extra arguments go to snakemake, e.g. `scripts/demo.py -n` for a dry run or
`scripts/demo.py prepare_data` for one target. Without any, it runs the whole DAG (rule all) and then
`snakemake --report results/report.html`.
"""

import argparse
import os
import sys
from pathlib import Path

from sa2va_st.demo import DEFAULT_PORT, run_demo

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=REPO / "demo", help="the demo's working directory (default: demo/)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("SA2VA_DEMO_PORT", DEFAULT_PORT)),
        help="port of the local hub server",
    )
    args, rest = parser.parse_known_args()
    status = run_demo(REPO, args.dir.resolve(), args.port, rest)  # no target: snakemake's default, rule all
    if status == 0 and not rest:  # the whole DAG ran: wrap its outputs in Snakemake's report
        status = run_demo(REPO, args.dir.resolve(), args.port, ["--report", "results/report.html"])
        if status == 0:
            print(f"demo: open {args.dir.resolve() / 'results' / 'report' / 'index.html'} (or results/report.html)")
    return status


if __name__ == "__main__":
    sys.exit(main())
