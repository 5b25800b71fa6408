"""Sources of kind url, hf and local: placed under data_root, resumable, and a missing manual source
stops with its instructions."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from helpers import default_limits
from sa2va_st.data.sources import SourceSpec, fetch_source
from sa2va_st.data.transfer import download_resumable, part_path
from sa2va_st.errors import DownloadError, SourceError
from sa2va_st.testing.hub import HubServer

NO_RESERVE = default_limits(reserve_bytes=0)


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    static = root / "static" / "charades"
    static.mkdir(parents=True)
    (static / "charades_sta_train.txt").write_text("AB12C 0.0 3.5##a person opens a door.\n")
    with zipfile.ZipFile(static / "Charades_v1_480.zip", "w") as archive:
        archive.writestr("Charades_v1_480/AB12C.mp4", b"\x00\x00\x00\x18ftypmp42" + os.urandom(1000))
        archive.writestr("Charades_v1_480/ZZ99Z.mp4", b"\x00\x00\x00\x18ftypmp42" + os.urandom(1000))
        archive.writestr("readme.txt", b"videos")
    repo = root / "hub" / "datasets" / "synthetic" / "anno"
    repo.mkdir(parents=True)
    (repo / "train_data.json").write_text(json.dumps([{"annotation_id": 1}]))
    (root / "static" / "big.bin").write_bytes(os.urandom(2 << 20))
    return root


def fetch(spec: dict, name: str, tmp_path: Path) -> dict:
    marker = tmp_path / "datasets" / ".sources" / f"{name}.json"
    return fetch_source(
        SourceSpec.from_config(name, spec), tmp_path / "datasets", tmp_path / "downloads", marker, NO_RESERVE
    )


def test_url_files_and_video_archive(tmp_path, served):
    with HubServer(served) as server:
        base = f"{server.url}/static/charades"
        fetch(
            {"kind": "url", "urls": [f"{base}/charades_sta_train.txt"], "dest": "temporal/Charades/annotations"},
            "sta",
            tmp_path,
        )
        marker = fetch(
            {
                "kind": "url",
                "urls": [f"{base}/Charades_v1_480.zip"],
                "layout": "videos",
                "dest": "temporal/Charades/videos",
            },
            "videos",
            tmp_path,
        )
    root = tmp_path / "datasets"
    assert (root / "temporal/Charades/annotations/charades_sta_train.txt").read_text().startswith("AB12C")
    assert sorted(p.name for p in (root / "temporal/Charades/videos").iterdir()) == ["AB12C.mp4", "ZZ99Z.mp4"]
    assert marker["dest"] == "temporal/Charades/videos"


def test_url_sha256_mismatch_is_refused(tmp_path, served):
    with HubServer(served) as server:
        spec = {
            "kind": "url",
            "urls": [f"{server.url}/static/charades/charades_sta_train.txt"],
            "dest": "a",
            "sha256": {"charades_sta_train.txt": "0" * 64},
        }
        with pytest.raises(DownloadError, match="sha256"):
            fetch(spec, "sta", tmp_path)
    assert not (tmp_path / "datasets" / "a").exists()


def test_resumable_transfer_continues_a_partial_file(tmp_path, served):
    data = (served / "static" / "big.bin").read_bytes()
    target = tmp_path / "big.bin"
    part_path(target).write_bytes(data[:700_000])  # what a killed run leaves
    with HubServer(served) as server:
        download_resumable(f"{server.url}/static/big.bin", target, expected_size=len(data))
        (get,) = [r for r in server.requests if r["method"] == "GET"]
    assert get["range"] == "bytes=700000-" and get["bytes_sent"] == len(data) - 700_000
    assert target.read_bytes() == data and not part_path(target).exists()


def test_hf_source_uses_the_hub_client(tmp_path, served):
    with HubServer(served) as server:
        spec = {
            "kind": "hf",
            "endpoint": server.url,
            "repo_id": "synthetic/anno",
            "files": ["train_data.json"],
            "dest": "temporal/didemo/annotations",
        }
        fetch(spec, "didemo_annotations", tmp_path)
        assert any("/resolve/" in r["path"] for r in server.requests)
    assert json.loads((tmp_path / "datasets/temporal/didemo/annotations/train_data.json").read_text()) == [
        {"annotation_id": 1}
    ]


def test_missing_local_source_prints_its_instructions(tmp_path):
    spec = {
        "kind": "local",
        "path": None,
        "layout": "detect",
        "dest": "video_datas/ReVOS",
        "instructions": "Fetch ReVOS from the VISA project.",
    }
    with pytest.raises(SourceError) as error:
        fetch(spec, "revos", tmp_path)
    message = str(error.value)
    assert "Fetch ReVOS from the VISA project." in message and "sources.revos.path" in message
    spec["path"] = str(tmp_path / "not-here")
    with pytest.raises(SourceError, match="not-here"):
        fetch(spec, "revos", tmp_path)


def test_local_folder_is_linked_after_its_markers_are_checked(tmp_path):
    revos = tmp_path / "manual" / "ReVOS"
    (revos / "JPEGImages" / "v0").mkdir(parents=True)
    for name in ("meta_expressions_train_.json", "mask_dict.json", "mask_dict_foreground.json"):
        (revos / name).write_text("{}")
    spec = {"kind": "local", "path": str(revos), "layout": "detect", "dest": "video_datas/ReVOS", "instructions": "x"}
    fetch(spec, "revos", tmp_path)
    link = tmp_path / "datasets/video_datas/ReVOS"
    assert link.is_symlink() and link.resolve() == revos.resolve()
    fetch(spec, "revos", tmp_path)  # idempotent
    assert link.resolve() == revos.resolve()
    (revos / "mask_dict_foreground.json").unlink()
    with pytest.raises(SourceError, match="marker files missing"):
        fetch(spec, "revos", tmp_path)
