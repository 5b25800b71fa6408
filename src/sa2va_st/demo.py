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
from pathlib import Path

import yaml

from .atomic import atomic_write_text
from .testing.hub import HubServer
from .testing.tiny import save_tiny_preset
from .testing.world import generate_world

DEFAULT_PORT = 8765  # fixed, so the URLs in the demo config (and Snakemake's params) never change
DEMO_SEED = 0
# Training the tiny preset on two CPU ranks in minutes: upstream's schedule shape (warmup, cosine, AdamW,
# clipping) at a learning rate a ~1 M-parameter model learning from scratch needs, one pass per epoch,
# one tile per image and 4 frames per clip, and a mix that gives the small image datasets more weight than upstream's factors
# (the synthetic world has 44 image items beside 16 clips seen 4-8 times a pass).
DEMO_TRAINING = {
    "repeats": {
        "refcoco": 3,
        "refcoco+": 3,
        "refcocog": 3,
        "mevis": 4,
        "rvos": 2,
        "revos": 4,
        "charades": 2,
        "didemo": 2,
    },
    "processes": 2,
    "num_workers": 0,
    "batch_size": 2,
    "gradient_accumulation": 1,
    "epochs": 50,
    "passes_per_epoch": 1,
    "warmup_epochs": 1,
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


def demo_config(base: dict, port: int, tiny_clip: str, tiny_vlm: str, tiny_sam2: str) -> dict:
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


def run_demo(repo: Path, demo_dir: Path, port: int, snakemake_args: list[str], on_request=None) -> int:
    """Generate/serve the world and run snakemake in `demo_dir`; returns snakemake's exit status.

    `on_request` receives the hub server's log entry of every request (tests use it).
    """
    world = demo_dir / "world"
    generate_world(world, seed=DEMO_SEED)
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
