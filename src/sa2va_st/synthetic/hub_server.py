"""A local HTTP server that speaks the part of the Hugging Face Hub API the real client downloads with.

`huggingface_hub` (2.4.0) is pointed at it with `HF_ENDPOINT=<url>` or `endpoint=<url>`, so the demo and
the tests exercise the genuine client code (HEAD/GET `/resolve`, repo info, tree listing, paths-info)
against a plain folder instead of huggingface.co. Only what the client reads is implemented:

    ROOT/hub/datasets/{owner}/{name}/...   dataset repos
    ROOT/hub/models/{owner}/{name}/...     model repos
    ROOT/static/...                        plain files at /static/... (for plain-URL downloads)

Routes (path -> what the client calls it for):

    HEAD|GET /datasets/{repo}/resolve/{rev}/{path}   hf_hub_download (HEAD = metadata, GET = bytes, Range)
    HEAD|GET /{repo}/resolve/{rev}/{path}            same, model repos
    GET  /api/{datasets|models}/{repo}[/revision/{rev}]   dataset_info / model_info / repo_info,
                                                     snapshot_download (sha), resolve_revision
    GET  /api/{datasets|models}/{repo}/tree/{rev}[/{path}]  list_repo_tree / list_repo_files /
                                                     snapshot_download / verify_repo_checksums
    POST /api/{datasets|models}/{repo}/paths-info/{rev}    get_paths_info
    GET  /api/{datasets|models}/{repo}/refs          list_repo_refs
    HEAD|GET /static/{path}                          plain URL downloads

Each repo has exactly one commit: a real git commit object (fixed author and date) over the real git
tree of its files, so its sha is a deterministic function of the paths and contents. LFS-ness comes from
the repo's root `.gitattributes` (last matching `filter=lfs` line wins, as in git); LFS files are
described like the hub does (blob oid = sha1 of the pointer file, `lfs: {oid, size, pointerSize}`,
`ETag` / `X-Linked-Etag` = sha256). No Xet headers are ever sent, so the client never tries Xet even
when `hf_xet` is installed. There are no redirects: `/resolve` serves the bytes itself.

Test hooks, all state on the server object: `token` (401 without `Authorization: Bearer <token>`),
`throttle_bytes_per_s` (small paced chunks, so a client can be killed mid-download),
`corrupt_downloads` (flip bytes of the first n GETs while metadata stays true) and
`interrupt_downloads` (drop the connection of a file's first GET after n body bytes, the only
situation in which this client version sends `Range: bytes=N-`; see the tests).

CLI: `python -m sa2va_st.synthetic.hub_server --root DIR [--host H] [--port P]` prints the URL, logs one
line per request to stderr, and serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import hashlib
import hmac
import json
import logging
import mimetypes
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

log = logging.getLogger(__name__)

REPO_TYPES = {"datasets": "dataset", "models": "model"}  # URL segment -> repo type
DEFAULT_REVISION = "main"
COMMIT_DATE = "2024-01-01T00:00:00.000Z"  # fixed, so the commit sha depends on the files only
COMMIT_TIMESTAMP = 1704067200  # COMMIT_DATE as a unix time, for the git commit object
COMMIT_AUTHOR = "sa2va-st hub_server <hub_server@localhost>"
COMMIT_TITLE = "Snapshot of the served folder"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # an owner or repo name
TREE_PAGE_SIZE = 1000  # the hub's page sizes for /tree (50 when expand=true)
EXPANDED_TREE_PAGE_SIZE = 50
HASH_BLOCK = 1 << 20
UNTHROTTLED_CHUNK = 256 * 1024
CORRUPTION_STRIDE = 64 * 1024  # one flipped byte per 64 KiB served
MAX_REQUEST_BODY = 16 * 1024 * 1024
IDLE_CONNECTION_TIMEOUT_S = 60.0
CONNECTION_ERRORS = (ConnectionError, TimeoutError, socket.timeout)


# ----------------------------------------------------------------------------------------------------------
# Git and LFS hashing


def git_object_sha1(kind: str, payload: bytes) -> str:
    """The sha1 git gives an object of `kind` ("blob", "tree", "commit") with this payload."""
    return hashlib.sha1(f"{kind} {len(payload)}\0".encode() + payload).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file committed in place of an LFS file (what the blob oid hashes)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def sha256_of_file(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def git_blob_sha1_of_file(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha1(f"blob {size}\0".encode())
    with path.open("rb") as stream:
        while block := stream.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class FileDigests:
    """sha256 / git-blob sha1 of files, computed once per (path, mtime, size) so big files are hashed once.

    Concurrent requests for the same file wait for one computation instead of hashing it twice.
    """

    _ALGORITHMS: dict[str, Callable[[Path], str]] = {"sha256": sha256_of_file, "git-sha1": git_blob_sha1_of_file}

    def __init__(self) -> None:
        self._known: dict[tuple[str, int, int, str], str] = {}
        self._in_progress: dict[tuple[str, int, int, str], threading.Lock] = {}
        self._lock = threading.Lock()
        self.computations = 0  # cache misses, for tests and curiosity

    def sha256(self, path: Path, stat: os.stat_result) -> str:
        return self._digest(path, stat, "sha256")

    def git_blob_sha1(self, path: Path, stat: os.stat_result) -> str:
        return self._digest(path, stat, "git-sha1")

    def _digest(self, path: Path, stat: os.stat_result, algorithm: str) -> str:
        key = (str(path), stat.st_mtime_ns, stat.st_size, algorithm)
        with self._lock:
            if key in self._known:
                return self._known[key]
            key_lock = self._in_progress.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._known:
                    return self._known[key]
            value = self._ALGORITHMS[algorithm](path)
            with self._lock:
                self._known[key] = value
                self._in_progress.pop(key, None)
                self.computations += 1
        return value


# ----------------------------------------------------------------------------------------------------------
# A repo folder seen as one git commit


@dataclass(frozen=True)
class LfsRule:
    pattern: str
    is_lfs: bool


def parse_gitattributes(text: str) -> list[LfsRule]:
    """The lines of a `.gitattributes` that set or unset the lfs filter, in file order."""
    rules = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        pattern, attributes = fields[0], fields[1:]
        if "filter=lfs" in attributes:
            rules.append(LfsRule(pattern, True))
        elif "-filter" in attributes or "!filter" in attributes:
            rules.append(LfsRule(pattern, False))
    return rules


def gitattributes_pattern_matches(pattern: str, path: str) -> bool:
    """Git's rule: a pattern without a slash matches the basename at any depth, else the whole path
    (relative to the repo root); a leading `**/` also matches at the root."""
    if "/" not in pattern:
        return fnmatch.fnmatchcase(path.rsplit("/", 1)[-1], pattern)
    pattern = pattern.lstrip("/")
    if pattern.startswith("**/") and fnmatch.fnmatchcase(path, pattern[3:]):
        return True
    return fnmatch.fnmatchcase(path, pattern)


def is_lfs_path(rules: list[LfsRule], path: str) -> bool:
    """Whether git-lfs would store `path`; later lines override earlier ones, as in git."""
    verdict = False
    for rule in rules:
        if gitattributes_pattern_matches(rule.pattern, path):
            verdict = rule.is_lfs
    return verdict


@dataclass(frozen=True)
class HubFile:
    """One file of a repo, described the way the hub describes it."""

    path: str  # repo-relative, POSIX
    disk_path: Path
    size: int
    blob_oid: str  # git blob sha1 of what git stores: the content, or the LFS pointer
    lfs_sha256: str | None = None
    lfs_pointer_size: int | None = None

    @property
    def etag(self) -> str:
        """The hub's ETag: sha256 for LFS files, git blob sha1 otherwise."""
        return self.lfs_sha256 if self.lfs_sha256 is not None else self.blob_oid


