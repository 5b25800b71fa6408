"""The demo: the whole DAG on the synthetic world, on a CPU, with the real client code paths.

It generates the world and the tiny random models (CLIP, InternVL, SAM2; once), serves the world through the local hub server, writes `demo/config.yaml`
(the real config with the hub, URLs and manual folders pointed at the world), and runs Snakemake in
`demo/` as its working directory, so the demo's results never mix with a real run's.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from .atomic import atomic_write_text
from .testing.hub import HubServer
from .testing.tiny import save_tiny_preset
from .testing.world import WorldScale, generate_world
from .testing.world.scale import BASE_WORLD

DEFAULT_PORT = 8765  # fixed, so the URLs in the demo config (and Snakemake's params) never change
DEMO_SEED = 0
# A world with 32x the base world's training samples (704 images, 512 clips, 524 temporal queries) and 3x
# its held-out ones: with the base world's few dozen images the tiny model memorises instead of learning to ground.
DEMO_SCALE = WorldScale(train=32, held_out=3)
# Training the tiny preset on two CPU ranks in minutes: upstream's schedule shape (warmup, cosine, AdamW,
# clipping) at a learning rate a ~1 M-parameter model learning from scratch needs, one pass per epoch,
# one tile per image and 3 frames per clip, and the video datasets seen three times a pass: reading a box
# from each of several frames is the slowest skill for the tiny model to learn (measured: with one
# video pass in three the held-out frames were still mostly missed when image grounding had been learned).
# 5 epochs (4,335 steps) take ~9 minutes of the train rule's 10 (measured at 35 samples/s); the fifth one
# lifted the temporal task's held-out R1@0.5 from 0.23 to 0.32 (docs/training.md, "The demo").
DEMO_TRAINING = {
    "repeats": {
        "refcoco": 1,
        "refcoco+": 1,
        "refcocog": 1,
        "mevis": 3,
        "rvos": 3,
        "revos": 3,
        "charades": 1,
        "didemo": 1,
    },
    "processes": 2,
    "num_workers": 0,
    "batch_size": 2,
    "gradient_accumulation": 1,
    "epochs": 5,
    "passes_per_epoch": 1,
    "warmup_epochs": 0.5,
    "lr": 3.0e-3,
    "video_frames": 3,
    "max_expressions": 2,
    "save_steps": 1000,
    "save_total_limit": 2,
    "log_steps": 20,
    "group_window": 4,
    "held_out_samples": 8,
    "check_samples": 16,
}


@dataclass(frozen=True)
class DemoSize:
    """How big a demo run is: the world's scale and what changes in DEMO_TRAINING."""

    scale: WorldScale
    training: dict


FULL = DemoSize(DEMO_SCALE, {})  # `make demo`: the world and training whose results docs/training.md reports
# The test suite's run: the same DAG on the base world, trained for ~1,100 steps (a few minutes), so that
# `make test` checks every stage, the two ranks, rotation and the report in its budget. The base world
# has only 28 temporal queries: seen once a pass, the temporal task got ~200 steps and answered 1 to 4 of
# its 16 training samples depending on the machine's float rounding (measured); three times a pass it
# answers 11. The video datasets are seen once a pass here (three times in FULL): in this short run no
# clip is answered whole either way, and their steps are the costliest.
SMOKE = DemoSize(
    BASE_WORLD,
    {
        "epochs": 30,
        "save_steps": 400,
        "repeats": DEMO_TRAINING["repeats"] | {"mevis": 1, "rvos": 1, "revos": 1, "charades": 3, "didemo": 3},
    },
)
SIZES = {"full": FULL, "smoke": SMOKE}


def demo_config(base: dict, port: int, tiny_clip: str, tiny_vlm: str, tiny_sam2: str, size: DemoSize = FULL) -> dict:
    """The real configuration with every remote pointed at the synthetic world's server."""
    server = f"http://127.0.0.1:{port}"
    config = copy.deepcopy(base)
    config.update(data_root="datasets", download_dir="downloads", work_dir="work")
    config["sa2va_training"].update(endpoint=server, revision="main", local_mirror=None)
    config["clip"].update(
        model="tiny-vit",  # names the feature folder; the architecture comes from the folder's config
        pretrained=tiny_clip,
        batch_size=32,
        precision="fp32",
        shards=2,
        num_workers=1,
        max_failed_fraction=0.0,
    )
    config["model"].update(vlm=tiny_vlm, sam2=tiny_sam2, dtype="fp32", max_image_tiles=1)  # 64 px tiles
    config["model"]["lora"].update(r=16, alpha=32)  # upstream's r 128 is as wide as the tiny LLM
    config["training"].update(DEMO_TRAINING)
    config["training"].update(size.training)
    config["report"] = {"random_weights": True}  # the tiny preset: say so beside every mask number
    config["sources"] = {
        "charades_videos": {
            "kind": "url",
            "urls": [f"{server}/static/charades/Charades_v1_480.zip"],
            "layout": "videos",
            "dest": "temporal/Charades/videos",
        },
        "charades_sta": {
            "kind": "url",
            "urls": [f"{server}/static/charades/charades_sta_{split}.txt" for split in ("train", "test")],
            "layout": "files",
            "dest": "temporal/Charades/annotations",
        },
        "didemo_annotations": {
            "kind": "hf",
            "endpoint": server,
            "repo_id": "synthetic/didemo-annotations",
            "files": ["train_data.json", "val_data.json", "test_data.json"],
            "layout": "files",
            "dest": "temporal/didemo/annotations",
        },
        "didemo_videos": {
            **base["sources"]["didemo_videos"],
            "path": "world/manual/didemo_videos",
        },
        "revos": {**base["sources"]["revos"], "path": "world/manual/ReVOS"},
    }
    return config


def run_demo(
    repo: Path, demo_dir: Path, port: int, snakemake_args: list[str], on_request=None, size: DemoSize = FULL
) -> int:
    """Generate/serve the world and run snakemake in `demo_dir`; returns snakemake's exit status.

    `on_request` receives the hub server's log entry of every request (tests use it). `size`: FULL for
    `make demo`, SMOKE for the test suite. The world folder is the demo's own: a world of another size
    is replaced.
    """
    world = demo_dir / "world"
    generate_world(world, seed=DEMO_SEED, replace=True, scale=size.scale)
    tiny = save_tiny_preset(demo_dir / "models" / "tiny", DEMO_SEED)  # kept when already complete
    tiny_clip, tiny_vlm, tiny_sam2 = tiny["clip"], tiny["vlm"], tiny["sam2"]
    base = yaml.safe_load((repo / "config.yaml").read_text())
    text = yaml.safe_dump(
        demo_config(
            base,
            port,
            tiny_clip=str(tiny_clip.relative_to(demo_dir)),
            tiny_vlm=str(tiny_vlm.relative_to(demo_dir)),
            tiny_sam2=str(tiny_sam2.relative_to(demo_dir)),
            size=size,
        ),
        sort_keys=False,
    )
    config_path = demo_dir / "config.yaml"
    if not config_path.exists() or config_path.read_text() != text:
        atomic_write_text(config_path, text)
    command = [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(repo / "Snakefile"),
        "--directory", str(demo_dir),
        "--profile", str(repo / "workflow" / "profiles" / "demo"),
        *snakemake_args,
    ]  # fmt: skip
    env = os.environ | {"HF_HUB_DISABLE_TELEMETRY": "1"}
    with HubServer(world, port=port, on_request=on_request) as server:
        print(f"demo: synthetic hub at {server.url}; running snakemake {' '.join(snakemake_args)}", flush=True)
        return subprocess.run(command, cwd=repo, env=env).returncode
