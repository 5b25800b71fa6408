"""A repo folder seen as the single git commit the local hub pretends it is: git object ids, the LFS rules of
`.gitattributes`, cached file digests and the snapshot of a folder."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

COMMIT_DATE = "2024-01-01T00:00:00.000Z"  # fixed, so the commit sha depends on the files only
COMMIT_TIMESTAMP = 1704067200  # COMMIT_DATE as a unix time, for the git commit object
COMMIT_AUTHOR = "sa2va-st hub_server <hub_server@localhost>"
COMMIT_TITLE = "Snapshot of the served folder"
HASH_BLOCK = 1 << 20

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