@dataclass(frozen=True)
class RepoSnapshot:
    """A repo folder as the single commit the server pretends it is."""

    repo_type: str  # "dataset" | "model"
    repo_id: str
    files: dict[str, HubFile]
    folder_oids: dict[str, str]  # repo-relative folder path -> git tree sha1 ("" is the root)
    commit_sha: str

    def is_folder(self, path: str) -> bool:
        return path in self.folder_oids

    def children(self, folder: str) -> list[str]:
        """Paths of the files and folders directly inside `folder`, sorted."""
        prefix = f"{folder}/" if folder else ""
        names = [p for p in [*self.files, *self.folder_oids] if p and p.startswith(prefix)]
        return sorted(p for p in names if "/" not in p[len(prefix) :])

    def descendants(self, folder: str) -> list[str]:
        """Paths of all files and folders below `folder`, sorted."""
        prefix = f"{folder}/" if folder else ""
        return sorted(p for p in [*self.files, *self.folder_oids] if p and p.startswith(prefix))


def walk_repo_files(repo_dir: Path) -> list[tuple[str, Path]]:
    """(repo path, disk path) of every file in the folder, sorted, skipping `.git` like the hub would."""
    found = []
    for current, folders, names in os.walk(repo_dir):
        folders[:] = [f for f in folders if f != ".git"]
        for name in names:
            disk_path = Path(current) / name
            if disk_path.is_file():
                found.append((disk_path.relative_to(repo_dir).as_posix(), disk_path))
    return sorted(found)


def describe_file(path: str, disk_path: Path, lfs: bool, digests: FileDigests) -> HubFile:
    stat = disk_path.stat()
    if not lfs:
        return HubFile(path, disk_path, stat.st_size, digests.git_blob_sha1(disk_path, stat))
    sha256 = digests.sha256(disk_path, stat)
    pointer = lfs_pointer(sha256, stat.st_size)
    return HubFile(path, disk_path, stat.st_size, git_object_sha1("blob", pointer), sha256, len(pointer))


