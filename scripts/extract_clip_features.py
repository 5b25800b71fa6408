"""CLIP features of one shard of a folder of videos (rule `extract_clip_features`), or merge shard indexes.

extract_clip_features.py --videos DIR --shard I --shards N --fps F --out-dir DIR --index SHARD.parquet
    [--model M --pretrained TAG|FILE|FOLDER --batch-size B --precision fp32|fp16|bf16
     --num-workers W --max-failed-fraction X --device cpu|cuda --backend auto|decord|pyav]
extract_clip_features.py merge --out INDEX.parquet SHARD.parquet [SHARD.parquet ...]
extract_clip_features.py save-tiny-model --out FOLDER [--seed S]   (a tiny random CLIP for demos/tests)
"""

import argparse
import sys
from pathlib import Path

from sa2va_st.cli import run
from sa2va_st.features.clip_model import DEFAULT_MODEL, DEFAULT_PRETRAINED, PRECISIONS, load_clip, save_tiny_clip
from sa2va_st.features.decode import BACKENDS
from sa2va_st.features.pipeline import extract_shard, merge_indexes, write_index
from sa2va_st.features.sharding import list_videos, select_shard


def extract(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", required=True, type=Path, help="folder of video files (<vid>.mp4, ...)")
    parser.add_argument("--shard", required=True, type=int)
    parser.add_argument("--shards", required=True, type=int)
    parser.add_argument("--fps", required=True, type=float)
    parser.add_argument("--out-dir", required=True, type=Path, help="where <vid>.npy go")
    parser.add_argument("--index", required=True, type=Path, help="this shard's index (Parquet)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument(
        "--pretrained", default=DEFAULT_PRETRAINED, help="open_clip tag, checkpoint file or model folder"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", choices=PRECISIONS, default="fp16")
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--max-failed-fraction", type=float, default=0.0)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    args = parser.parse_args(argv)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    videos = select_shard(list_videos(args.videos), args.shard, args.shards)
    clip = load_clip(args.model, args.pretrained, device=device, precision=args.precision)
    rows = extract_shard(
        videos,
        args.out_dir,
        args.fps,
        clip,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        max_failed_fraction=args.max_failed_fraction,
        backend=args.backend,
    )
    write_index(rows, args.index)


def merge(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="extract_clip_features.py merge", description="merge shard indexes")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("shards", nargs="+", type=Path)
    args = parser.parse_args(argv)
    merge_indexes(args.shards, args.out)


def save_tiny_model(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="extract_clip_features.py save-tiny-model", description=save_tiny_clip.__doc__
    )
    parser.add_argument("--out", required=True, type=Path, help="folder to write (pass it as --pretrained)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    save_tiny_clip(args.out, seed=args.seed)


def main() -> None:
    argv = sys.argv[1:]
    commands = {"merge": merge, "save-tiny-model": save_tiny_model}
    if argv and argv[0] in commands:
        commands[argv[0]](argv[1:])
    else:
        extract(argv)


if __name__ == "__main__":
    run(main)
