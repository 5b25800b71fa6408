"""The manifests stage on crafted inputs: every drop/clip reason, structural failures, schemas, report, CLI,
the index rule, and one build from a freshly generated synthetic tree."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SYNTHETIC_LABEL
from sa2va_st.annotations.special_jsons import FORMAT_VERSION
from sa2va_st.errors import ManifestError
from sa2va_st.features.timing import feature_count
from sa2va_st.manifests import (
    IMAGE_SCHEMA,
    SCHEMAS,
    TEMPORAL_SCHEMA,
    VIDEO_SCHEMA,
    build_spatial_manifests,
    build_temporal_manifests,
    column_spec,
    feature_id,
    window_indices,
)

REPO = Path(__file__).resolve().parents[1]
SHA = "0" * 64
LABEL = SYNTHETIC_LABEL  # conftest's synthetic_build writes its features under this label
COCO = "refer_seg/coco2014/train2014"


# ----------------------------------------------------------------------------- crafted inputs


def special_doc(kind: str, dataset: str, split: str, records: list[dict], **extra) -> dict:
    doc = {
        "format": "sa2va_st.special_jsons",
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "dataset": dataset,
        "split": split,
        "counts": {"records": len(records)},
        "sources": {"annotations/source.json": SHA},
        "records": records,
    }
    if kind in ("image_refer", "video_refer"):
        doc.update(annotated=extra.pop("annotated", True), box_format="xyxy_normalised")
    elif kind == "moments":
        doc.update(window_format="seconds_ordered_unclipped", source_format="text")
    else:
        doc.update(window_format="seconds_ordered_unclipped", chunk_seconds=5)
    doc.update(extra)
    return doc


def write_special(sj: Path, doc: dict) -> Path:
    path = sj / doc["dataset"] / f"{doc['split']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def image_record(n: int, frame: str, box) -> dict:
    return {
        "id": f"{n}/{n}",
        "ref_id": n,
        "sent_id": n,
        "ann_id": 100 + n,
        "image_id": 1000 + n,
        "category_id": 1,
        "sentence": f"object {n}",
        "raw": f"Object {n}",
        "frame_dir": COCO,
        "frames": [frame],
        "width": 64,
        "height": 48,
        "boxes": [box],
    }


def video_record(video: str, exp: str, frame_dir: str, n_frames: int, boxes, type_id=None) -> dict:
    """A one-object video_refer record; `boxes` per frame (box or None), stored per frame and object."""
    record = {
        "id": f"{video}/{exp}",
        "video": video,
        "exp_id": exp,
        "sentence": f"{video} {exp}",
        "obj_ids": ["1"],
        "anno_ids": ["7"] if boxes is not None else [],
        "frame_dir": f"{frame_dir}/{video}",
        "frames": [f"{i:05d}.jpg" for i in range(n_frames)],
        "width": 32,
        "height": 24,
        "boxes": None if boxes is None else [[b] for b in boxes],
    }
    if type_id is not None:
        record["type_id"] = type_id
    return record


def touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def write_features(folder: Path, fps: float, videos: dict[str, tuple], dim: int = 4) -> None:
    """videos: vid -> (duration, T, status, write_npy). index.parquet with the features stage's columns."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for vid, (duration, T, status, npy) in videos.items():
        if npy:
            np.save(folder / f"{vid}.npy", np.zeros((T, dim), dtype=np.float16))
        ok = status == "ok"
        rows.append(
            {
                "vid": vid,
                "T": T if ok else None,
                "fps": fps,
                "duration": duration,
                "source_fps": 25.0,
                "source_frames": int(duration * 25),
                "status": status,
                "error": None if ok else "cannot decode",
            }
        )
    schema = pa.schema(
        [
            ("vid", pa.string()),
            ("T", pa.int64()),
            ("fps", pa.float64()),
            ("duration", pa.float64()),
            ("source_fps", pa.float64()),
            ("source_frames", pa.int64()),
            ("status", pa.string()),
            ("error", pa.string()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / "index.parquet")


def spatial_tree(tmp: Path) -> tuple[Path, Path]:
    """special_jsons + data_root with one crafted dataset per spatial flaw."""
    sj, root = tmp / "special_jsons", tmp / "data"
    box = [0.1, 0.2, 0.5, 0.6]
    for i in range(4):
        touch(root / COCO / f"img{i}.jpg")
    images = [
        image_record(0, "img0.jpg", box),
        image_record(1, "img1.jpg", box),
        image_record(2, "img2.jpg", None),
        image_record(3, "img3.jpg", box),
        image_record(4, "img_absent.jpg", box),
        image_record(5, "img0.jpg", [0.0, 0.0, 1.0, 1.0]),
    ]
    write_special(sj, special_doc("image_refer", "refcoco", "train", images))

    mevis = "video_datas/mevis/train/JPEGImages"
    for video, n in (("va", 3), ("vc", 3), ("vd", 2)):
        for i in range(n):
            touch(root / mevis / video / f"{i:05d}.jpg")
    (root / mevis / "vc" / "00001.jpg").unlink()  # one frame of vc is missing
    b = [0.1, 0.1, 0.4, 0.4]
    records = [
        video_record("va", "0", mevis, 3, [b, None, b]),
        video_record("va", "1", mevis, 3, [b, b, b]),
        video_record("va", "2", mevis, 3, [None, None, None]),  # empty mask
        video_record("vb", "0", mevis, 3, [b, b, b]),  # frame folder missing
        video_record("vc", "0", mevis, 3, [b, b, b]),  # one frame missing
        video_record("vd", "0", mevis, 2, [b, b]),
    ]
    write_special(sj, special_doc("video_refer", "mevis", "train", records))
    unannotated = [video_record("va", "0", mevis, 3, None), video_record("vd", "0", mevis, 2, None)]
    write_special(sj, special_doc("video_refer", "mevis", "valid_u", unannotated, annotated=False))

    revos = "video_datas/ReVOS/JPEGImages"
    for i in range(2):
        touch(root / revos / "r1" / f"{i:05d}.jpg")
    records = [
        video_record("r1", "0", revos, 2, [b, b], type_id=0),
        video_record("r1", "1", revos, 2, [None, None], type_id=2),  # no target: kept
        video_record("r1", "2", revos, 2, [None, None], type_id=1),  # empty mask: dropped
    ]
    write_special(sj, special_doc("video_refer", "revos", "train", records))
    return sj, root


def charades_record(qid: str, video: str, window, written=None) -> dict:
    record = {"id": qid, "video": video, "sentence": f"query {qid}", "window": list(window), "line": 1}
    if written is not None:
        record["window_as_written"] = list(written)
    return record


def temporal_tree(tmp: Path, fps: float = 10.0) -> tuple[Path, Path]:
    sj, root = tmp / "special_jsons", tmp / "data"
    videos = root / "temporal/Charades/videos"
    for vid in ("ok", "failed", "notindexed", "nonpy", "short"):
        touch(videos / f"{vid}.mp4")
    write_features(
        root / f"clip_features/charades/{LABEL}/fps{fps:g}",
        fps,
        {
            "ok": (10.0, feature_count(10.0, fps), "ok", True),
            "failed": (8.0, None, "failed", False),
            "nonpy": (8.0, feature_count(8.0, fps), "ok", False),
            "short": (8.0, feature_count(8.0, fps) - 1, "ok", True),
        },
    )
    records = [
        charades_record("k1", "ok", (1.0, 2.0)),
        charades_record("k2", "ok", (1.1, 2.35)),
        charades_record("k3", "ok", (0.0, 10.0)),
        charades_record("k4", "ok", (9.95, 10.0)),
        charades_record("reordered", "ok", (2.0, 4.0), written=(4.0, 2.0)),
        charades_record("clipped", "ok", (7.0, 12.5)),
        charades_record("both", "ok", (3.0, 11.0), written=(11.0, 3.0)),
        charades_record("k5", "ok", (0.05, 0.06)),
        charades_record("novideo", "absent", (1.0, 2.0)),
        charades_record("failed", "failed", (1.0, 2.0)),
        charades_record("notindexed", "notindexed", (1.0, 2.0)),
        charades_record("nonpy", "nonpy", (1.0, 2.0)),
        charades_record("short", "short", (1.0, 2.0)),
        charades_record("zero", "ok", (3.0, 3.0)),
        charades_record("atend", "ok", (10.0, 11.0)),
        charades_record("after", "ok", (11.0, 12.0)),
    ]
    write_special(sj, special_doc("moments", "charades", "train", records))

    didemo_videos = root / "temporal/didemo/videos"
    touch(didemo_videos / "123@N00_456_abc.mp4")
    write_features(
        root / f"clip_features/didemo/{LABEL}/fps{fps:g}",
        fps,
        {"123@N00_456_abc": (27.5, feature_count(27.5, fps), "ok", True)},
    )
    didemo = [
        {
            "id": "d1",
            "video": "123@N00_456_abc.mov",
            "sentence": "first",
            "window": [0.0, 10.0],
            "window_chunks": [0, 1],
            "annotator_windows": [[0, 1], [1, 0], [0, 0], [0, 1]],  # one written reversed, one repeated
            "agreement": 2,
            "tie": False,
            "num_segments": 6,
        },
        {
            "id": "d2",
            "video": "123@N00_456_abc.mov",
            "sentence": "last",
            "window": [25.0, 30.0],
            "window_chunks": [5, 5],
            "annotator_windows": [[5, 5], [4, 5]],
            "agreement": 1,
            "tie": False,
            "num_segments": 6,
        },
    ]
    write_special(sj, special_doc("chunked_moments", "didemo", "test", didemo))
    return sj, root


def read(path: Path) -> pa.Table:
    return pq.read_table(path)


def split_entry(report: dict, dataset: str, split: str) -> dict:
    return report["datasets"][dataset]["splits"][split]


# ----------------------------------------------------------------------------- spatial


def test_spatial_reasons_are_counted(tmp_path: Path) -> None:
    sj, root = spatial_tree(tmp_path)
    out = tmp_path / "manifests"
    report = build_spatial_manifests(sj, root, out)

    refcoco = split_entry(report, "refcoco", "train")
    assert (refcoco["rows_in"], refcoco["kept"]) == (6, 4)
    assert refcoco["dropped"] == {"rows": 2, "by_reason": {"missing_image": 1, "empty_mask": 1}}
    assert [x["id"] for x in refcoco["examples"]["missing_image"]] == ["4/4"]
    table = read(out / "spatial/refcoco/train.parquet")
    assert table.column("id").to_pylist() == ["0/0", "1/1", "3/3", "5/5"]
    assert all(Path(p).is_file() for p in table.column("image_path").to_pylist())
    assert table.column("image_path").to_pylist()[0] == f"{root.as_posix()}/{COCO}/img0.jpg"
    assert table.column("box").to_pylist()[3] == [0.0, 0.0, 1.0, 1.0]

    mevis = split_entry(report, "mevis", "train")
    assert (mevis["rows_in"], mevis["kept"]) == (6, 3)
    assert mevis["dropped"]["by_reason"] == {"missing_frames": 2, "empty_mask": 1}
    details = {x["id"]: x["detail"] for x in mevis["examples"]["missing_frames"]}
    assert "is missing" in details["vb/0"] and "1 of 3 frames absent" in details["vc/0"]
    table = read(out / "spatial/mevis/train.parquet").to_pylist()
    assert [r["id"] for r in table] == ["va/0", "va/1", "vd/0"]
    assert table[0]["boxes"] == [[[0.1, 0.1, 0.4, 0.4]], [None], [[0.1, 0.1, 0.4, 0.4]]]  # per frame, per object
    assert table[0]["num_box_frames"] == 2 and table[0]["num_frames"] == 3 and table[0]["has_masks"] is True
    for row in table:
        assert all((Path(row["frame_dir"]) / f).is_file() for f in row["frames"])

    valid = read(out / "spatial/mevis/valid_u.parquet").to_pylist()
    assert [r["has_masks"] for r in valid] == [False, False] and [r["boxes"] for r in valid] == [None, None]
    assert split_entry(report, "mevis", "valid_u")["kept"] == 2

    revos = split_entry(report, "revos", "train")
    assert revos["kept"] == 2 and revos["dropped"]["by_reason"]["empty_mask"] == 1
    assert revos["notes"]["no_target_kept"] == 1
    rows = read(out / "spatial/revos/train.parquet").to_pylist()
    assert [(r["id"], r["type_id"], r["num_box_frames"]) for r in rows] == [("r1/0", 0, 2), ("r1/1", 2, 0)]
    assert report["totals"] == {"rows_in": 17, "kept": 11, "clipped": 0, "dropped": 6}
    assert set(report["datasets"]) >= {"refcoco", "mevis", "revos"}
    assert report["datasets"]["rvos"]["status"] == "skipped"


def test_spatial_structural_failures_name_the_missing_folder(tmp_path: Path) -> None:
    sj, root = spatial_tree(tmp_path)
    out = tmp_path / "manifests"
    build_spatial_manifests(sj, root, out)
    before = (out / "spatial/report.json").read_bytes()

    shutil.rmtree(root / COCO)
    with pytest.raises(ManifestError) as caught:
        build_spatial_manifests(sj, root, out)
    assert caught.value.file == f"{root.as_posix()}/{COCO}"
    assert "refcoco/train" in str(caught.value) and "missing_image" in str(caught.value)
    assert (out / "spatial/report.json").read_bytes() == before  # a failed build leaves the old outputs

    build_spatial_manifests(sj, root, out, datasets=["mevis"])
    shutil.rmtree(root / "video_datas/mevis/train/JPEGImages")
    with pytest.raises(ManifestError) as caught:
        build_spatial_manifests(sj, root, out, datasets=["mevis"])
    assert caught.value.file == f"{root.as_posix()}/video_datas/mevis/train/JPEGImages"


def test_special_json_breaking_its_schema_is_fatal_and_named(tmp_path: Path) -> None:
    sj, root = spatial_tree(tmp_path)
    path = sj / "mevis" / "train.json"
    doc = json.loads(path.read_text())
    del doc["records"][1]["sentence"]
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError) as caught:
        build_spatial_manifests(sj, root, tmp_path / "out")
    assert caught.value.file == str(path) and "records/1" in str(caught.value)

    doc = special_doc("moments", "mevis", "train", [])  # a temporal file in a video dataset's folder
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match="kind 'moments'") as caught:
        build_spatial_manifests(sj, root, tmp_path / "out")
    assert caught.value.file == str(path)

    path.write_text("{ truncated")
    with pytest.raises(ManifestError) as caught:
        build_spatial_manifests(sj, root, tmp_path / "out")
    assert caught.value.file == str(path)