def git_tree_oids(files: dict[str, HubFile]) -> dict[str, str]:
    """Git tree sha1 of every folder that holds files ("" = root), computed bottom-up like `git write-tree`."""
    folders: dict[str, dict[str, tuple[bytes, str]]] = {"": {}}  # folder -> name -> (mode, oid)
    for path in files:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folders.setdefault("/".join(parts[:depth]), {})
    for path, hub_file in files.items():
        parent, _, name = path.rpartition("/")
        folders[parent][name] = (b"100644", hub_file.blob_oid)
    oids: dict[str, str] = {}
    for folder in sorted(folders, key=lambda f: f.count("/") if f else -1, reverse=True):
        oids[folder] = git_object_sha1("tree", encode_tree(folders[folder]))
        if folder:
            parent, _, name = folder.rpartition("/")
            folders[parent][name] = (b"40000", oids[folder])
    return oids


def encode_tree(entries: dict[str, tuple[bytes, str]]) -> bytes:
    """A git tree payload; git sorts entries by name, folders compared as if they ended with '/'."""

    def sort_key(name: str) -> bytes:
        mode, _ = entries[name]
        return name.encode() + (b"/" if mode == b"40000" else b"")

    return b"".join(
        entries[name][0] + b" " + name.encode() + b"\0" + bytes.fromhex(entries[name][1])
        for name in sorted(entries, key=sort_key)
    )


def commit_sha_for_tree(tree_oid: str) -> str:
    """A real git commit object over the tree, with fixed author, date and message."""
    signature = f"{COMMIT_AUTHOR} {COMMIT_TIMESTAMP} +0000"
    payload = f"tree {tree_oid}\nauthor {signature}\ncommitter {signature}\n\n{COMMIT_TITLE}\n"
    return git_object_sha1("commit", payload.encode())


def snapshot_repo(repo_dir: Path, repo_type: str, repo_id: str, digests: FileDigests) -> RepoSnapshot:
    """Describe the folder as it is now (cheap after the first call: hashes come from `digests`)."""
    attributes = repo_dir / ".gitattributes"
    rules = parse_gitattributes(attributes.read_text(errors="replace")) if attributes.is_file() else []
    files = {
        path: describe_file(path, disk_path, is_lfs_path(rules, path), digests)
        for path, disk_path in walk_repo_files(repo_dir)
    }
    folder_oids = git_tree_oids(files)
    return RepoSnapshot(repo_type, repo_id, files, folder_oids, commit_sha_for_tree(folder_oids[""]))


# ----------------------------------------------------------------------------------------------------------
# The hub's JSON shapes


def last_commit_json(snapshot: RepoSnapshot) -> dict[str, str]:
    return {"id": snapshot.commit_sha, "title": COMMIT_TITLE, "date": COMMIT_DATE}


def tree_entry_json(snapshot: RepoSnapshot, path: str, expand: bool) -> dict[str, Any]:
    """One entry of /tree and /paths-info (parsed by the client into RepoFile / RepoFolder)."""
    if snapshot.is_folder(path):
        entry: dict[str, Any] = {"type": "directory", "oid": snapshot.folder_oids[path], "size": 0, "path": path}
    else:
        hub_file = snapshot.files[path]
        entry = {"type": "file", "oid": hub_file.blob_oid, "size": hub_file.size, "path": path}
        if hub_file.lfs_sha256 is not None:
            entry["lfs"] = {"oid": hub_file.lfs_sha256, "size": hub_file.size, "pointerSize": hub_file.lfs_pointer_size}
    if expand:
        entry["lastCommit"] = last_commit_json(snapshot)
    return entry


def sibling_json(hub_file: HubFile, with_blobs: bool) -> dict[str, Any]:
    """One `siblings` item of the repo info; sizes and hashes only when asked (`?blobs=true`)."""
    sibling: dict[str, Any] = {"rfilename": hub_file.path}
    if with_blobs:
        sibling.update(blobId=hub_file.blob_oid, size=hub_file.size)
        if hub_file.lfs_sha256 is not None:
            sibling["lfs"] = {
                "sha256": hub_file.lfs_sha256,
                "size": hub_file.size,
                "pointerSize": hub_file.lfs_pointer_size,
            }
    return sibling


