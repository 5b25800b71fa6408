"""`python -m sa2va_st.synthetic --out DIR --seed N`: write the synthetic world to DIR."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .world import GENERATOR_VERSION, generate_world, world_is_current


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sa2va_st.synthetic",
        description=(
            "Generate the deterministic miniature world in the real upstream formats: a fake "
            "Sa2VA-Training hub folder (RefCOCO/+/g, MeViS split archive, Ref-YouTube-VOS), a DiDeMo "
            "annotation repo, Charades videos with Charades-STA text, and manual ReVOS and DiDeMo "
            "video folders, described by DIR/world.json. The world is built beside DIR and renamed "
            "into place; the same seed gives byte-identical files."
        ),
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to create (its parent must be writable)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--replace",
        action="store_true",
        help="replace DIR if it holds something other than a world of this seed and generator version",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    if world_is_current(args.out, args.seed):
        print(
            f"{args.out} already holds the world of seed {args.seed} "
            f"(generator version {GENERATOR_VERSION}); nothing to do"
        )
        return 0
    started = time.perf_counter()  # for the message only; nothing written depends on it
    try:
        world = generate_world(args.out, args.seed, replace=args.replace)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    size = sum(f["size"] for f in world["files"].values())
    print(
        f"wrote {len(world['files'])} files ({size / 2**20:.1f} MiB) of the seed-{args.seed} world to {args.out} "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