@pytest.mark.parametrize(
    "mutate, where",
    [
        (lambda r: r["boxes"][2].__setitem__(0, [0.1, 0.2, 1.5, 0.3]), "records/1/boxes/2/0"),
        (lambda r: r["boxes"][1].__setitem__(0, [0.1, 0.2, 0.3]), "records/1/boxes/1/0"),
        (lambda r: r["boxes"][2].__setitem__(0, [0.1, True, 0.3, 0.4]), "records/1/boxes/2/0"),
        (lambda r: r["boxes"][1].__setitem__(0, "box"), "records/1/boxes/1/0"),
        (lambda r: r["boxes"].__setitem__(1, [0.1, 0.2, 0.3, 0.4]), "records/1/boxes/1/0"),  # a box, not a list
        (lambda r: r["boxes"].__setitem__(2, []), "records/1/boxes/2"),  # no object entry
        (lambda r: r["boxes"][0].append(None), "records/1/boxes/0"),  # an entry per object, not more
        (lambda r: r["frames"].__setitem__(2, ""), "records/1/frames/2"),
        (lambda r: r["frames"].__setitem__(1, 7), "records/1/frames/1"),
        (lambda r: r["boxes"].pop(), "records/1/boxes"),
        (lambda r: r.__setitem__("boxes", []), "records/1/boxes"),
    ],
)
@pytest.mark.parametrize("fast", [True, False], ids=["fastjsonschema", "jsonschema_only"])
def test_per_frame_lists_are_checked_like_the_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mutate, where: str, fast: bool
) -> None:
    """The per-frame check rejects what jsonschema rejects (and a box count that is not the frame count)."""
    from sa2va_st.annotations.special_jsons import load_schemas
    from sa2va_st.manifests import common

    if not fast:
        monkeypatch.setattr(common, "fastjsonschema", None)
    elif common.fastjsonschema is None:
        pytest.skip("fastjsonschema is not installed")
    sj, root = spatial_tree(tmp_path)
    path = sj / "mevis" / "train.json"
    doc = json.loads(path.read_text())
    mutate(doc["records"][1])
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError) as caught:
        build_spatial_manifests(sj, root, tmp_path / "out")
    assert caught.value.file == str(path) and where in str(caught.value)
    if where not in ("records/1/boxes", "records/1/boxes/0") or doc["records"][1]["boxes"] == []:
        schema = load_schemas()["video_refer"]
        assert not jsonschema.Draft202012Validator(schema).is_valid(doc)