def repo_info_json(snapshot: RepoSnapshot, with_blobs: bool, expand: list[str], gated: bool) -> dict[str, Any]:
    """The body of /api/{models|datasets}/{repo}[/revision/{rev}] (DatasetInfo / ModelInfo)."""
    owner = snapshot.repo_id.split("/")[0]
    info: dict[str, Any] = {
        "_id": hashlib.sha1(f"{snapshot.repo_type}/{snapshot.repo_id}".encode()).hexdigest()[:24],
        "id": snapshot.repo_id,
        "author": owner,
        "sha": snapshot.commit_sha,
        "lastModified": COMMIT_DATE,
        "createdAt": COMMIT_DATE,
        "private": False,
        "gated": "manual" if gated else False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "usedStorage": sum(f.size for f in snapshot.files.values()),
        "siblings": [sibling_json(f, with_blobs) for f in snapshot.files.values()],
    }
    if snapshot.repo_type == "model":
        info["modelId"] = snapshot.repo_id
    if expand:  # like the hub: only the requested properties (plus the ids)
        info = {key: value for key, value in info.items() if key in {"_id", "id", *expand}}
    return info


def refs_json(snapshot: RepoSnapshot, include_prs: bool) -> dict[str, Any]:
    main_branch = {
        "name": DEFAULT_REVISION,
        "ref": f"refs/heads/{DEFAULT_REVISION}",
        "targetCommit": snapshot.commit_sha,
    }
    refs: dict[str, Any] = {
        "branches": [main_branch],
        "converts": [],
        "tags": [],
    }
    if include_prs:
        refs["pullRequests"] = []
    return refs


# ----------------------------------------------------------------------------------------------------------
# Responses


@dataclass(frozen=True)
class FileSlice:
    """A byte range of a file on disk to send as a body, with the test faults to apply to it."""

    disk_path: Path
    start: int
    length: int
    corrupt: bool = False
    cut_after: int | None = None  # drop the connection after this many body bytes


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | FileSlice = b""

    @property
    def content_length(self) -> int:
        return self.body.length if isinstance(self.body, FileSlice) else len(self.body)


class HubError(Exception):
    """An error response the hub would send; `code` becomes `X-Error-Code`, which the client maps to
    RepositoryNotFoundError / GatedRepoError / RevisionNotFoundError / EntryNotFoundError."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}

    def response(self) -> Response:
        headers = {"X-Error-Message": header_safe(self.message), **self.headers}
        if self.code is not None:
            headers["X-Error-Code"] = self.code
        return json_response({"error": self.message}, self.status, headers)


def header_safe(text: str) -> str:
    """Printable ASCII only: error messages quote request input, which must not break the header block."""
    return "".join(char if " " <= char <= "~" else "?" for char in text)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload).encode()
    return Response(status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body)


def not_found(what: str) -> HubError:
    return HubError(404, f"{what} not found")


class RangeNotSatisfiable(Exception):
    pass


def parse_byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `bytes=` range, or None to send the whole file.

    Malformed and multi-range headers are ignored (a full 200 is a valid answer to them); a range that
    starts past the end raises RangeNotSatisfiable (416).
    """
    if not header or not header.strip().startswith("bytes=") or "," in header:
        return None
    first_text, dash, last_text = (part.strip() for part in header.strip()[len("bytes=") :].partition("-"))
    if not dash:
        return None
    if not first_text:  # suffix range: the last N bytes
        if not last_text.isdigit():
            return None
        if int(last_text) == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - int(last_text)), size - 1
    if not first_text.isdigit() or (last_text and not last_text.isdigit()):
        return None
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None
    if first >= size:
        raise RangeNotSatisfiable
    return first, min(last, size - 1)


def guess_content_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def file_response(
    method: str,
    disk_path: Path,
    size: int,
    range_header: str | None,
    headers: dict[str, str],
    corrupt: bool,
    cut_after: int | None,
) -> Response:
    """200 or 206 (or 416) for a file, honouring a single Range."""
    headers = {"Accept-Ranges": "bytes", "Content-Type": guess_content_type(disk_path.name), **headers}
    try:
        byte_range = parse_byte_range(range_header, size)
    except RangeNotSatisfiable:
        return Response(416, {**headers, "Content-Range": f"bytes */{size}"})
    first, last = byte_range if byte_range is not None else (0, size - 1)
    body = FileSlice(disk_path, first, last - first + 1, corrupt and method == "GET", cut_after)
    if byte_range is None:
        return Response(200, headers, body)
    return Response(206, {**headers, "Content-Range": f"bytes {first}-{last}/{size}"}, body)


# ----------------------------------------------------------------------------------------------------------
# Routing


@dataclass(frozen=True)
class Request:
    method: str
    segments: list[str]  # URL path split on '/', each percent-decoded (so %2F stays inside a segment)
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    raw_path: str  # as received, for pagination links

    def flag(self, name: str) -> bool:
        return self.query.get(name, [""])[-1].lower() in {"1", "true"}


def split_url_path(raw_path: str) -> list[str]:
    return [unquote(segment) for segment in raw_path.split("/")[1:]]


def safe_relative_path(parts: list[str]) -> str | None:
    """Join path segments, or None if any would escape the folder or is empty."""
    if not parts or any(part in {"", ".", ".."} or "/" in part or "\\" in part or "\0" in part for part in parts):
        return None
    return "/".join(parts)


