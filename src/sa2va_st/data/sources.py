"""Sources outside the Sa2VA-Training repo: Charades videos, Charades-STA and DiDeMo annotations,
ReVOS. Each is one config entry of kind `url`, `hf` or `local`:

    url:   plain HTTP(S) files, resumed with Range after a kill (transfer.py), sha256-checked when given
    hf:    files of another hub repo, through the same client as the main download
    local: something a person must fetch by hand (a licence form, a dead host); when it is not
           there the job stops with the entry's exact instructions

`layout` says what the files are: `files` (kept as they are), `videos` (an archive or folder of
videos; only the folder holding them is kept) or `detect` (an archive or folder of one of the
spatial datasets, found by its marker files as in layout.py).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from ..atomic import atomic_write_json, sha256_file, staging_dir
from ..errors import SourceError
from .archives import Archive, ExtractLimits
from .hub import download_verified, list_hub_folder
from .layout import Unit, find_units, find_video_folder, place
from .transfer import download_resumable

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


@dataclass(frozen=True)
class SourceSpec:
    name: str
    kind: str  # url | hf | local
    dest: str  # relative to data_root
    layout: str = "files"  # files | videos | detect
    urls: tuple[str, ...] = ()
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> expected sha256 (url kind)
    repo_id: str | None = None
    repo_type: str = "dataset"
    revision: str = "main"
    endpoint: str | None = None  # hub URL for kind hf; None: the client's default or HF_ENDPOINT
    files: tuple[str, ...] = ()
    path: str | None = None
    instructions: str = ""

    @classmethod
    def from_config(cls, name: str, entry: dict) -> SourceSpec:
        return cls(
            name=name,
            kind=entry["kind"],
            dest=entry["dest"],
            layout=entry.get("layout", "files"),
            urls=tuple(entry.get("urls", ())),
            sha256=dict(entry.get("sha256", {})),
            repo_id=entry.get("repo_id"),
            repo_type=entry.get("repo_type", "dataset"),
            revision=entry.get("revision", "main"),
            endpoint=entry.get("endpoint"),
            files=tuple(entry.get("files", ())),
            path=entry.get("path"),
            instructions=entry.get("instructions", ""),
        )


def fetch_source(
    spec: SourceSpec, data_root: Path, download_dir: Path, marker_path: Path, limits: ExtractLimits
) -> dict:
    """Bring one source into data_root/spec.dest and write its marker."""
    if spec.kind == "local":
        placed = _place_local(spec, data_root, limits)
    else:
        fetched = (
            _download_url_files(spec, download_dir) if spec.kind == "url" else _download_hf_files(spec, download_dir)
        )
        placed = _place_fetched(spec, fetched, data_root, limits)
    marker = {"source": spec.name, "kind": spec.kind, "dest": spec.dest, "files": placed}
    atomic_write_json(marker_path, marker)
    return marker


# ----------------------------------------------------------------------------- fetching


def _download_url_files(spec: SourceSpec, download_dir: Path) -> list[Path]:
    folder = download_dir / "sources" / spec.name
    fetched = []
    for url in spec.urls:
        filename = Path(urlsplit(url).path).name
        target = folder / filename
        expected = spec.sha256.get(filename)
        if target.exists() and (expected is None or sha256_file(target) == expected):
            fetched.append(target)  # fetched by an earlier run
        else:
            fetched.append(download_resumable(url, target, expected_sha256=expected, label=f"{spec.name}/{filename}"))
    return fetched


def _download_hf_files(spec: SourceSpec, download_dir: Path) -> list[Path]:
    """Files of another hub repo, through the same verified, resumable path as the main archives."""
    fetched = []
    for name in spec.files:
        folder = str(PurePosixPath(name).parent).removeprefix(".")
        commit, remote = list_hub_folder(spec.repo_id, spec.revision, folder, spec.endpoint, spec.repo_type)
        if name not in remote:
            raise SourceError(
                f"{name} is not in {spec.repo_id}@{spec.revision}",
                key=f"sources.{spec.name}.files",
                fix=f"it has: {', '.join(sorted(remote))}",
            )
        fetched.append(
            download_verified(
                spec.repo_id, commit, remote[name], download_dir / spec.repo_id, spec.endpoint, spec.repo_type
            )
        )
    return fetched


# ----------------------------------------------------------------------------- placing


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _place_fetched(spec: SourceSpec, fetched: list[Path], data_root: Path, limits: ExtractLimits) -> list[str]:
    dest = data_root / spec.dest
    archives = [path for path in fetched if _is_archive(path)]
    if spec.layout == "files" or not archives:
        dest.mkdir(parents=True, exist_ok=True)
        for path in fetched:
            shutil.copyfile(path, dest / path.name)  # downloads stay resumable/verifiable where they are
        return sorted(str(Path(spec.dest) / path.name) for path in fetched)
    placed = []
    for archive in archives:
        with staging_dir(data_root, spec.name) as staging:
            tree = staging / "tree"
            tree.mkdir()
            with Archive([archive]) as opened:
                opened.extract_to(tree, limits)
            placed += _place_tree(spec, tree, data_root, staging / "replaced", archive.name)
    return placed


def _place_tree(spec: SourceSpec, tree: Path, data_root: Path, trash: Path, label: str) -> list[str]:
    if spec.layout == "videos":
        return place(Unit("videos", find_video_folder(tree, label), spec.dest, merge=True), data_root, trash)
    units = [unit for unit in find_units(tree, label) if unit.dest == spec.dest]
    if not units:
        raise SourceError(
            f"{label} holds no dataset for {spec.dest}",
            file=label,
            key=f"sources.{spec.name}",
            fix=spec.instructions or "check the source",
        )
    return place(units[0], data_root, trash)


def _place_local(spec: SourceSpec, data_root: Path, limits: ExtractLimits) -> list[str]:
    key = f"sources.{spec.name}.path"
    if not spec.path or not Path(spec.path).exists():
        where = f"'{spec.path}' does not exist" if spec.path else "no path is set"
        raise SourceError(
            f"{spec.name} must be fetched by hand: {where}",
            key=key,
            fix=f"{spec.instructions.strip()}\n  then set {key} to that folder or archive (in config.yaml or --config)",
        )
    source = Path(spec.path)
    if _is_archive(source):
        return _place_fetched(spec, [source], data_root, limits)
    folder = _local_folder(spec, source, key)
    link = data_root / spec.dest
    link.parent.mkdir(parents=True, exist_ok=True)
    # A link, not a copy: manual sources are large and already on this machine.
    tmp = link.with_name(f".{link.name}.link-tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(folder.resolve(), tmp, target_is_directory=True)
    if link.is_symlink() or link.is_file():
        link.unlink()
    elif link.exists():
        raise SourceError(
            f"{link} exists and is not a link",
            file=str(link),
            key=key,
            fix=f"move {link} away; it would be replaced by a link to {folder}",
        )
    os.replace(tmp, link)
    return [spec.dest]


def _local_folder(spec: SourceSpec, source: Path, key: str) -> Path:
    """The folder a local source links to, after checking it holds what the layout needs."""
    if spec.layout == "videos":
        return find_video_folder(source, str(source))
    if spec.layout == "detect":
        units = [unit for unit in find_units(source, spec.name) if unit.dest == spec.dest]
        if not units:
            raise SourceError(
                f"{source} does not look like {spec.dest} (marker files missing)",
                file=str(source),
                key=key,
                fix=spec.instructions,
            )
        return units[0].source
    return source
