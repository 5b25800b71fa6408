"""Fetch one archive of a hub dataset repo (all of its split parts), verified against the hub's hashes.

The real `huggingface_hub` client resolves the revision, lists the files with their LFS sha256 and
builds the file URLs and auth headers (it reads `HF_TOKEN` itself; we never touch or print it).
The bytes come through transfer.py, which resumes a killed download with an HTTP Range request
(the client itself restarts from zero). Every file is checked against the published hash, with
one fresh re-download before giving up.

The result of a fetch is a *receipt*: a small JSON file naming the commit and every part with its
size and sha256. Later stages read archives only through receipts, so they never see an unverified
file, and a user's existing git-lfs clone (`local_mirror`) can stand in for the download.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..atomic import atomic_write_json, git_blob_sha1, sha256_file
from ..errors import DownloadError
from .transfer import download_resumable, part_path

log = logging.getLogger(__name__)

REPO_TYPE = "dataset"
SPLIT_PART = re.compile(r"\.z(\d{2,})$")  # zip's split naming: name.z01, name.z02, …, then name.zip last
LFS_POINTER_HEADER = b"version https://git-lfs.github.com/spec/v1"


@dataclass(frozen=True)
class RemoteFile:
    """A file as the hub (or a git clone) describes it at one commit."""

    path: str  # repo-relative, POSIX
    size: int
    git_oid: str  # git blob sha1
    sha256: str | None = None  # LFS files only

    def mismatch(self, local: Path) -> str | None:
        """Why `local` is not this file, or None when it is."""
        size = local.stat().st_size
        if size != self.size:
            return f"size {size} != {self.size} bytes"
        if self.sha256 is not None:
            got = sha256_file(local)
            return None if got == self.sha256 else f"sha256 {got} != {self.sha256}"
        got = git_blob_sha1(local)
        return None if got == self.git_oid else f"git blob sha1 {got} != {self.git_oid}"

    def checksum(self, local: Path) -> str:
        """The sha256 recorded in the receipt (the hub's for LFS files, computed otherwise)."""
        return self.sha256 if self.sha256 is not None else sha256_file(local)


def archive_parts(archive: str, names_in_folder: list[str]) -> list[str]:
    """The repo paths that make up `archive`, in the order they must be concatenated.

    `x.zip` alone is a plain archive; `x.z01, x.z02, …` beside it are its leading parts.
    """
    folder = PurePosixPath(archive).parent
    stem = PurePosixPath(archive).stem
    numbered = []
    for name in names_in_folder:
        path = PurePosixPath(name)
        match = SPLIT_PART.search(path.name)
        if path.parent == folder and match and path.name[: match.start()] == stem:
            numbered.append((int(match.group(1)), name))
    numbered.sort()
    numbers = [n for n, _ in numbered]
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        raise DownloadError(
            f"split archive {archive} has parts {numbers}: a part is missing",
            file=archive,
            fix="check the repo's file list; every part from .z01 up must be present",
        )
    return [name for _, name in numbered] + [archive]


# ----------------------------------------------------------------------------- listing


def list_hub_folder(
    repo_id: str, revision: str, folder: str, endpoint: str | None, repo_type: str = REPO_TYPE
) -> tuple[str, dict[str, RemoteFile]]:
    """Resolve `revision` to a commit and list the files of one folder there (metadata only)."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint)
    info = api.repo_info(repo_id, repo_type=repo_type, revision=revision)
    commit = info.sha
    entries = api.list_repo_tree(repo_id, path_in_repo=folder or None, repo_type=repo_type, revision=commit)
    files = {}
    for entry in entries:
        if hasattr(entry, "blob_id"):
            lfs = getattr(entry, "lfs", None)
            files[entry.path] = RemoteFile(entry.path, entry.size, entry.blob_id, lfs.sha256 if lfs else None)
    return commit, files


def list_git_lfs_clone(clone: Path, revision: str, folder: str) -> tuple[str, dict[str, RemoteFile]]:
    """The same listing read from a git-lfs clone's own history: LFS pointers carry the sha256."""

    def git(*args: str) -> bytes:
        return subprocess.run(["git", "-C", str(clone), *args], check=True, capture_output=True).stdout

    commit = git("rev-parse", "--verify", f"{revision}^{{commit}}").decode().strip()
    files = {}
    for line in git("ls-tree", "-l", commit, "--", f"{folder}/" if folder else ".").decode().splitlines():
        meta, path = line.split("\t", 1)
        _mode, kind, oid, size = meta.split()
        if kind != "blob":
            continue
        blob = git("cat-file", "blob", oid) if int(size) < 1024 else b""
        pointer = parse_lfs_pointer(blob)
        if pointer:
            files[path] = RemoteFile(path, pointer[1], oid, pointer[0])
        else:
            files[path] = RemoteFile(path, int(size), oid)
    return commit, files


def parse_lfs_pointer(data: bytes) -> tuple[str, int] | None:
    """(sha256, size) from a git-lfs pointer file, or None if `data` is not one."""
    if not data.startswith(LFS_POINTER_HEADER):
        return None
    fields = dict(line.split(" ", 1) for line in data.decode().splitlines() if " " in line)
    return fields["oid"].removeprefix("sha256:"), int(fields["size"])


# ----------------------------------------------------------------------------- fetching


@dataclass(frozen=True)
class ArchiveRequest:
    archive: str  # repo path of the archive, e.g. "video_datas_mevis.zip"
    repo_id: str
    revision: str
    download_dir: Path  # where hub downloads land (the client's local_dir for this repo)
    reserve_bytes: int  # keep this much disk free after a download (config unpack.reserve_gb)
    endpoint: str | None = None
    local_mirror: Path | None = None  # an existing clone laid out like the repo: verify, never download


def fetch_archive(request: ArchiveRequest, receipt_path: Path) -> dict:
    """Fetch (or find, in a local mirror) and verify every part of one archive; write its receipt."""
    folder = str(PurePosixPath(request.archive).parent).removeprefix(".")
    commit, remote = _list_remote(request, folder)
    if request.archive not in remote:
        raise DownloadError(
            f"{request.archive} is not in {request.repo_id} at revision {request.revision} ({commit})",
            file=request.archive,
            key="sa2va_training.files",
            fix=f"use a file name that exists in the repo (it has: {', '.join(sorted(remote)) or 'nothing here'})",
        )
    parts = [remote[name] for name in archive_parts(request.archive, list(remote))]
    if request.local_mirror is not None:
        located = [_verify_in_mirror(request.local_mirror, part) for part in parts]
    else:
        _check_free_disk(request, parts)
        located = [
            download_verified(request.repo_id, commit, part, request.download_dir, request.endpoint) for part in parts
        ]
    receipt = {
        "archive": request.archive,
        "repo_id": request.repo_id,
        "revision": request.revision,
        "commit": commit,
        "source": "local_mirror" if request.local_mirror is not None else "hub",
        "parts": [
            {"name": part.path, "path": str(path), "size": part.size, "sha256": part.checksum(path)}
            for part, path in zip(parts, located)
        ],
    }
    atomic_write_json(receipt_path, receipt)
    log.info("verified %s: %d part(s), %d bytes", request.archive, len(parts), sum(p.size for p in parts))
    return receipt


def _list_remote(request: ArchiveRequest, folder: str) -> tuple[str, dict[str, RemoteFile]]:
    try:
        return list_hub_folder(request.repo_id, request.revision, folder, request.endpoint)
    except Exception as hub_error:  # noqa: BLE001 - any failure to reach the hub is handled alike
        if _is_missing_upstream(hub_error):
            raise DownloadError(
                f"{request.repo_id}@{request.revision}: {type(hub_error).__name__}: {_first_line(hub_error)}",
                key="sa2va_training.repo_id / sa2va_training.revision",
                fix="check the repo id and the pinned revision (a branch, tag or commit sha that exists); "
                "for a gated or private repo, export HF_TOKEN with a token that has access",
            ) from hub_error
        mirror = request.local_mirror
        if mirror is not None and (mirror / ".git").exists():
            log.info(
                "hub unreachable (%s); verifying against the git-lfs pointers of %s", _first_line(hub_error), mirror
            )
            return list_git_lfs_clone(mirror, request.revision, folder)
        raise DownloadError(
            f"cannot reach the hub to list {request.repo_id}@{request.revision}: {_first_line(hub_error)}",
            key="sa2va_training.local_mirror" if mirror else "sa2va_training",
            fix="run where the hub is reachable (HF_ENDPOINT, HF_TOKEN for gated repos), "
            "or point sa2va_training.local_mirror at a git-lfs clone of the dataset",
        ) from hub_error


def _is_missing_upstream(error: Exception) -> bool:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    return isinstance(error, (RepositoryNotFoundError, RevisionNotFoundError))


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _verify_in_mirror(mirror: Path, part: RemoteFile) -> Path:
    path = mirror / part.path
    fix = f"cd {mirror} && git lfs pull --include='{part.path}'"
    if not path.is_file():
        raise DownloadError(
            f"{part.path} is missing from the local mirror", file=str(path), key="sa2va_training.local_mirror", fix=fix
        )
    with open(path, "rb") as handle:
        if handle.read(len(LFS_POINTER_HEADER)) == LFS_POINTER_HEADER and part.size > 1024:
            raise DownloadError(
                f"{part.path} in the local mirror is a git-lfs pointer, not the file", file=str(path), fix=fix
            )
    problem = part.mismatch(path)
    if problem:
        raise DownloadError(
            f"{part.path} in the local mirror does not match the hub: {problem}",
            file=str(path),
            key="sa2va_training.local_mirror",
            fix=f"re-fetch it ({fix}) or unset local_mirror to download it",
        )
    return path


def _check_free_disk(request: ArchiveRequest, parts: list[RemoteFile]) -> None:
    request.download_dir.mkdir(parents=True, exist_ok=True)
    needed = 0
    for part in parts:
        local = request.download_dir / part.path
        partial = part_path(local)
        have = local.stat().st_size if local.exists() else partial.stat().st_size if partial.exists() else 0
        needed += max(part.size - have, 0)
    free = shutil.disk_usage(request.download_dir).free
    if needed + request.reserve_bytes > free:
        raise DownloadError(
            f"not enough free disk for {request.archive}: need {needed:,} bytes + {request.reserve_bytes:,} reserve, "
            f"{free:,} free",
            file=str(request.download_dir),
            key="download_dir",
            fix="free some space or point download_dir at a larger disk",
        )


def download_verified(
    repo_id: str, commit: str, part: RemoteFile, download_dir: Path, endpoint: str | None, repo_type: str = REPO_TYPE
) -> Path:
    """Download one hub file (resuming a killed run); on a hash mismatch fetch it once more, then give up."""
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    target = download_dir / part.path
    if target.exists():
        if part.mismatch(target) is None:
            return _relative_if_possible(target)
        target.unlink()
    url = hf_hub_url(repo_id, part.path, repo_type=repo_type, revision=commit, endpoint=endpoint)
    headers = build_hf_headers()  # the client's own headers: HF_TOKEN (never logged) and user agent
    problem = ""
    for attempt in (1, 2):
        download_resumable(url, target, headers=headers, expected_size=part.size, label=part.path)
        problem = part.mismatch(target)
        if problem is None:
            return _relative_if_possible(target)
        log.warning("%s: checksum mismatch on attempt %d (%s); deleting it", part.path, attempt, problem)
        target.unlink()
    raise DownloadError(
        f"{part.path} from {repo_id}@{commit} does not match the hub's checksum after 2 downloads: {problem}",
        file=part.path,
        fix="retry later (a proxy or mirror may be serving a broken copy); the bad file was deleted",
    )


def _relative_if_possible(path: Path) -> Path:
    """Receipts stay valid when the project folder moves: keep paths relative to the working directory."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path
