"""CLIP features of one shard of a folder of videos (rule `clip_features_shard`), or merge shard indexes.

    extract_clip_features.py --videos DIR --shard I --shards N --fps F --out-dir DIR --index SHARD.parquet
        --identity DIR/identity.json --model M --pretrained TAG|FILE|FOLDER --batch-size B
        --precision fp32|fp16|bf16 --num-workers W --max-failed-fraction X [--device auto|cpu|cuda:N]
        [--backend auto|decord|pyav]
    extract_clip_features.py merge --out INDEX.parquet SHARD.parquet [SHARD.parquet ...]

Every value of the config's `clip:` section is a required flag: the rule passes them, and the schema
holds their defaults (one place). `--device auto` claims a free GPU of this node, or runs on the CPU
(sa2va_st.devices).
"""

import argparse
import sys
from pathlib import Path

from sa2va_st.cli import run
from sa2va_st.devices import AUTO, claim_device
from sa2va_st.features.clip_model import PRECISIONS, load_clip
from sa2va_st.features.decode import BACKENDS
from sa2va_st.features.identity import FeatureIdentity, check_identity
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
    parser.add_argument("--identity", required=True, type=Path, help="the feature folder's identity.json")
    parser.add_argument("--model", required=True)
    parser.add_argument("--pretrained", required=True, help="open_clip tag, checkpoint file or model folder")
    parser.add_argument("--batch-size", required=True, type=int)
    parser.add_argument("--precision", required=True, choices=PRECISIONS)
    parser.add_argument("--num-workers", required=True, type=int)
    parser.add_argument("--max-failed-fraction", required=True, type=float)
    parser.add_argument("--device", default=AUTO, help="auto: a free GPU of this node, else the CPU")
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    args = parser.parse_args(argv)

    videos = select_shard(list_videos(args.videos), args.shard, args.shards)
    with claim_device(args.device) as device:
        clip = load_clip(args.model, args.pretrained, device=device, precision=args.precision)
        identity = FeatureIdentity.of(args.model, args.pretrained, clip[1], args.fps)
        check_identity(args.out_dir, identity, args.identity)
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


def main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] == "merge":
        merge(argv[1:])
    else:
        extract(argv)


if __name__ == "__main__":
    run(main)