def mutations(doc: dict) -> list[dict]:
    """Broken copies of a special_jsons document, one schema rule each."""
    out = []
    for change in (
        lambda d: d["records"][0].pop("id"),
        lambda d: d["records"][0].__setitem__("id", 5),
        lambda d: d["records"][0].__setitem__("unknown", 1),
        lambda d: d["records"][0].__setitem__("sentence", ""),
        lambda d: d.__setitem__("format_version", FORMAT_VERSION + 1),
        lambda d: d.__setitem__("split", "a/b"),
        lambda d: d["sources"].__setitem__("x", "not-a-sha"),
        lambda d: d["counts"].__setitem__("records", -1),
        lambda d: d.pop("counts"),
    ):
        copy = json.loads(json.dumps(doc))
        change(copy)
        out.append(copy)
    return out


def test_fast_verdict_agrees_with_jsonschema(tmp_path: Path) -> None:
    from sa2va_st.annotations.special_jsons import load_schemas
    from sa2va_st.manifests.common import fast_is_valid

    if fast_is_valid({}, {}) is None:
        pytest.skip("fastjsonschema is not installed")
    schemas = load_schemas()
    sj_s, _ = spatial_tree(tmp_path / "s")
    sj_t, _ = temporal_tree(tmp_path / "t")
    docs = [json.loads(p.read_text()) for p in sorted(sj_s.glob("*/*.json")) + sorted(sj_t.glob("*/*.json"))]
    assert {d["kind"] for d in docs} == {"image_refer", "video_refer", "moments", "chunked_moments"}
    (image,) = [d for d in docs if d["kind"] == "image_refer"]
    image["records"][0]["boxes"] = [[0, 0, 1, 1]]  # integers are numbers
    for doc in docs:
        for candidate in [doc, *mutations(doc)]:
            reference = jsonschema.Draft202012Validator(schemas[doc["kind"]]).is_valid(candidate)
            assert fast_is_valid(candidate, schemas[doc["kind"]]) == reference, (doc["kind"], candidate)
        assert fast_is_valid(doc, schemas[doc["kind"]]) is True


