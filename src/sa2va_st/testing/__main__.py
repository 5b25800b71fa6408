"""`python -m sa2va_st.testing {world,serve,tiny}`: the synthetic world, its hub server and the tiny presets."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def world(args: argparse.Namespace) -> int:
    from .world import GENERATOR_VERSION, WorldScale, generate_world, world_is_current

    try:
        scale = WorldScale(args.train_scale, args.held_out_scale)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if world_is_current(args.out, args.seed, scale):
        print(
            f"{args.out} already holds the world of seed {args.seed} and scale {scale.as_dict()} "
            f"(generator version {GENERATOR_VERSION}); nothing to do"
        )
        return 0
    started = time.perf_counter()  # for the message only; nothing written depends on it
    try:
        description = generate_world(args.out, args.seed, replace=args.replace, scale=scale)
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    size = sum(f["size"] for f in description["files"].values())
    print(
        f"wrote {len(description['files'])} files ({size / 2**20:.1f} MiB) of the seed-{args.seed} world to "
        f"{args.out} in {time.perf_counter() - started:.1f} s"
    )
    return 0


def serve(args: argparse.Namespace) -> int:
    from .hub.server import serve_forever

    return serve_forever(args.root, args.host, args.port, args.throttle_bytes_per_s)


def tiny(args: argparse.Namespace) -> int:
    from .tiny import save_tiny_preset

    for name, path in save_tiny_preset(args.out, args.seed).items():
        print(f"{name}: {path}")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m sa2va_st.testing", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)

    p = commands.add_parser(
        "world",
        help="write the synthetic world",
        description="Generate the deterministic miniature world in the real upstream formats (a Sa2VA-Training "
        "hub folder, a DiDeMo annotation repo, Charades videos with Charades-STA text, manual ReVOS and DiDeMo "
        "folders), described by DIR/world.json. Built beside DIR and renamed into place; the same seed gives "
        "byte-identical files.",
    )
    p.add_argument("--out", type=Path, required=True, help="folder to create (its parent must be writable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--replace", action="store_true", help="replace DIR if it holds another world or other files")
    p.add_argument("--train-scale", type=int, default=1, help="training splits hold this many times the base samples")
    p.add_argument("--held-out-scale", type=int, default=1, help="evaluation splits hold this many times theirs")
    p.set_defaults(run=world)

    p = commands.add_parser("serve", help="serve a folder as a local Hugging Face hub (until SIGINT/SIGTERM)")
    p.add_argument("--root", type=Path, required=True, help="folder with hub/{datasets,models}/ and static/")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--throttle-bytes-per-s", type=int, default=None, help="pace response bodies")
    p.set_defaults(run=serve)

    p = commands.add_parser("tiny", help="write the tiny presets: DIR/vlm, DIR/sam2, DIR/clip")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=tiny)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
