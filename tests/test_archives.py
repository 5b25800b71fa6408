"""Safe, atomic, idempotent unpacking: every refusal of the reliability contract, on real archives."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import default_limits
from sa2va_st.atomic import atomic_write_json, sha256_file
from sa2va_st.data.archives import Archive, ConcatenatedReader, ExtractLimits
from sa2va_st.data.unpack import unpack_archive
from sa2va_st.errors import ArchiveError

NO_RESERVE = default_limits(reserve_bytes=0)


def make_zip(path: Path, entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path


def mevis_entries(tag: bytes = b"v1") -> dict[str, bytes]:
    """A minimal MeViS-shaped archive: the markers layout.py looks for, under an undocumented top folder."""
    return {
        "some_release/mevis/train/meta_expressions.json": json.dumps({"videos": {}}).encode(),
        "some_release/mevis/train/mask_dict.json": b"{}",
        "some_release/mevis/train/JPEGImages/v0/00000.jpg": tag,
    }


def write_receipt(tmp: Path, archive: str, parts: list[Path]) -> Path:
    receipt = {
        "archive": archive,
        "commit": "0" * 40,
        "parts": [{"name": p.name, "path": str(p), "size": p.stat().st_size, "sha256": sha256_file(p)} for p in parts],
    }
    path = tmp / "receipts" / f"{archive}.json"
    atomic_write_json(path, receipt)
    return path


def tree_snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "datasets"
    root.mkdir()
    return root


def unpack(tmp_path: Path, data_root: Path, archive: Path, limits: ExtractLimits = NO_RESERVE) -> dict:
    receipt = write_receipt(tmp_path, archive.name, [archive])
    return unpack_archive(receipt, data_root, data_root / ".unpacked" / f"{archive.name}.json", limits)


def test_unpack_places_dataset_by_markers_and_is_idempotent(tmp_path, data_root):
    archive = make_zip(tmp_path / "video_datas_mevis.zip", mevis_entries())
    marker = unpack(tmp_path, data_root, archive)
    assert marker["placed"] == ["video_datas/mevis"]
    assert (data_root / "video_datas/mevis/train/JPEGImages/v0/00000.jpg").read_bytes() == b"v1"
    before = (data_root / "video_datas/mevis").stat().st_ino
    again = unpack(tmp_path, data_root, archive)
    assert again == marker
    assert (data_root / "video_datas/mevis").stat().st_ino == before, (
        "a second unpack of the same archive must not redo it"
    )
    assert not [p for p in data_root.iterdir() if p.name.endswith(".staging")], (
        "staging folders must not be left behind"
    )


def test_new_archive_version_replaces_the_old_tree(tmp_path, data_root):
    unpack(tmp_path, data_root, make_zip(tmp_path / "video_datas_mevis.zip", mevis_entries(b"v1")))
    unpack(tmp_path, data_root, make_zip(tmp_path / "video_datas_mevis.zip", mevis_entries(b"v2")))
    assert (data_root / "video_datas/mevis/train/JPEGImages/v0/00000.jpg").read_bytes() == b"v2"


@pytest.mark.parametrize(
    "bad_name, reason",
    [
        ("../escape.txt", "'..'"),
        ("/etc/passwd_copy", "absolute"),
        ("mevis/train/../../../up.txt", "'..'"),
        ("C:/windows.txt", "absolute"),
    ],
)
def test_escaping_entries_are_refused_and_leave_no_tree(tmp_path, data_root, bad_name, reason):
    unpack(tmp_path, data_root, make_zip(tmp_path / "good.zip", mevis_entries()))
    before = tree_snapshot(data_root)
    evil = make_zip(tmp_path / "video_datas_mevis.zip", mevis_entries(b"v2") | {bad_name: b"x"})
    with pytest.raises(ArchiveError) as error:
        unpack(tmp_path, data_root, evil)
    assert bad_name in str(error.value) and reason in str(error.value)
    assert tree_snapshot(data_root) == before, "a refused archive must not change the existing tree"
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "up.txt").exists()


def test_symlink_entry_in_zip_is_refused(tmp_path, data_root):
    evil = make_zip(tmp_path / "video_datas_mevis.zip", mevis_entries(), symlinks={"some_release/mevis/link": "/etc"})
    with pytest.raises(ArchiveError, match="symbolic link"):
        unpack(tmp_path, data_root, evil)
    assert not (data_root / "video_datas").exists()


def test_symlink_entry_in_tar_is_refused(tmp_path, data_root):
    path = tmp_path / "videos.tar"
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("videos/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../outside"
        archive.addfile(info)
    with Archive([path]) as opened, pytest.raises(ArchiveError, match="'videos/link' is a link"):
        opened.extract_to(tmp_path, NO_RESERVE)


@pytest.mark.parametrize(
    "kind, expected",
    [(tarfile.LNKTYPE, "'videos/hard' is a link"), (tarfile.CHRTYPE, "not a regular file"),
     (tarfile.BLKTYPE, "not a regular file"), (tarfile.FIFOTYPE, "not a regular file")],
)  # fmt: skip
def test_hard_links_and_device_entries_in_tar_are_refused(tmp_path, data_root, kind, expected):
    """A hard link can alias a file outside the tree once extracted; device and FIFO entries are never data."""
    path = tmp_path / "videos.tar"
    with tarfile.open(path, "w") as archive:
        real = tarfile.TarInfo("videos/a.mp4")
        real.size = 4
        archive.addfile(real, io.BytesIO(b"abcd"))
        info = tarfile.TarInfo("videos/hard" if kind == tarfile.LNKTYPE else "videos/dev")
        info.type = kind
        info.linkname = "videos/a.mp4" if kind == tarfile.LNKTYPE else ""
        info.devmajor, info.devminor = 1, 3  # /dev/null's numbers
        archive.addfile(info)
    target = tmp_path / "out"
    target.mkdir()
    with Archive([path]) as opened, pytest.raises(ArchiveError, match=expected):
        opened.extract_to(target, NO_RESERVE)
    assert not list(target.iterdir()), "a refused archive writes nothing"


def test_a_zip_member_with_a_bomb_ratio_is_refused_before_anything_is_written(tmp_path, data_root):
    """64 MiB of zeros deflate to ~65 KB: a ratio of ~1000 per member. The default limit (the config schema's
    unpack.max_ratio) refuses it by its own ratio, whatever the rest of the archive holds."""
    bomb = bytes(64 << 20)
    entries = mevis_entries() | {"some_release/mevis/train/JPEGImages/v0/big.bin": bomb}
    entries |= {f"some_release/mevis/train/JPEGImages/v1/{k}.jpg": os.urandom(300_000) for k in range(4)}
    archive = make_zip(tmp_path / "video_datas_mevis.zip", entries)
    with zipfile.ZipFile(archive) as z:
        info = z.getinfo("some_release/mevis/train/JPEGImages/v0/big.bin")
        assert info.file_size / info.compress_size > NO_RESERVE.max_ratio  # the member alone is over
        whole = sum(i.file_size for i in z.infolist()) / archive.stat().st_size
    assert whole < NO_RESERVE.max_ratio, "the archive as a whole stays under the ratio: only a per-member check sees it"
    with pytest.raises(ArchiveError, match=r"big.bin' inflates .*ratio .*over unpack.max_ratio") as error:
        unpack(tmp_path, data_root, archive)
    assert error.value.key == "unpack.max_ratio"
    assert not (data_root / "video_datas").exists()
    assert unpack(tmp_path, data_root, archive, default_limits(reserve_bytes=0, max_ratio=5000))["placed"]


def test_small_highly_compressible_members_are_not_bombs(tmp_path, data_root):
    """Below 1 MiB a member is never refused for its ratio: blank masks and JSON compress past any limit."""
    entries = mevis_entries() | {"some_release/mevis/train/mask_dict.json": b"{" + b" " * 900_000 + b"}"}
    assert unpack(tmp_path, data_root, make_zip(tmp_path / "video_datas_mevis.zip", entries))["placed"]


def test_a_compressed_tar_with_a_bomb_ratio_is_refused(tmp_path):
    path = tmp_path / "videos.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo("videos/zeros.mp4")
        info.size = 32 << 20
        archive.addfile(info, io.BytesIO(bytes(info.size)))
    target = tmp_path / "out"
    target.mkdir()
    with Archive([path]) as opened, pytest.raises(ArchiveError, match="a tar bomb"):
        opened.extract_to(target, default_limits(reserve_bytes=0, max_ratio=100))
    assert not list(target.iterdir())


def test_truncated_archive_is_refused_with_its_name(tmp_path, data_root):
    archive = make_zip(tmp_path / "video_datas_mevis.zip", mevis_entries() | {"big.bin": os.urandom(200_000)})
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="truncated") as error:
        unpack(tmp_path, data_root, archive)
    assert "video_datas_mevis.zip" in str(error.value)
    assert not (data_root / "video_datas").exists()


def test_corrupt_member_data_is_refused(tmp_path, data_root):
    archive = make_zip(tmp_path / "video_datas_mevis.zip", mevis_entries() | {"payload.bin": os.urandom(50_000)})
    data = bytearray(archive.read_bytes())
    offset = data.index(b"payload.bin") + 200  # inside that member's compressed bytes
    data[offset : offset + 16] = bytes(16)
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="corrupt|truncated"):
        unpack(tmp_path, data_root, archive)
    assert not (data_root / "video_datas").exists()


def test_too_little_free_disk_is_refused_with_the_numbers(tmp_path, data_root):
    archive = make_zip(tmp_path / "video_datas_mevis.zip", mevis_entries())
    free = os.statvfs(data_root).f_bavail * os.statvfs(data_root).f_frsize
    with pytest.raises(ArchiveError, match="not enough free disk") as error:
        unpack(tmp_path, data_root, archive, default_limits(reserve_bytes=free + (1 << 40)))
    assert "reserve" in str(error.value) and "free" in str(error.value)
    assert not (data_root / "video_datas").exists()


def test_member_count_and_size_limits(tmp_path, data_root):
    archive = make_zip(tmp_path / "video_datas_mevis.zip", mevis_entries())
    with pytest.raises(ArchiveError, match="over the limit of 2"):
        unpack(tmp_path, data_root, archive, default_limits(max_members=2, reserve_bytes=0))
    with pytest.raises(ArchiveError, match="would unpack to"):
        unpack(tmp_path, data_root, archive, default_limits(max_total_bytes=10, reserve_bytes=0))


def test_archive_without_known_dataset_names_what_was_looked_for(tmp_path, data_root):
    archive = make_zip(tmp_path / "mystery.zip", {"stuff/readme.txt": b"hello"})
    with pytest.raises(Exception, match="no dataset this pipeline knows") as error:
        unpack(tmp_path, data_root, archive)
    assert "instances.json" in str(error.value) and "stuff" in str(error.value)


def test_split_parts_unpack_without_joining_on_disk(tmp_path, data_root):
    whole = make_zip(
        tmp_path / "whole.zip", mevis_entries() | {"some_release/mevis/train/blob.bin": os.urandom(300_000)}
    )
    data = whole.read_bytes()
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    parts = []
    for index, suffix in enumerate(["z01", "z02", "zip"]):
        part = tmp_path / f"video_datas_mevis.{suffix}"
        part.write_bytes(data[cuts[index] : cuts[index + 1]])
        parts.append(part)
    receipt = write_receipt(tmp_path, "video_datas_mevis.zip", parts)
    unpack_archive(receipt, data_root, data_root / ".unpacked/video_datas_mevis.zip.json", NO_RESERVE)
    with zipfile.ZipFile(whole) as original:
        assert (data_root / "video_datas/mevis/train/blob.bin").read_bytes() == original.read(
            "some_release/mevis/train/blob.bin"
        )


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=5),
    reads=st.lists(
        st.tuples(st.integers(min_value=0, max_value=1600), st.integers(min_value=0, max_value=400)), max_size=8
    ),
)
def test_concatenated_reader_matches_joined_bytes(tmp_path_factory, sizes, reads):
    folder = tmp_path_factory.mktemp("parts")
    blobs = [os.urandom(size) for size in sizes]
    paths = []
    for index, blob in enumerate(blobs):
        paths.append(folder / f"p{index}")
        paths[-1].write_bytes(blob)
    joined = b"".join(blobs)
    reader = io.BufferedReader(ConcatenatedReader(paths))
    for offset, length in reads:
        reader.seek(offset)
        assert reader.read(length) == joined[offset : offset + length]
    reader.seek(0)
    assert reader.read() == joined
    reader.close()
