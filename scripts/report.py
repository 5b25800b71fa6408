"""Write the report page (rule `report`): results/report/index.html, see sa2va_st.report.page.

report.py --config-json JSON --models trained untrained --out results/report/index.html
          [--train-metrics F] [--training-answers F] [--manifest-report F ...] [--spatial-manifests DIR]
          [--temporal-manifests DIR] [--receipt F ...] [--identity F ...] [--predictions F ...] [--random-weights]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from sa2va_st.cli import run as run_cli

REPO = Path(__file__).resolve().parents[1]
# results/metrics/<model>/predictions/<dataset>_<split>.<shard>-of-<n>.jsonl (sa2va_st.paths.split_predictions)
PREDICTIONS_NAME = re.compile(r"(?P<model>[^/]+)/predictions/(?P<benchmark>.+)\.\d+-of-\d+\.jsonl$")


def predictions_by_split(files: list[Path]) -> dict:
    from sa2va_st import catalog, paths

    found: dict = {}
    for path in sorted(files):
        match = PREDICTIONS_NAME.search(path.as_posix())
        if not match:
            raise SystemExit(f"error: {path}: not a prediction shard file")
        for d in catalog.DATASETS:
            for s in d.eval_splits:
                if match["benchmark"] == paths.benchmark_name(d.name, s.name):
                    found.setdefault(match["model"], {}).setdefault((d.name, s.name), []).append(path)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-json", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--train-metrics", type=Path)
    parser.add_argument("--training-answers", type=Path)
    parser.add_argument("--manifest-report", nargs="*", type=Path, default=[])
    parser.add_argument("--spatial-manifests", type=Path)
    parser.add_argument("--temporal-manifests", type=Path)
    parser.add_argument("--receipt", nargs="*", type=Path, default=[])
    parser.add_argument("--identity", nargs="*", type=Path, default=[])
    parser.add_argument("--predictions", nargs="*", type=Path, default=[])
    parser.add_argument("--submissions", nargs="*", type=Path, default=[], help="archives for server-scored splits")
    parser.add_argument("--random-weights", action="store_true", help="the models have random weights (the demo)")
    args = parser.parse_args()

    from sa2va_st.atomic import atomic_write_text
    from sa2va_st.report.page import ReportInputs, build_report

    inputs = ReportInputs(
        root=Path.cwd(),
        config=json.loads(args.config_json),
        models=args.models,
        train_metrics=args.train_metrics,
        training_answers=args.training_answers,
        manifest_reports=args.manifest_report,
        spatial_manifests=args.spatial_manifests,
        temporal_manifests=args.temporal_manifests,
        receipts=args.receipt,
        feature_identities=args.identity,
        predictions=predictions_by_split(args.predictions),
        submissions=args.submissions,
        random_sam2=args.random_weights,
    )
    atomic_write_text(args.out, build_report(inputs, REPO))


if __name__ == "__main__":
    run_cli(main)
