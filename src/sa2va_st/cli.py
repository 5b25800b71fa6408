"""What every entry point in scripts/ shares: logging to stderr (the rule's log) and clean errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from .atomic import disk_full_error, says_disk_full
from .errors import DiskFullError, Sa2vaError


def run(main: Callable[[], object]) -> None:
    """Call `main`; a Sa2vaError becomes its message on stderr and exit status 1, without a traceback.

    So does a full disk met outside `sa2va_st.atomic` (an error reaching ``main`` that says so,
    `atomic.says_disk_full`): a `DiskFullError` naming the file and its filesystem's free and total bytes
    where the error names the file.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        main()
    except Sa2vaError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
    except Exception as error:
        if not says_disk_full(error):
            raise
        filename = getattr(error, "filename", None)
        if filename:
            full = disk_full_error(filename)
        else:  # a write() or flush(), or a library's error: the file is not known, nor its filesystem's free space
            full = DiskFullError(
                f"the disk is full ({getattr(error, 'strerror', None) or error}); the file being written is not known",
                fix="free space on the disks of data_root, work_dir and results, and run the job again",
            )
        print(f"error: {type(full).__name__}: {full}", file=sys.stderr)
        sys.exit(1)


def add_extract_limit_options(parser) -> None:
    """The archive limits (config key `unpack`) as required options of the scripts that extract archives
    (the rule passes them; their defaults live in the config schema only)."""
    parser.add_argument("--max-members", type=int, required=True)
    parser.add_argument("--max-total-bytes", type=int, required=True)
    parser.add_argument("--max-ratio", type=float, required=True, help="uncompressed/compressed, per member")
    parser.add_argument("--reserve-bytes", type=int, required=True, help="free disk to keep")


def extract_limits(args):
    from .data.archives import ExtractLimits

    return ExtractLimits(
        max_members=args.max_members,
        max_total_bytes=args.max_total_bytes,
        max_ratio=args.max_ratio,
        reserve_bytes=args.reserve_bytes,
    )