def normalize_repo_path(path: str) -> str:
    return "/".join(part for part in path.split("/") if part)


class HubApp:
    """Maps one request to one Response (status, headers, body); knows nothing about sockets."""

    def __init__(self, server: HubServer) -> None:
        self.server = server

    def respond(self, request: Request) -> Response:
        try:
            return self._route(request)
        except HubError as error:
            return error.response()

    def _route(self, request: Request) -> Response:
        segments = request.segments
        if segments[:1] == ["static"]:
            return self._static(request, segments[1:])
        self.server.check_authorization(request.headers.get("authorization"))
        if segments[:1] == ["api"] and len(segments) >= 4:
            return self._api(request, segments[1], segments[2:4], segments[4:])
        if segments[:1] == ["datasets"] and len(segments) >= 6 and segments[3] == "resolve":
            return self._resolve(request, "datasets", segments[1:3], segments[4], segments[5:])
        if len(segments) >= 5 and segments[2] == "resolve":
            return self._resolve(request, "models", segments[0:2], segments[3], segments[4:])
        raise not_found("Route")

    # --- repos and revisions

    def _snapshot(self, type_segment: str, owner_and_name: list[str]) -> RepoSnapshot:
        repo_id = "/".join(owner_and_name)
        repo_dir = self.server.root / "hub" / type_segment / owner_and_name[0] / owner_and_name[1]
        names_ok = all(SAFE_NAME.match(name) for name in owner_and_name)
        if type_segment not in REPO_TYPES or not names_ok or not repo_dir.is_dir():
            raise HubError(404, "Repository not found", "RepoNotFound")
        return snapshot_repo(repo_dir, REPO_TYPES[type_segment], repo_id, self.server.digests)

    @staticmethod
    def _check_revision(snapshot: RepoSnapshot, revision: str) -> None:
        if revision not in {DEFAULT_REVISION, snapshot.commit_sha}:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    @staticmethod
    def _require_method(request: Request, *allowed: str) -> None:
        if request.method not in allowed:
            raise HubError(405, f"Method {request.method} not allowed", headers={"Allow": ", ".join(allowed)})

    # --- /resolve

    def _resolve(
        self, request: Request, type_segment: str, owner_and_name: list[str], revision: str, path_parts: list[str]
    ) -> Response:
        self._require_method(request, "GET", "HEAD")
        snapshot = self._snapshot(type_segment, owner_and_name)
        self._check_revision(snapshot, revision)
        commit_header = {"X-Repo-Commit": snapshot.commit_sha}
        path = safe_relative_path(path_parts)
        hub_file = snapshot.files.get(path) if path is not None else None
        if hub_file is None:  # X-Repo-Commit lets the client cache the file's absence (.no_exist)
            raise HubError(404, "Entry not found", "EntryNotFound", commit_header)
        headers = {**commit_header, "ETag": f'"{hub_file.etag}"'}
        if hub_file.lfs_sha256 is not None:  # what the hub sends for LFS files, before its CDN redirect
            headers.update({"X-Linked-Etag": f'"{hub_file.lfs_sha256}"', "X-Linked-Size": str(hub_file.size)})
        return self._file(request, hub_file.path, hub_file.disk_path, hub_file.size, headers)

    def _file(self, request: Request, fault_key: str, disk_path: Path, size: int, headers: dict[str, str]) -> Response:
        is_get = request.method == "GET"
        corrupt = is_get and self.server.take_corruption(fault_key)
        cut_after = self.server.take_interruption(fault_key) if is_get else None
        return file_response(request.method, disk_path, size, request.headers.get("range"), headers, corrupt, cut_after)

    # --- /static

    def _static(self, request: Request, path_parts: list[str]) -> Response:
        self._require_method(request, "GET", "HEAD")
        path = safe_relative_path(path_parts)
        static_root = (self.server.root / "static").resolve()
        disk_path = (static_root / path).resolve() if path is not None else None
        if disk_path is None or not disk_path.is_relative_to(static_root) or not disk_path.is_file():
            raise not_found("File")
        stat = disk_path.stat()
        etag = self.server.digests.sha256(disk_path, stat)
        return self._file(request, path, disk_path, stat.st_size, {"ETag": f'"{etag}"'})

    # --- /api

    def _api(self, request: Request, type_segment: str, owner_and_name: list[str], rest: list[str]) -> Response:
        snapshot = self._snapshot(type_segment, owner_and_name)
        if not rest:
            return self._repo_info(request, snapshot, DEFAULT_REVISION)
        if rest[0] == "revision" and len(rest) == 2:
            return self._repo_info(request, snapshot, rest[1])
        if rest[0] == "tree" and len(rest) >= 2:
            return self._tree(request, snapshot, rest[1], "/".join(rest[2:]))
        if rest[0] == "paths-info" and len(rest) == 2:
            return self._paths_info(request, snapshot, rest[1])
        if rest == ["refs"]:
            self._require_method(request, "GET", "HEAD")
            return json_response(refs_json(snapshot, request.flag("include_prs")))
        raise not_found("Route")

    def _repo_info(self, request: Request, snapshot: RepoSnapshot, revision: str) -> Response:
        self._require_method(request, "GET", "HEAD")
        self._check_revision(snapshot, revision)
        expand = request.query.get("expand", []) + request.query.get("expand[]", [])
        gated = self.server.token is not None
        return json_response(repo_info_json(snapshot, request.flag("blobs"), expand, gated))

    def _tree(self, request: Request, snapshot: RepoSnapshot, revision: str, folder: str) -> Response:
        self._require_method(request, "GET", "HEAD")
        self._check_revision(snapshot, revision)
        folder = normalize_repo_path(folder)
        if folder and not snapshot.is_folder(folder):
            raise HubError(404, f"{folder} does not exist on {revision}", "EntryNotFound")
        expand = request.flag("expand")
        paths = snapshot.descendants(folder) if request.flag("recursive") else snapshot.children(folder)
        page_size = self.server.expanded_tree_page_size if expand else self.server.tree_page_size
        offset = decode_cursor(request.query.get("cursor", [""])[-1])
        page = [tree_entry_json(snapshot, path, expand) for path in paths[offset : offset + page_size]]
        headers = {}
        if offset + page_size < len(paths):  # GitHub-style Link header, followed by the client's paginate()
            headers["Link"] = f'<{next_page_url(request, offset + page_size)}>; rel="next"'
        return json_response(page, headers=headers)

    def _paths_info(self, request: Request, snapshot: RepoSnapshot, revision: str) -> Response:
        self._require_method(request, "POST")
        self._check_revision(snapshot, revision)
        paths, expand = parse_paths_info_body(request)
        wanted = dict.fromkeys(normalize_repo_path(p) for p in paths)  # dedupe, keep order
        found = [p for p in wanted if p and (p in snapshot.files or snapshot.is_folder(p))]
        return json_response([tree_entry_json(snapshot, path, expand) for path in found])