def test_stale_manifests_are_removed(tmp_path: Path) -> None:
    sj, root = spatial_tree(tmp_path)
    out = tmp_path / "manifests"
    build_spatial_manifests(sj, root, out)
    assert (out / "spatial/mevis/valid_u.parquet").is_file()
    (sj / "mevis" / "valid_u.json").unlink()
    report = build_spatial_manifests(sj, root, out)
    assert not (out / "spatial/mevis/valid_u.parquet").exists()
    assert set(report["datasets"]["mevis"]["splits"]) == {"train"}


# ----------------------------------------------------------------------------- temporal


def test_temporal_reasons_are_counted_and_windows_mapped(tmp_path: Path) -> None:
    sj, root = temporal_tree(tmp_path)
    out = tmp_path / "manifests"
    report = build_temporal_manifests(sj, root, LABEL, 10, out)
    entry = split_entry(report, "charades", "train")
    assert entry["rows_in"] == 16 and entry["kept"] == 8
    assert entry["dropped"]["by_reason"] == {
        "missing_video": 1,
        "missing_features": 3,
        "features_short": 1,
        "zero_length_window": 1,
        "window_after_end": 2,
    }
    assert entry["clipped"] == {"rows": 3, "by_reason": {"reordered": 2, "clipped_end": 2}}
    details = {x["id"]: x["detail"] for x in entry["examples"]["missing_features"]}
    assert "failed" in details["failed"] and "not in" in details["notindexed"] and "absent" in details["nonpy"]

    folder = out / f"temporal/{LABEL}/fps10"
    rows = {r["id"]: r for r in read(folder / "charades/train.parquet").to_pylist()}
    assert list(rows) == ["k1", "k2", "k3", "k4", "reordered", "clipped", "both", "k5"]
    T = feature_count(10.0, 10)
    assert T == 100
    expect = {  # id: (start_s, end_s, start_idx, end_idx, fix)
        "k1": (1.0, 2.0, 10, 19, ""),
        "k2": (1.1, 2.35, 11, 23, ""),
        "k3": (0.0, 10.0, 0, 99, ""),
        "k4": (9.95, 10.0, 99, 99, ""),
        "reordered": (2.0, 4.0, 20, 39, "reordered"),
        "clipped": (7.0, 10.0, 70, 99, "clipped_end"),
        "both": (3.0, 10.0, 30, 99, "reordered+clipped_end"),
        "k5": (0.05, 0.06, 0, 0, ""),
    }
    for rid, (s, e, a, b, fix) in expect.items():
        r = rows[rid]
        assert (r["start_s"], r["end_s"], r["start_idx"], r["end_idx"], r["fix"]) == (s, e, a, b, fix), rid
        assert r["num_features"] == T and r["duration"] == 10.0 and r["fps"] == 10.0
    assert (rows["both"]["window_as_written_start"], rows["both"]["window_as_written_end"]) == (11.0, 3.0)
    assert (rows["clipped"]["window_as_written_start"], rows["clipped"]["window_as_written_end"]) == (7.0, 12.5)
    for r in rows.values():
        assert Path(r["video_path"]).is_file() and np.load(r["features_path"]).shape == (r["num_features"], 4)

    didemo = read(folder / "didemo/test.parquet").to_pylist()
    assert [(r["vid"], r["video"], r["end_s"], r["fix"]) for r in didemo] == [
        ("123@N00_456_abc", "123@N00_456_abc.mov", 10.0, ""),
        ("123@N00_456_abc", "123@N00_456_abc.mov", 27.5, "clipped_end"),
    ]
    assert didemo[1]["end_idx"] == feature_count(27.5, 10) - 1 == 274
    # every distinct annotator window, in seconds, clipped to the 27.5 s video; the target stays the most agreed
    assert didemo[0]["ground_truth_windows"] == [[0.0, 10.0], [0.0, 5.0]]
    assert didemo[1]["ground_truth_windows"] == [[25.0, 27.5], [20.0, 27.5]]
    charades_rows = read(folder / "charades/train.parquet").to_pylist()
    assert all(r["ground_truth_windows"] == [[r["start_s"], r["end_s"]]] for r in charades_rows)
    assert didemo[0]["video_path"].endswith("temporal/didemo/videos/123@N00_456_abc.mp4")
    assert report["fps"] == 10 and report["features_label"] == LABEL
    assert report["totals"] == {"rows_in": 18, "kept": 10, "clipped": 4, "dropped": 8}


