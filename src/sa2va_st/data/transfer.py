"""One resumable HTTP download, shared by hub files and plain-URL sources.

Bytes go to `<target>.part`, which survives a kill; the next run asks for the rest with
`Range: bytes=<have>-` and appends. (huggingface_hub 2.4 writes each attempt to a fresh,
process-unique temporary file, so a killed 13 GB download would start again from zero; that is
why the hub's transfer is done here, with the client's own URLs and auth headers.) The part is
renamed to `target` only when it has the expected size and, where one is known, sha256.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import requests
from tqdm import tqdm

from ..atomic import HASH_CHUNK
from ..errors import DownloadError

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 60


def part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def download_resumable(
    url: str,
    target: Path,
    *,
    headers: dict[str, str] | None = None,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    label: str | None = None,
) -> Path:
    """Fetch `url` into `target`, continuing a `.part` file left by an earlier run.

    Returns `target`. Raises DownloadError when the server fails or the bytes do not match;
    a mismatching part is deleted so that the next attempt starts clean.
    """
    label = label or target.name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = part_path(target)
    have = partial.stat().st_size if partial.exists() else 0
    if expected_size is not None and have > expected_size:
        partial.unlink()  # longer than the file can be: not ours to continue
        have = 0
    digest = hashlib.sha256()
    if have and expected_sha256:
        with open(partial, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
    if expected_size is None or have < expected_size:
        have, digest = _fetch_rest(url, partial, have, digest, headers or {}, expected_size, label)
    if expected_size is not None and have != expected_size:
        raise DownloadError(
            f"{label}: got {have:,} bytes, expected {expected_size:,}",
            file=str(partial),
            fix="run again: the download resumes where it stopped",
        )
    if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
        partial.unlink()
        raise DownloadError(
            f"{label}: sha256 {digest.hexdigest()} != expected {expected_sha256}",
            file=str(target),
            fix="the bad copy was deleted; run again to download it afresh",
        )
    os.replace(partial, target)
    return target


def _fetch_rest(
    url: str, partial: Path, have: int, digest, headers: dict[str, str], expected_size: int | None, label: str
):
    """Append the rest of `url` to `partial`; returns the new length and the running sha256."""
    request_headers = dict(headers)
    if have:
        request_headers["Range"] = f"bytes={have}-"
        log.info("%s: resuming at byte %d", label, have)
    try:
        response = requests.get(url, headers=request_headers, stream=True, timeout=TIMEOUT_S)
    except requests.RequestException as error:
        raise DownloadError(
            f"{label}: cannot connect ({error})", file=url, fix="check the network and run again; it will resume"
        ) from None
    with response:
        if response.status_code == 416 and have:  # nothing after `have`: the part is already whole
            return have, digest
        if response.status_code >= 400:
            raise DownloadError(
                f"{label}: the server answered {response.status_code} {response.reason}",
                file=url,
                fix="set HF_TOKEN for a gated repo"
                if response.status_code in (401, 403)
                else "check the URL or revision",
            )
        if have and response.status_code != 206:  # the server ignored Range: start over
            have, digest = 0, hashlib.sha256()
        mode = "ab" if have else "wb"
        with (
            open(partial, mode) as out,
            tqdm(total=expected_size, initial=have, unit="B", unit_scale=True, desc=label, mininterval=2.0) as progress,
        ):
            try:
                for chunk in response.iter_content(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    progress.update(len(chunk))
                    have += len(chunk)
            except requests.RequestException as error:
                raise DownloadError(
                    f"{label}: connection lost at byte {have:,} ({error})",
                    file=url,
                    fix="run again: it resumes from there",
                ) from None
    return have, digest