def parse_paths_info_body(request: Request) -> tuple[list[str], bool]:
    """The client posts a form (`paths=a&paths=b&expand=false`); JSON bodies are accepted too."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/json"):
            data = json.loads(request.body or b"{}")
            paths, expand = data.get("paths", []), bool(data.get("expand", False))
        else:
            form = parse_qs(request.body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), form.get("expand", ["false"])[-1].lower() in {"1", "true"}
    except (ValueError, AttributeError) as error:
        raise HubError(400, f"Invalid paths-info body: {error}") from error
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise HubError(400, "`paths` must be a list of strings")
    return paths, expand


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def decode_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        return max(0, int(base64.urlsafe_b64decode(cursor.encode()).decode()))
    except ValueError as error:
        raise HubError(400, "Invalid cursor") from error


def next_page_url(request: Request, offset: int) -> str:
    """Absolute URL of the next /tree page, on whatever host name the client used to reach us."""
    query = {key: values for key, values in request.query.items() if key != "cursor"}
    query["cursor"] = [encode_cursor(offset)]
    host = request.headers.get("host", "127.0.0.1")
    return f"http://{host}{urlsplit(request.raw_path).path}?{urlencode(query, doseq=True)}"


# ----------------------------------------------------------------------------------------------------------
# HTTP plumbing


class BodyPacer:
    """Sleeps between chunks so the body goes out at `bytes_per_s`; wakes up early when the server stops."""

    def __init__(self, bytes_per_s: int | None, stopping: threading.Event) -> None:
        self.bytes_per_s = bytes_per_s
        self.stopping = stopping
        self.started = time.monotonic()

    @property
    def chunk_size(self) -> int:
        if not self.bytes_per_s:
            return UNTHROTTLED_CHUNK
        return max(512, min(16 * 1024, self.bytes_per_s // 50))  # ~50 writes per second

    def wait(self, bytes_sent: int) -> None:
        if self.bytes_per_s:
            due = self.started + bytes_sent / self.bytes_per_s
            self.stopping.wait(max(0.0, due - time.monotonic()))


def corrupt_chunk(chunk: bytes, chunk_offset: int) -> bytes:
    """Flip one byte every CORRUPTION_STRIDE bytes of the body (offsets relative to the body start)."""
    flipped = bytearray(chunk)
    first = (-chunk_offset) % CORRUPTION_STRIDE
    for index in range(first, len(flipped), CORRUPTION_STRIDE):
        flipped[index] ^= 0xFF
    return bytes(flipped)


def body_chunks(body: bytes | FileSlice, chunk_size: int) -> Iterator[bytes]:
    """The body in chunks, with the slice's corruption applied (its length never changes)."""
    if isinstance(body, bytes):
        for start in range(0, len(body), chunk_size):
            yield body[start : start + chunk_size]
        return
    with body.disk_path.open("rb") as stream:
        stream.seek(body.start)
        sent = 0
        while sent < body.length:
            chunk = stream.read(min(chunk_size, body.length - sent))
            if not chunk:  # the file shrank under us: the client will see a short body
                return
            yield corrupt_chunk(chunk, sent) if body.corrupt else chunk
            sent += len(chunk)