def test_temporal_fps5_beside_fps10(tmp_path: Path) -> None:
    sj, root = temporal_tree(tmp_path, fps=5)
    write_features(root / f"clip_features/didemo/{LABEL}/fps10", 10, {"123@N00_456_abc": (27.5, 275, "ok", True)})
    report = build_temporal_manifests(sj, root, LABEL, 5, tmp_path / "m", datasets=["charades"])
    assert set(report["datasets"]) == {"charades"}
    rows = {r["id"]: r for r in read(tmp_path / f"m/temporal/{LABEL}/fps5/charades/train.parquet").to_pylist()}
    assert (rows["k2"]["start_idx"], rows["k2"]["end_idx"], rows["k2"]["num_features"]) == (5, 11, 50)
    assert rows["k1"]["features_path"].endswith(f"clip_features/charades/{LABEL}/fps5/ok.npy")


@pytest.mark.parametrize(
    "breakage, blamed",
    [
        ("videos_folder", "temporal/Charades/videos"),
        ("features_folder", f"clip_features/charades/{LABEL}/fps10"),
        ("index", f"clip_features/charades/{LABEL}/fps10/index.parquet"),
        ("index_fps", f"clip_features/charades/{LABEL}/fps10/index.parquet"),
        ("index_columns", f"clip_features/charades/{LABEL}/fps10/index.parquet"),
        ("most_npy", f"clip_features/charades/{LABEL}/fps10"),
    ],
)
def test_temporal_structural_failures_name_the_file(tmp_path: Path, breakage: str, blamed: str) -> None:
    sj, root = temporal_tree(tmp_path)
    features = root / f"clip_features/charades/{LABEL}/fps10"
    if breakage == "videos_folder":
        shutil.rmtree(root / "temporal/Charades/videos")
    elif breakage == "features_folder":
        shutil.rmtree(features)
    elif breakage == "index":
        (features / "index.parquet").unlink()
    elif breakage == "index_fps":
        write_features(features, 5, {"ok": (10.0, 50, "ok", True)})
    elif breakage == "index_columns":
        pq.write_table(pa.table({"vid": ["ok"]}), features / "index.parquet")
    elif breakage == "most_npy":
        (features / "ok.npy").unlink()
    with pytest.raises(ManifestError) as caught:
        build_temporal_manifests(sj, root, LABEL, 10, tmp_path / "out")
    assert caught.value.file == f"{root.as_posix()}/{blamed}", str(caught.value)
    assert not (tmp_path / "out" / "temporal").exists()  # nothing written


