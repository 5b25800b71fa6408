"""Score a model on the benchmark splits (rules `untrained_model`, `evaluate_shard`, `evaluate_split`).

evaluate.py untrained --config-json JSON --out results/train/RUN/untrained_model
                      the run's starting point (base model + its seed's fresh trainable parts), exported
evaluate.py predict   --model DIR --benchmark DATASET/SPLIT --spatial-manifests DIR --temporal-manifests DIR
                      --video-frames N --batch-size B --shard I --num-shards N --out FILE.jsonl [--device auto]
                      [--sam2 ID_OR_DIR --data-root DIR]
                      one shard's answers, resumable (see sa2va_st.evaluation.predict); with --sam2, image
                      and video answers also get SAM2's masks and the true ones from DIR (cIoU, gIoU; J&F)
evaluate.py score     --benchmark DATASET/SPLIT --out FILE.json PREDICTIONS.jsonl...
                      the split's metrics from its saved answers; no model runs
evaluate.py submit    --benchmark DATASET/SPLIT --out FILE.zip PREDICTIONS.jsonl...
                      a server's split (MeViS valid, Ref-YouTube-VOS valid): the zip of PNG masks it reads
                      (sa2va_st.evaluation.submission); no model runs
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from sa2va_st.cli import run as run_cli  # noqa: E402


def untrained_command(args: argparse.Namespace) -> None:
    from sa2va_st.model import Sa2vaSTConfig, Sa2vaSTModel
    from sa2va_st.model.checkpoint import export

    config = json.loads(args.config_json)
    model = Sa2vaSTModel.from_config(Sa2vaSTConfig.from_pipeline_config(config), seed=config["training"]["seed"])
    export(model.eval(), args.out)


def _benchmark(name: str):
    from sa2va_st.evaluation.benchmarks import select_benchmarks

    (benchmark,) = select_benchmarks([name], ())
    return benchmark


def predict_command(args: argparse.Namespace) -> None:
    from sa2va_st.catalog import IMAGE_GROUNDING, VIDEO_GROUNDING
    from sa2va_st.devices import claim_device
    from sa2va_st.evaluation.benchmarks import open_benchmark
    from sa2va_st.evaluation.masks import ReferenceMasks, ReferenceVideoMasks
    from sa2va_st.evaluation.predict import predict_split
    from sa2va_st.model.checkpoint import load_exported
    from sa2va_st.model.sam2 import load_sam2

    benchmark = _benchmark(args.benchmark)
    with claim_device(args.device) as device:
        model = load_exported(args.model, device=device)
        segmenter = reference = None
        if args.sam2 is not None and benchmark.task in (IMAGE_GROUNDING, VIDEO_GROUNDING):
            if args.data_root is None:
                raise SystemExit("error: --sam2 needs --data-root (the true masks are in the dataset's files)")
            segmenter = load_sam2(args.sam2, revision=args.sam2_revision, device=device)
            if benchmark.task == IMAGE_GROUNDING:
                reference = ReferenceMasks(args.data_root, benchmark.dataset)
            elif benchmark.scored_here:  # a server's split has no masks here: its archive is written instead
                reference = ReferenceVideoMasks(args.data_root, benchmark.dataset, benchmark.split)
        dataset = open_benchmark(
            benchmark,
            spatial=args.spatial_manifests,
            temporal=args.temporal_manifests,
            video_frames=args.video_frames,
            num_positions=model.config.temporal.num_tokens,
        )
        predict_split(
            model,
            dataset,
            args.out,
            shard=args.shard,
            num_shards=args.num_shards,
            batch_size=args.batch_size,
            segmenter=segmenter,
            reference_masks=reference,
        )


def score_command(args: argparse.Namespace) -> None:
    from sa2va_st.atomic import atomic_write_json
    from sa2va_st.evaluation.predict import read_predictions
    from sa2va_st.evaluation.score import score_records

    benchmark = _benchmark(args.benchmark)
    scores = score_records(read_predictions(args.predictions), source=str(args.predictions[0]))
    scores = {"benchmark": benchmark.name} | scores
    atomic_write_json(args.out, scores)
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items() if k != "subsets"}
    print(f"{benchmark.name}: {shown}", file=sys.stderr)


def submit_command(args: argparse.Namespace) -> None:
    from sa2va_st.errors import EvaluationError
    from sa2va_st.evaluation.predict import read_predictions
    from sa2va_st.evaluation.submission import write_submission

    benchmark = _benchmark(args.benchmark)
    if benchmark.scored_here:
        raise EvaluationError(
            f"{benchmark.name} is scored here, not by a server", key="--benchmark", fix="use evaluate.py score"
        )
    records = read_predictions(args.predictions)
    foreign = [r["id"] for r in records if (r.get("dataset"), r.get("split")) != (benchmark.dataset, benchmark.split)]
    if foreign:
        raise EvaluationError(
            f"{len(foreign)} records are not of {benchmark.name} (e.g. {foreign[0]!r})",
            file=str(args.predictions[0]),
            key="dataset/split",
            fix="pass the prediction files of this split only",
        )
    counts = write_submission(records, benchmark.dataset, args.out)
    print(f"{benchmark.name}: {args.out} {counts}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("untrained")
    p.add_argument("--config-json", required=True, help="the validated config (training, model, clip sections)")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=untrained_command)

    p = sub.add_parser("predict")
    p.add_argument("--model", required=True, type=Path, help="an exported model folder")
    p.add_argument("--benchmark", required=True, help="dataset/split")
    p.add_argument("--spatial-manifests", required=True, type=Path)
    p.add_argument("--temporal-manifests", required=True, type=Path)
    p.add_argument("--video-frames", required=True, type=int)
    p.add_argument("--batch-size", required=True, type=int)
    p.add_argument("--shard", required=True, type=int)
    p.add_argument("--num-shards", required=True, type=int)
    p.add_argument("--device", default="auto", help="auto (a free GPU, else the CPU), cpu or cuda:N")
    p.add_argument("--sam2", default=None, help="SAM2 hub id or folder: image answers also get masks")
    p.add_argument("--sam2-revision", default=None)
    p.add_argument("--data-root", default=None, type=Path, help="where the datasets' instances.json are")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=predict_command)

    p = sub.add_parser("score")
    p.add_argument("--benchmark", required=True, help="dataset/split")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("predictions", nargs="+", type=Path)
    p.set_defaults(func=score_command)

    p = sub.add_parser("submit")
    p.add_argument("--benchmark", required=True, help="dataset/split (a split scored by a server)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("predictions", nargs="+", type=Path)
    p.set_defaults(func=submit_command)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    run_cli(main)