class HubRequestHandler(BaseHTTPRequestHandler):
    """Turns sockets into Requests for HubApp and writes its Responses back (keep-alive, HTTP/1.1)."""

    protocol_version = "HTTP/1.1"  # keep-alive: the client pools connections
    timeout = IDLE_CONNECTION_TIMEOUT_S
    server: HubHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.hub.track_connection(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        except CONNECTION_ERRORS:
            pass
        finally:
            self.server.hub.track_connection(self.connection, open_=False)

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the hub's own request log replaces http.server's stderr lines

    def _serve(self) -> None:
        hub = self.server.hub
        url = urlsplit(self.path)
        entry = hub.open_log_entry(
            method=self.command,
            path=unquote(url.path),
            query=parse_qs(url.query, keep_blank_values=True),
            range_header=self.headers.get("Range"),
            authorization=self.headers.get("Authorization"),
        )
        try:
            request = self._read_request(url.path, url.query)
            response = hub.app.respond(request) if request is not None else HubError(413, "Body too large").response()
        except Exception:  # a bug must not kill the connection thread silently
            log.exception("hub_server failed on %s %s", self.command, self.path)
            self.close_connection = True  # the request body may not have been read: don't reuse the stream
            response = HubError(500, "Internal error of the local hub server").response()
        try:
            self._write(response, entry)
        except CONNECTION_ERRORS:
            self.close_connection = True  # the client went away mid-response: nothing to report
            hub.update_log_entry(entry, aborted=True)
        finally:
            hub.close_log_entry(entry)

    def _read_request(self, path: str, query: str) -> Request | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BODY:
            self.close_connection = True
            return None
        body = self.rfile.read(length) if length else b""
        return Request(
            method=self.command,
            segments=split_url_path(path),
            query=parse_qs(query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            raw_path=self.path,
        )

    def _write(self, response: Response, entry: dict[str, Any]) -> None:
        hub = self.server.hub
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(response.content_length))
        self.end_headers()
        hub.update_log_entry(entry, status=response.status)
        if self.command == "HEAD":
            return
        pacer = BodyPacer(hub.throttle_bytes_per_s, hub.stopping)
        cut_after = response.body.cut_after if isinstance(response.body, FileSlice) else None
        sent = 0
        for chunk in body_chunks(response.body, pacer.chunk_size):
            if cut_after is not None and sent + len(chunk) >= cut_after:
                self._send_then_drop(chunk[: cut_after - sent], sent, entry)
                return
            if hub.stopping.is_set():
                self._send_then_drop(b"", sent, entry)
                return
            self.wfile.write(chunk)
            sent += len(chunk)
            hub.update_log_entry(entry, bytes_sent=sent)
            pacer.wait(sent)

    def _send_then_drop(self, last_bytes: bytes, sent: int, entry: dict[str, Any]) -> None:
        """End the response early, as a broken network would: the client sees a short body."""
        if last_bytes:
            self.wfile.write(last_bytes)
        self.close_connection = True
        self.server.hub.update_log_entry(entry, bytes_sent=sent + len(last_bytes), aborted=True)


class HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], hub: HubServer) -> None:
        self.hub = hub
        super().__init__(address, HubRequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (killed downloads, closed pools) are normal here: stay quiet about them."""
        if isinstance(sys.exc_info()[1], CONNECTION_ERRORS):
            return
        super().handle_error(request, client_address)


# ----------------------------------------------------------------------------------------------------------
# The server object


class HubServer:
    """A Hugging Face Hub look-alike over a local folder, running in a daemon thread.

    Use as a context manager (`with HubServer(root) as hub: ... hub.url ...`) or start()/stop().
    `requests` is the request log (copies; entries appear when a request starts and are updated as
    its body goes out). Mutable settings, read per request: `throttle_bytes_per_s`, `tree_page_size`,
    `expanded_tree_page_size`.
    """

    def __init__(
        self,
        root: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        throttle_bytes_per_s: int | None = None,
        corrupt_downloads: dict[str, int] | None = None,
        interrupt_downloads: dict[str, int] | None = None,
        on_request: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """`corrupt_downloads`: {repo-relative path or path under static/: n} -> the first n GETs of that file
        have bytes flipped (same length). `interrupt_downloads`: {path: n_bytes} -> the first GET of that file
        is cut after n_bytes of body and its connection dropped. `on_request` is called with each finished
        log entry (the CLI prints them)."""
        self.root = Path(root).resolve()
        self.host, self.port = host, port
        self.token = token
        self.throttle_bytes_per_s = throttle_bytes_per_s
        self.tree_page_size = TREE_PAGE_SIZE
        self.expanded_tree_page_size = EXPANDED_TREE_PAGE_SIZE
        self.on_request = on_request
        self.digests = FileDigests()
        self.app = HubApp(self)
        self.stopping = threading.Event()
        self._corruptions_left = dict(corrupt_downloads or {})
        self._interruptions_left = dict(interrupt_downloads or {})
        self._log: list[dict[str, Any]] = []
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._http: HubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("HubServer is not started")
        host, port = self._http.server_address[:2]
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    def start(self) -> HubServer:
        if self._http is not None:
            return self
        self.stopping.clear()
        self._http = HubHTTPServer((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.1}, name="hub-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._http is None:
            return
        self.stopping.set()  # throttled bodies stop sleeping and end
        self._http.shutdown()
        self._http.server_close()
        self._close_open_connections()  # idle keep-alive threads would otherwise linger
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http, self._thread = None, None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def track_connection(self, connection: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def _close_open_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # --- authorization

    def check_authorization(self, header: str | None) -> None:
        """Raise the hub's 401 unless the server needs no token or `header` is `Bearer <token>`."""
        if self.token is None:
            return
        if not header:
            raise HubError(
                401,
                "Access to this repo is restricted. You must have access to it and be authenticated to access it."
                " Please log in.",
                "GatedRepo",
            )
        if not self._authorization_matches(header):
            raise HubError(401, "Invalid credentials in Authorization header")

    def _authorization_matches(self, header: str | None) -> bool | None:
        if self.token is None:
            return None
        scheme, _, credentials = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self.token.encode())

    # --- test faults

    def take_corruption(self, key: str) -> bool:
        """Whether this GET of `key` (a repo-relative or static path) must be corrupted; uses one of its n."""
        with self._lock:
            remaining = self._corruptions_left.get(key, 0)
            if remaining <= 0:
                return False
            self._corruptions_left[key] = remaining - 1
            return True

    def take_interruption(self, key: str) -> int | None:
        """Body bytes after which this GET of `key` must be cut; only the first GET of a path is."""
        with self._lock:
            return self._interruptions_left.pop(key, None)

    # --- request log

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._log)

    @property
    def hash_computations(self) -> int:
        """How many file digests were computed (the others came from the (path, mtime, size) cache)."""
        return self.digests.computations

    def clear_requests(self) -> None:
        with self._lock:
            self._log.clear()

    def open_log_entry(
        self, method: str, path: str, query: dict[str, list[str]], range_header: str | None, authorization: str | None
    ) -> dict[str, Any]:
        """Append and return a new entry. Only the Authorization scheme and whether it matched are kept."""
        scheme = (authorization or "").partition(" ")[0] or None
        entry = {
            "method": method,
            "path": path,
            "query": query,
            "range": range_header,
            "status": None,
            "bytes_sent": 0,
            "aborted": False,
            "auth": {"scheme": scheme, "matches_token": self._authorization_matches(authorization)},
            "started_at": time.time(),
        }
        with self._lock:
            self._log.append(entry)
        return entry

    def update_log_entry(self, entry: dict[str, Any], **changes: Any) -> None:
        with self._lock:
            entry.update(changes)

    def close_log_entry(self, entry: dict[str, Any]) -> None:
        if self.on_request is not None:
            with self._lock:
                finished = copy.deepcopy(entry)
            self.on_request(finished)