def test_relative_roots_give_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    temporal_tree(tmp_path)
    spatial_tree(tmp_path / "s")
    monkeypatch.chdir(tmp_path)
    report = build_temporal_manifests("special_jsons", "data", LABEL, 10, "results/manifests")
    assert report["data_root"] == "data"
    rows = read(Path(f"results/manifests/temporal/{LABEL}/fps10/charades/train.parquet")).to_pylist()
    assert rows[0]["video_path"] == "data/temporal/Charades/videos/ok.mp4"
    assert rows[0]["features_path"] == f"data/clip_features/charades/{LABEL}/fps10/ok.npy"
    monkeypatch.chdir(tmp_path / "s")
    build_spatial_manifests("special_jsons", "data", "out")
    rows = read(Path("out/spatial/refcoco/train.parquet")).to_pylist()
    assert rows[0]["image_path"] == f"data/{COCO}/img0.jpg" and Path(rows[0]["image_path"]).is_file()


# ----------------------------------------------------------------------------- the index rule


def test_index_rule_examples() -> None:
    a, b = window_indices([1.1, 0.0, 0.3, 2.0, 0.0], [2.3, 0.1, 0.7, 2.05, 0.0], 10, [100, 100, 100, 100, 100])
    assert a.tolist() == [11, 0, 3, 20, 0] and b.tolist() == [22, 0, 6, 20, 0]
    a, b = window_indices([9.99], [10.0], 10, [100])  # clamped to T - 1
    assert (a.tolist(), b.tolist()) == ([99], [99])
    assert (
        feature_id("x.mov") == "x"
        and feature_id("AO8RW") == "AO8RW"
        and feature_id("a.b.MP4") == "a.b"
        and feature_id(".mp4") == ".mp4"
    )


@settings(max_examples=300, deadline=None)
@given(
    fps=st.sampled_from([1.0, 2.0, 2.5, 3.0, 5.0, 10.0, 24.0, 29.97, 30.0]),
    duration=st.integers(1, 4_000_000).map(lambda x: x / 10_000),
    a=st.floats(0, 1),
    b=st.floats(0, 1),
)
def test_index_rule_maps_back_to_seconds(fps: float, duration: float, a: float, b: float) -> None:
    start, end = sorted((round(a * duration, 6), round(b * duration, 6)))
    if end <= start or start >= duration:
        return
    T = feature_count(duration, fps)
    (i,), (j,) = window_indices([start], [end], fps, [T])
    tol = 1e-6 / fps
    assert 0 <= i <= j <= T - 1
    if i < T - 1:
        assert i / fps - tol <= start < (i + 1) / fps + tol
    if j < T - 1:
        assert j / fps - tol < end <= (j + 1) / fps + tol
    else:
        assert end > (T - 1) / fps - tol
    assert i == T - 1 or start < (i + 1) / fps + tol


# ----------------------------------------------------------------------------- schemas and report


@pytest.mark.parametrize("kind", ["image", "video", "temporal"])
def test_parquet_schema_matches_its_description(kind: str) -> None:
    spec = column_spec(kind)
    schema = SCHEMAS[kind]
    assert [c["name"] for c in spec["columns"]] == schema.names
    for column, field in zip(spec["columns"], schema):
        assert column["type"] == str(field.type), field.name
        assert column["nullable"] == field.nullable, field.name
        assert column["description"]
    assert schema.metadata[b"kind"] == kind.encode()


def test_written_files_have_the_fixed_schemas_and_requested_columns(tmp_path: Path) -> None:
    sj, root = spatial_tree(tmp_path / "s")
    build_spatial_manifests(sj, root, tmp_path / "out")
    sj, root = temporal_tree(tmp_path / "t")
    build_temporal_manifests(sj, root, LABEL, 10, tmp_path / "out")
    files = {
        IMAGE_SCHEMA: tmp_path / "out/spatial/refcoco/train.parquet",
        VIDEO_SCHEMA: tmp_path / "out/spatial/mevis/valid_u.parquet",
        TEMPORAL_SCHEMA: tmp_path / f"out/temporal/{LABEL}/fps10/charades/train.parquet",
    }
    for schema, path in files.items():
        assert pq.read_schema(path).equals(schema, check_metadata=True), path
    requested = {
        IMAGE_SCHEMA: "id dataset split image_id image_path width height ref_id ann_id sentence raw box",
        VIDEO_SCHEMA: "id dataset split video exp_id sentence frame_dir frames num_frames width height boxes "
        "num_objects type_id has_masks",
        TEMPORAL_SCHEMA: "id dataset split video sentence video_path features_path fps num_features duration start_s end_s "
        "start_idx end_idx window_as_written_start window_as_written_end fix",
    }
    for schema, names in requested.items():
        assert set(names.split()) <= set(schema.names)
    assert str(IMAGE_SCHEMA.field("box").type) == "fixed_size_list<element: double>[4]"
    assert str(VIDEO_SCHEMA.field("boxes").type) == "list<element: list<element: fixed_size_list<element: double>[4]>>"
    frame = pq.read_table(files[TEMPORAL_SCHEMA]).to_pandas()  # pandas reads them as well
    assert len(frame) == 8 and frame["start_idx"].dtype == np.int64


