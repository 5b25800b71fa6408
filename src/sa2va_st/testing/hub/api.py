"""The hub's JSON shapes and its routes: `HubApp` maps one `Request` to one `Response` and knows nothing of sockets."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from .git import COMMIT_DATE, COMMIT_TITLE, HubFile, RepoSnapshot, snapshot_repo
from .responses import HubError, Response, file_response, json_response, not_found

if TYPE_CHECKING:
    from .server import HubServer

REPO_TYPES = {"datasets": "dataset", "models": "model"}  # URL segment -> repo type
DEFAULT_REVISION = "main"
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # an owner or repo name

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