# ----------------------------------------------------------------------------------------------------------
# CLI


def format_log_line(entry: dict[str, Any]) -> str:
    query = urlencode(entry["query"], doseq=True)
    target = f"{entry['path']}?{query}" if query else entry["path"]
    auth = entry["auth"]
    auth_text = "-" if auth["scheme"] is None else f"{auth['scheme']}:{'ok' if auth['matches_token'] else 'no'}"
    parts = [entry["method"], target, str(entry["status"]), f"{entry['bytes_sent']}B", f"auth={auth_text}"]
    if entry["range"]:
        parts.append(f"range={entry['range']}")
    if entry["aborted"]:
        parts.append("aborted")
    return " ".join(parts)


def print_log_line(entry: dict[str, Any]) -> None:
    print(format_log_line(entry), file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Serve a folder as a local Hugging Face Hub.")
    parser.add_argument("--root", type=Path, required=True, help="folder with hub/{datasets,models}/ and static/")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--throttle-bytes-per-s", type=int, default=None, help="pace response bodies")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_requested = threading.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signal_number, lambda *_: stop_requested.set())
    server = HubServer(
        args.root, args.host, args.port, throttle_bytes_per_s=args.throttle_bytes_per_s, on_request=print_log_line
    )
    with server:
        print(server.url, flush=True)
        while not stop_requested.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
