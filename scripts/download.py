"""Fetch and verify one archive of the Sa2VA-Training repo (rule `download`)."""

import argparse
from pathlib import Path

from sa2va_st.cli import run
from sa2va_st.data.hub import ArchiveRequest, fetch_archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--archive", required=True, help="repo path of the archive, e.g. video_datas_mevis.zip")
    parser.add_argument("--repo-id", required=True)
    parser.add_argument("--revision", required=True)
    parser.add_argument("--download-dir", required=True, type=Path)
    parser.add_argument("--endpoint", default="", help="hub URL; empty: the client's default or HF_ENDPOINT")
    parser.add_argument("--local-mirror", default="", help="a clone of the repo to verify instead of downloading")
    parser.add_argument("--reserve-bytes", type=int, required=True, help="free disk to keep (config unpack.reserve_gb)")
    parser.add_argument("--receipt", required=True, type=Path)
    args = parser.parse_args()
    request = ArchiveRequest(
        archive=args.archive,
        repo_id=args.repo_id,
        revision=args.revision,
        download_dir=args.download_dir,
        endpoint=args.endpoint or None,
        local_mirror=Path(args.local_mirror) if args.local_mirror else None,
        reserve_bytes=args.reserve_bytes,
    )
    fetch_archive(request, args.receipt)


if __name__ == "__main__":
    run(main)