def test_report_json_matches_schema_and_markdown_is_readable(tmp_path: Path) -> None:
    sj, root = temporal_tree(tmp_path)
    out = tmp_path / "out"
    build_temporal_manifests(sj, root, LABEL, 10, out)
    folder = out / f"temporal/{LABEL}/fps10"
    report = json.loads((folder / "report.json").read_text())
    schema = json.loads((REPO / "workflow/schemas/manifests/report.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(report)
    for entry in report["datasets"].values():
        for s in entry["splits"].values():
            assert s["rows_in"] == s["kept"] + s["dropped"]["rows"]
            assert (folder / s["manifest"]).is_file()
    md = (folder / "report.md").read_text()
    assert "| charades | train | 16 | 8 | 3 | 8 | `charades/train.parquet` |" in md
    assert (
        "| dataset | split | missing_video | missing_features | features_short | zero_length_window | window_after_end |"
        in md
    )
    assert "| charades | train | 1 | 3 | 1 | 1 | 2 |" in md
    assert "| charades | train | 2 | 2 |" in md  # clipped: reordered, clipped_end
    assert "`novideo`" in md and "fps: 10" in md


# ----------------------------------------------------------------------------- CLI


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts/build_manifests.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_script_builds_and_reports_errors_cleanly(tmp_path: Path) -> None:
    sj, root = temporal_tree(tmp_path)
    spatial_tree(tmp_path / "s")
    done = run_script(
        "temporal",
        "--special-jsons",
        "special_jsons",
        "--data-root",
        "data",
        "--out-dir",
        "results/manifests",
        "--features-label",
        LABEL,
        "--fps",
        "10",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / f"results/manifests/temporal/{LABEL}/fps10/report.md").is_file()
    done = run_script(
        "spatial", "--special-jsons", "special_jsons", "--data-root", "data", "--out-dir", "out", cwd=tmp_path / "s"
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s/out/spatial/report.json").is_file()

    moved = tmp_path / "elsewhere"
    shutil.move(root / f"clip_features/charades/{LABEL}/fps10", moved)
    done = run_script(
        "temporal",
        "--special-jsons",
        "special_jsons",
        "--data-root",
        "data",
        "--out-dir",
        "o2",
        "--features-label",
        LABEL,
        "--fps",
        "10",
        cwd=tmp_path,
    )
    assert (
        done.returncode == 1
        and "ManifestError" in done.stderr
        and f"clip_features/charades/{LABEL}/fps10" in done.stderr
    )
    assert "Traceback" not in done.stderr
    done = run_script(
        "temporal",
        "--special-jsons",
        "special_jsons",
        "--data-root",
        "data",
        "--out-dir",
        "o2",
        "--features-label",
        LABEL,
        "--fps",
        "10",
        "--features",
        f"charades={moved}",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    row = read(tmp_path / f"o2/temporal/{LABEL}/fps10/charades/train.parquet").to_pylist()[0]
    assert row["features_path"] == f"{moved.as_posix()}/ok.npy"


# ----------------------------------------------------------------------------- a synthetic world, end to end


def test_manifests_of_a_generated_synthetic_tree(synthetic_build) -> None:
    tmp_path, world, special = synthetic_build["tmp"], synthetic_build["world"], synthetic_build["special"]
    spatial, temporal = synthetic_build["spatial"], synthetic_build["temporal"]
    built = {n for n, e in special["datasets"].items() if e["status"] == "built"}
    assert built == set(spatial["datasets"]) | set(temporal["datasets"])
    for report in (spatial, temporal):
        for name, entry in report["datasets"].items():
            assert entry["status"] == "built"
            for split, s in entry["splits"].items():
                assert s["rows_in"] == special["datasets"][name]["splits"][split]["counts"]["records"]
                assert s["dropped"]["rows"] == 0, (name, split, s["examples"])  # the world's flaws are all clippable
    for split in ("train", "valid"):
        counts = special["datasets"]["revos"]["splits"][split]["counts"]
        assert split_entry(spatial, "revos", split)["notes"].get("no_target_kept", 0) == counts["empty_expressions"]

    flaws = [f for f in world["flaws"] if f["dataset"] == "charades"]
    for split in ("train", "test"):
        by_reason = split_entry(temporal, "charades", split)["clipped"]["by_reason"]
        mine = [f for f in flaws if f"_{split}." in f["file"]]
        assert by_reason["reordered"] == sum(f["kind"] == "start_after_end" for f in mine)
        assert by_reason["clipped_end"] >= sum(f["kind"] == "end_after_video" for f in mine)
    folder = tmp_path / f"manifests/temporal/{LABEL}/fps10"
    rows = [r for split in ("train", "test") for r in read(folder / f"charades/{split}.parquet").to_pylist()]
    for flaw in flaws:
        (row,) = [
            r for r in rows if r["vid"] == flaw["video_id"] and r["window_as_written_start"] == flaw["written"][0]
        ]
        assert math.isclose(row["start_s"], flaw["true"][0]) and math.isclose(
            row["end_s"], flaw["true"][1], abs_tol=1e-3
        )
        assert math.isclose(row["duration"], flaw["duration"], abs_tol=1e-3)
    for r in rows:
        assert np.load(r["features_path"], mmap_mode="r").shape[0] == r["num_features"]
        assert 0 <= r["start_idx"] <= r["end_idx"] < r["num_features"]


def test_an_undefined_drop_or_clip_reason_is_an_error_even_under_python_O():
    """Reasons are checked with real errors, not `assert`: under -O the report must still refuse one it does
    not define (its counts would no longer add up)."""
    script = (
        "from sa2va_st.manifests.common import Tally\n"
        "t = Tally('temporal', 'charades', 'train')\n"
        "for call in (lambda: t.drop('typo_reason', 'q1', 'x'), lambda: t.keep(['clipped_start'])):\n"
        "    try:\n"
        "        call()\n"
        "    except ValueError as e:\n"
        "        print('refused:', e)\n"
    )
    run = subprocess.run([sys.executable, "-O", "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("refused:") == 2 and "typo_reason" in run.stdout and "clipped_start" in run.stdout


def test_a_two_object_expression_keeps_a_box_per_object_from_special_jsons_to_the_answer(synthetic_build):
    """A MeViS expression naming two objects: two boxes per frame in special_jsons and the manifest, one per
    visible object in the answer (joined by <box_sep>), and the decoder gives the manifest's boxes back."""
    from sa2va_st.datasets import VideoGroundingDataset
    from sa2va_st.formats import BOX_SEP_TOKEN, NO_BOX_TOKEN
    from sa2va_st.formats.boxes import decode_video_box_lists

    tmp_path = synthetic_build["tmp"]
    doc = json.loads((tmp_path / "special_jsons/mevis/train.json").read_text())
    pairs = [r for r in doc["records"] if len(r["anno_ids"]) == 2]
    assert pairs, "the synthetic world has multi-object MeViS expressions"
    singles = {
        tuple(r["anno_ids"]): r for r in doc["records"] if len(r["anno_ids"]) == 1 and r["video"] == pairs[0]["video"]
    }
    record = pairs[0]
    for t, frame in enumerate(record["boxes"]):
        assert len(frame) == 2  # one entry per object, in anno_ids order: each object's own box, not a hull
        for k, anno in enumerate(record["anno_ids"]):
            assert frame[k] == singles[(anno,)]["boxes"][t][0]
    manifest = tmp_path / "manifests/spatial/mevis/train.parquet"
    (row,) = [r for r in read(manifest).to_pylist() if r["id"] == record["id"]]
    assert row["boxes"] == record["boxes"] and row["num_objects"] == 2

    ds = VideoGroundingDataset(manifest, train=False, max_expressions=None)
    for i in range(len(ds)):
        item = ds[i]
        if record["id"] in item["ids"]:
            break
    turn = item["ids"].index(record["id"])
    answer, picks = item["answers"][turn], item["frame_indices"].tolist()
    decoded = decode_video_box_lists(answer, len(picks))
    both = 0
    for t, j in enumerate(picks):
        visible = [b for b in record["boxes"][j] if b is not None]
        assert len(decoded[t]) == len(visible)
        for got, box in zip(decoded[t], visible):
            np.testing.assert_allclose(got, box, atol=0.0005 + 1e-12)
        both += len(visible) == 2
    entries = answer.split("<next>")
    assert sum(e.count(BOX_SEP_TOKEN) == 1 for e in entries) == both > 0
    assert all((e == NO_BOX_TOKEN) == (len(d) == 0) for e, d in zip(entries, decoded))


def test_an_epoch_has_upstreams_number_of_items_on_the_synthetic_world(synthetic_build):
    """Items per epoch, dataset by dataset, as upstream counts them: one per image (RefCOCO family), one per
    clip (video datasets), one per query (temporal), each times its repeat factor."""
    from sa2va_st import catalog
    from sa2va_st.datasets import (
        ConcatTaskDataset,
        ImageGroundingDataset,
        TemporalGroundingDataset,
        VideoGroundingDataset,
    )

    tmp_path, world = synthetic_build["tmp"], synthetic_build["world"]
    manifests = tmp_path / "manifests"
    datasets = []
    expected = {}
    for entry in catalog.DATASETS:
        if entry.task == catalog.TEMPORAL_GROUNDING:
            path = manifests / f"temporal/{LABEL}/fps10/{entry.name}/train.parquet"
            datasets.append(TemporalGroundingDataset(path, train=True))
            expected[entry.name] = len(read(path))  # one item per query
        elif entry.task == catalog.VIDEO_GROUNDING:
            path = manifests / f"spatial/{entry.name}/train.parquet"
            datasets.append(VideoGroundingDataset(path, train=True))
            videos = world["datasets"][entry.name]["splits"]["train"]["video_count"]
            expected[entry.name] = videos  # one item per clip, whatever its number of expressions
            assert datasets[-1].num_expressions > videos
        else:
            path = manifests / f"spatial/{entry.name}/train.parquet"
            datasets.append(ImageGroundingDataset(path, train=True))
            expected[entry.name] = len({r["image_id"] for r in read(path).to_pylist()})  # one item per image
    mix = ConcatTaskDataset(datasets)
    sampler = mix.make_sampler(batch_size=1, repeats=catalog.upstream_repeats())
    assert sampler.samples_per_dataset() == {n: int(c * catalog.dataset(n).repeat) for n, c in expected.items()}
