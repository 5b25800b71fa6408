"""Train the spatial-temporal model (rule `train`), check its answers (rule `train_answers`), debug a run.

train.py run     --config-json JSON --spatial-manifests DIR --temporal-manifests DIR --work-dir DIR
                 --out-dir results/train/RUN --deepspeed-config workflow/deepspeed/zero2.json [--start-over]
                 (one process per rank, under torchrun)
train.py debug   [--configfile config.yaml] [--items 8] [--start-over]
                 one process, no launcher, no DataLoader workers, the first items of each dataset, work dir
                 {work_dir}_debug: the same code as `run`, to step through with pdb
                 (python -m pdb scripts/train.py debug)
train.py answers --config-json JSON --model results/train/RUN/model --spatial-manifests DIR
                 --temporal-manifests DIR --out results/train/RUN/training_answers.json
train.py failure --torchrun-log LOG --log-dir DIR
                 after torchrun failed: which rank died, with what, and its last log lines
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "DS_ACCELERATOR" not in os.environ:  # DeepSpeed picks its accelerator when imported
    import torch

    os.environ["DS_ACCELERATOR"] = "cuda" if torch.cuda.is_available() else "cpu"

from sa2va_st.cli import run as run_cli  # noqa: E402
from sa2va_st.errors import TrainingError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run_command(args: argparse.Namespace) -> None:
    from sa2va_st.training.recipe import RunSpec, run

    run(
        RunSpec(
            config=json.loads(args.config_json),
            spatial_manifests=args.spatial_manifests,
            temporal_manifests=args.temporal_manifests,
            work_dir=args.work_dir,
            out_dir=args.out_dir,
            deepspeed_json=args.deepspeed_config,
            start_over=args.start_over,
        )
    )


def debug_command(args: argparse.Namespace) -> None:
    """The rule's inputs computed from the config file, as the workflow computes them."""
    import yaml

    from sa2va_st import paths
    from sa2va_st.config import validate_config
    from sa2va_st.features.identity import features_label
    from sa2va_st.training.recipe import RunSpec, run

    config = yaml.safe_load(args.configfile.read_text())
    config = validate_config(config, REPO / "workflow" / "schemas" / "config.schema.yaml", str(args.configfile))
    label = features_label(config["clip"]["model"], config["clip"]["pretrained"])
    work_dir = Path(f"{config['work_dir']}_debug")
    run(
        RunSpec(
            config=config,
            spatial_manifests=Path(paths.spatial_manifests_dir()),
            temporal_manifests=Path(paths.temporal_manifests_dir(paths.MANIFESTS, label, config["fps"])),
            work_dir=work_dir,
            out_dir=Path(paths.train_dir(paths.run_name(work_dir))),
            deepspeed_json=REPO / "workflow" / "deepspeed" / f"{config['training']['deepspeed']}.json",
            start_over=args.start_over,
            debug=True,
            debug_items=args.items,
        )
    )


def answers_command(args: argparse.Namespace) -> None:
    from sa2va_st.atomic import atomic_write_json
    from sa2va_st.model.checkpoint import load_exported
    from sa2va_st.training.answers import answer_training_samples, check_items
    from sa2va_st.training.data import training_mix
    from sa2va_st.training.settings import TrainingSettings

    config = json.loads(args.config_json)
    settings = TrainingSettings.from_config(config["training"])
    model = load_exported(args.model)
    mix = training_mix(
        settings,
        spatial=args.spatial_manifests,
        temporal=args.temporal_manifests,
        num_positions=model.config.temporal.num_tokens,
    )
    report = answer_training_samples(model, check_items(mix, settings.check_samples))
    report["model"] = str(args.model)
    atomic_write_json(args.out, report)
    for task, result in report["tasks"].items():
        frames = f" ({result['frames_correct']} of {result['frames_asked']} frames)" if "frames_asked" in result else ""
        print(
            f"{task}: {result['correct']} of {result['asked']} training samples answered correctly{frames}",
            file=sys.stderr,
        )


def failure_command(args: argparse.Namespace) -> None:
    from sa2va_st.training.launch import describe_failure

    print(describe_failure(args.torchrun_log, args.log_dir), file=sys.stderr)
    raise TrainingError("training failed (see above)", file=str(args.torchrun_log))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run")
    p.add_argument("--config-json", required=True, help="the validated config (training, model, clip sections)")
    p.add_argument("--spatial-manifests", required=True, type=Path)
    p.add_argument("--temporal-manifests", required=True, type=Path)
    p.add_argument("--work-dir", required=True, type=Path, help="checkpoints and live metrics")
    p.add_argument("--out-dir", required=True, type=Path, help="results/train/RUN")
    p.add_argument("--deepspeed-config", required=True, type=Path)
    p.add_argument("--start-over", action="store_true", help="remove checkpoints of another config")
    p.set_defaults(func=run_command)

    p = sub.add_parser("debug")
    p.add_argument("--configfile", type=Path, default=Path("config.yaml"))
    p.add_argument("--items", type=int, default=8, help="items of each dataset")
    p.add_argument("--start-over", action="store_true")
    p.set_defaults(func=debug_command)

    p = sub.add_parser("answers")
    p.add_argument("--config-json", required=True)
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--spatial-manifests", required=True, type=Path)
    p.add_argument("--temporal-manifests", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=answers_command)

    p = sub.add_parser("failure")
    p.add_argument("--torchrun-log", required=True, type=Path)
    p.add_argument("--log-dir", required=True, type=Path)
    p.set_defaults(func=failure_command)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    run_cli(main)
