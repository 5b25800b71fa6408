"""The synthetic world: exact layout, real formats, exact masks and event times, determinism, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import subprocess
import sys
import zipfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from sa2va_st.testing.world import generate as world_module
from sa2va_st.testing.world import generate_world, world_is_current
from sa2va_st.testing.world.shapes import place_shape

REPO = "hub/datasets/Dense-World/Sa2VA-Training"
DIDEMO_REPO = "hub/datasets/synthetic/didemo-annotations"
SEED = 0


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "seed0"
    generate_world(out, SEED)
    return out


@pytest.fixture(scope="module")
def world(world_dir: Path) -> dict:
    return json.loads((world_dir / "world.json").read_text())


@pytest.fixture(scope="module")
def mevis_zip(world_dir: Path) -> zipfile.ZipFile:
    parts = ["video_datas_mevis.z01", "video_datas_mevis.z02", "video_datas_mevis.zip"]
    joined = b"".join((world_dir / REPO / p).read_bytes() for p in parts)
    return zipfile.ZipFile(io.BytesIO(joined))


def tree_hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


class BuiltinsOnlyUnpickler(pickle.Unpickler):
    """Refuses every global: only builtin containers and scalars can be loaded."""

    def find_class(self, module: str, name: str):  # noqa: ANN201
        raise pickle.UnpicklingError(f"pickle refers to {module}.{name}; only builtins are allowed")


def load_builtin_pickle(data: bytes) -> object:
    return BuiltinsOnlyUnpickler(io.BytesIO(data)).load()


def only_builtins(value: object) -> bool:
    if isinstance(value, dict):
        return all(type(k) in (str, int) and only_builtins(v) for k, v in value.items())
    if isinstance(value, list):
        return all(only_builtins(v) for v in value)
    return value is None or type(value) in (str, int, float, bool)


def decode_segmentation(segmentation: list | dict, height: int, width: int) -> np.ndarray:
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    else:
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
    return mask_utils.decode(rle)


def polygon_mask(polygon: list[float], height: int, width: int) -> np.ndarray:
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([polygon], height, width)))


def mask_bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def shifted_and(mask: np.ndarray) -> np.ndarray:
    """4-neighbour erosion."""
    m = mask.astype(bool)
    eroded = m.copy()
    eroded[1:, :] &= m[:-1, :]
    eroded[:-1, :] &= m[1:, :]
    eroded[:, 1:] &= m[:, :-1]
    eroded[:, :-1] &= m[:, 1:]
    return eroded


def dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    m = mask.astype(bool)
    for _ in range(steps):
        grown = m.copy()
        grown[1:, :] |= m[:-1, :]
        grown[:-1, :] |= m[1:, :]
        grown[:, 1:] |= m[:, :-1]
        grown[:, :-1] |= m[:, 1:]
        m = grown
    return m


def assert_painted(image: np.ndarray, mask: np.ndarray, rgb: list[int], where: str) -> None:
    """The mask's inner pixels have the shape's colour; a ring just outside does not."""
    inner = shifted_and(mask)
    if inner.any():
        mean = image[inner].astype(float).mean(axis=0)
        assert np.abs(mean - rgb).max() < 20, f"{where}: inside colour {mean} != {rgb}"
    ring = dilate(mask, 2) & ~dilate(mask, 1)
    if ring.any():
        distance = np.abs(image[ring].astype(float) - rgb).max(axis=1)
        assert np.median(distance) > 60, f"{where}: the shape's colour leaks outside its mask"


def jpeg(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# ---------------------------------------------------------------- layout and archives


def test_exact_layout(world_dir: Path) -> None:
    expected = [
        "world.json",
        f"{REPO}/.gitattributes",
        f"{REPO}/README.md",
        f"{REPO}/ref_seg_coco.zip",
        f"{REPO}/ref_seg_coco_+.zip",
        f"{REPO}/ref_seg_coco_g.zip",
        f"{REPO}/video_datas_mevis.z01",
        f"{REPO}/video_datas_mevis.z02",
        f"{REPO}/video_datas_mevis.zip",
        f"{REPO}/video_datas_rvos.zip",
        f"{REPO}/sam_v_full.zip",
        f"{DIDEMO_REPO}/.gitattributes",
        f"{DIDEMO_REPO}/train_data.json",
        f"{DIDEMO_REPO}/val_data.json",
        f"{DIDEMO_REPO}/test_data.json",
        "static/charades/Charades_v1_480.zip",
        "static/charades/charades_sta_train.txt",
        "static/charades/charades_sta_test.txt",
        "manual/ReVOS/meta_expressions_train_.json",
        "manual/ReVOS/meta_expressions_valid_.json",
        "manual/ReVOS/mask_dict.json",
        "manual/ReVOS/mask_dict_foreground.json",
    ]
    for relative in expected:
        assert (world_dir / relative).is_file(), relative
    assert sorted(p.name for p in (world_dir / REPO).iterdir()) == sorted(
        Path(e).name for e in expected if e.startswith(REPO)
    )
    assert len(list((world_dir / "manual/didemo_videos").glob("*.mp4"))) >= 4
    assert len(list((world_dir / "manual/ReVOS/JPEGImages").iterdir())) >= 4
    total = sum(p.stat().st_size for p in world_dir.rglob("*") if p.is_file())
    assert total < 40 * 2**20


def test_gitattributes_mark_archives_as_lfs(world_dir: Path, world: dict) -> None:
    text = (world_dir / REPO / ".gitattributes").read_text()
    for pattern in ("*.zip", "*.z[0-9][0-9]", "*.mp4", "*.pkl", "*.p"):
        assert f"{pattern} filter=lfs diff=lfs merge=lfs -text" in text.splitlines()
    lfs = {(h["repo_id"], h["path"]): h["lfs"] for h in world["hub_files"]}
    assert lfs[("Dense-World/Sa2VA-Training", "video_datas_mevis.z01")]
    assert lfs[("Dense-World/Sa2VA-Training", "ref_seg_coco.zip")]
    assert not lfs[("Dense-World/Sa2VA-Training", "README.md")]
    assert not lfs[("synthetic/didemo-annotations", "train_data.json")]


def test_zips_have_fixed_metadata_and_sorted_entries(world_dir: Path) -> None:
    for path in [*(world_dir / REPO).glob("*.zip"), world_dir / "static/charades/Charades_v1_480.zip"]:
        if path.name == "video_datas_mevis.zip":
            continue  # the last part of a split archive, not a zip on its own
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            assert [i.filename for i in infos] == sorted(i.filename for i in infos), path.name
            assert {i.date_time for i in infos} == {(2024, 1, 1, 0, 0, 0)}, path.name
            assert archive.testzip() is None


def test_ref_seg_archive_entries(world_dir: Path) -> None:
    with zipfile.ZipFile(world_dir / REPO / "ref_seg_coco.zip") as z:
        names = set(z.namelist())
        assert {"ref_seg/refcoco/instances.json", "ref_seg/refcoco/refs(unc).p"} <= names
        images = [n for n in names if n.startswith("ref_seg/coco2014/train2014/") and n.endswith(".jpg")]
        assert images and all(Path(n).name.startswith("COCO_train2014_") and len(Path(n).stem) == 27 for n in images)
    with zipfile.ZipFile(world_dir / REPO / "ref_seg_coco_+.zip") as z:
        files = {n for n in z.namelist() if not n.endswith("/")}
        assert files == {"ref_seg/refcoco+/instances.json", "ref_seg/refcoco+/refs(unc).p"}
    with zipfile.ZipFile(world_dir / REPO / "ref_seg_coco_g.zip") as z:
        files = {n for n in z.namelist() if not n.endswith("/")}
        assert files == {"refcocog/instances.json", "refcocog/refs(umd).p"}


def test_split_parts_concatenate_to_one_valid_zip(mevis_zip: zipfile.ZipFile) -> None:
    assert mevis_zip.testzip() is None
    names = set(mevis_zip.namelist())
    for split in ("train", "valid_u"):
        assert f"mevis/{split}/meta_expressions.json" in names
        assert f"mevis/{split}/mask_dict.json" in names
        assert any(n.startswith(f"mevis/{split}/JPEGImages/") and n.endswith("/00000.jpg") for n in names)


def test_rvos_archive_entries(world_dir: Path) -> None:
    with zipfile.ZipFile(world_dir / REPO / "video_datas_rvos.zip") as z:
        names = set(z.namelist())
    assert {
        "rvos/meta_expressions/train/meta_expressions.json",
        "rvos/meta_expressions/valid/meta_expressions.json",
        "rvos/mask_dict.pkl",
    } <= names
    assert any(n.startswith("rvos/train/JPEGImages/") and n.endswith(".jpg") for n in names)


def test_large_unrelated_archive_is_incompressible(world_dir: Path) -> None:
    with zipfile.ZipFile(world_dir / REPO / "sam_v_full.zip") as z:
        (info,) = [i for i in z.infolist() if not i.is_dir()]
        assert info.file_size >= 8 * 2**20
        payload = z.read(info)
    import zlib

    assert len(zlib.compress(payload[: 1 << 20], 6)) > 0.99 * (1 << 20)


# ---------------------------------------------------------------- pickles


def test_pickles_hold_only_builtins(world_dir: Path) -> None:
    sources = [
        ("ref_seg_coco.zip", "ref_seg/refcoco/refs(unc).p"),
        ("ref_seg_coco_+.zip", "ref_seg/refcoco+/refs(unc).p"),
        ("ref_seg_coco_g.zip", "refcocog/refs(umd).p"),
        ("video_datas_rvos.zip", "rvos/mask_dict.pkl"),
    ]
    for archive, member in sources:
        with zipfile.ZipFile(world_dir / REPO / archive) as z:
            data = z.read(member)
        assert data[:2] == b"\x80\x04", f"{member}: not protocol 4"
        assert only_builtins(load_builtin_pickle(data)), member


def test_restricted_unpickler_refuses_globals() -> None:
    with pytest.raises(pickle.UnpicklingError):
        load_builtin_pickle(pickle.dumps(np.int64(3), protocol=4))


# ---------------------------------------------------------------- image referring datasets


def read_ref_dataset(world_dir: Path, summary: dict) -> tuple[dict, list[dict]]:
    with zipfile.ZipFile(world_dir / REPO / summary["archive"]) as z:
        instances = json.loads(z.read(summary["instances"]))
        refs = load_builtin_pickle(z.read(summary["refs"]))
    return instances, refs


@pytest.mark.parametrize("name", ["refcoco", "refcoco+", "refcocog"])
def test_ref_counts_and_links(world_dir: Path, world: dict, name: str) -> None:
    summary = world["datasets"][name]
    instances, refs = read_ref_dataset(world_dir, summary)
    assert len(instances["images"]) == summary["image_count"]
    assert len(instances["annotations"]) == summary["annotation_count"]
    assert len(refs) == summary["ref_count"]
    assert sum(len(r["sentences"]) for r in refs) == summary["sentence_count"]
    assert {a["iscrowd"] for a in instances["annotations"]} == {0, 1}
    annotations = {a["id"]: a for a in instances["annotations"]}
    image_ids = {im["id"] for im in instances["images"]}
    allowed_splits = {"train", "val", "test"} if name == "refcocog" else {"train", "val", "testA", "testB"}
    for ref in refs:
        assert set(ref) >= {
            "ref_id",
            "ann_id",
            "image_id",
            "category_id",
            "split",
            "sentences",
            "sent_ids",
            "file_name",
        }
        assert ref["split"] in allowed_splits
        assert annotations[ref["ann_id"]]["image_id"] == ref["image_id"] in image_ids
        assert annotations[ref["ann_id"]]["category_id"] == ref["category_id"]
        assert ref["sent_ids"] == [s["sent_id"] for s in ref["sentences"]]
        for sentence in ref["sentences"]:
            assert sentence["tokens"] == sentence["sent"].split() and sentence["raw"]
    if name == "refcoco+":
        location_words = {"left", "right", "top", "bottom", "middle"}
        assert not any(location_words & set(s["tokens"]) for r in refs for s in r["sentences"])
    with zipfile.ZipFile(world_dir / REPO / summary["images_archive"]) as z:
        present = set(z.namelist())
    assert all(f"{summary['images_dir']}/{im['file_name']}" in present for im in instances["images"])


def test_coco_masks_are_the_painted_shapes(world_dir: Path, world: dict) -> None:
    truth = {o["ann_id"]: (image, o) for image in world["ground_truth"]["images"] for o in image["objects"]}
    checked = set()
    with zipfile.ZipFile(world_dir / REPO / "ref_seg_coco.zip") as images_zip:
        for name in ("refcoco", "refcocog"):
            instances, _ = read_ref_dataset(world_dir, world["datasets"][name])
            by_id = {im["id"]: im for im in instances["images"]}
            for ann in instances["annotations"]:
                image, obj = truth[ann["id"]]
                info = by_id[ann["image_id"]]
                h, w = info["height"], info["width"]
                mask = decode_segmentation(ann["segmentation"], h, w)
                assert (mask == polygon_mask(obj["polygon"], h, w)).all(), ann["id"]
                assert isinstance(ann["segmentation"], dict) == (ann["iscrowd"] == 1) == (obj["segmentation"] == "rle")
                if isinstance(ann["segmentation"], dict):
                    assert isinstance(ann["segmentation"]["counts"], str)
                assert ann["bbox"] == mask_bbox(mask)
                assert ann["area"] == float(mask.sum())
                if ann["id"] not in checked:
                    pixels = jpeg(images_zip.read(f"ref_seg/coco2014/train2014/{info['file_name']}"))
                    assert pixels.shape == (h, w, 3)
                    assert_painted(pixels, mask, obj["rgb"], f"annotation {ann['id']}")
                    checked.add(ann["id"])


def test_refcoco_sentences_name_colour_and_shape(world_dir: Path, world: dict) -> None:
    truth = {o["ann_id"]: o for image in world["ground_truth"]["images"] for o in image["objects"]}
    _, refs = read_ref_dataset(world_dir, world["datasets"]["refcoco"])
    for ref in refs:
        obj = truth[ref["ann_id"]]
        assert all(obj["colour"] in s["tokens"] and obj["kind"] in s["tokens"] for s in ref["sentences"])


# ---------------------------------------------------------------- video referring datasets


def check_clip_masks(clip_truth: dict, masks_per_object: dict[int, list[dict | None]], read_frame, where: str) -> None:
    """Every per-frame RLE equals the shape at its recorded centre, is painted in the frame, and null iff absent."""
    h, w = clip_truth["height"], clip_truth["width"]
    for obj in clip_truth["objects"]:
        per_frame = masks_per_object[obj["anno_id"]]
        assert len(per_frame) == len(clip_truth["frames"])
        for k, (rle, (cx, cy), present) in enumerate(zip(per_frame, obj["centres"], obj["present"], strict=True)):
            expected = polygon_mask(list(place_shape(obj["kind"], obj["colour"], obj["radius"], cx, cy).polygon), h, w)
            if rle is None:
                assert not present and not expected.any(), f"{where}: null mask for a visible object"
                continue
            assert isinstance(rle["counts"], str) and rle["size"] == [h, w]
            mask = decode_segmentation(rle, h, w)
            assert mask.any() and present
            assert (mask == expected).all(), f"{where}: frame {k} mask is not the shape"
            assert mask_utils.toBbox({"size": rle["size"], "counts": rle["counts"].encode()}).tolist() == mask_bbox(
                mask
            )
            assert_painted(read_frame(clip_truth["frames"][k]), mask, obj["rgb"], f"{where} frame {k}")


@pytest.mark.parametrize("split", ["train", "valid_u"])
def test_mevis_split(mevis_zip: zipfile.ZipFile, world: dict, split: str) -> None:
    summary = world["datasets"]["mevis"]["splits"][split]
    meta = json.loads(mevis_zip.read(f"mevis/{split}/meta_expressions.json"))["videos"]
    masks = json.loads(mevis_zip.read(f"mevis/{split}/mask_dict.json"))
    assert len(meta) == summary["video_count"]
    assert sum(len(v["frames"]) for v in meta.values()) == summary["frame_count"]
    assert sum(len(v["expressions"]) for v in meta.values()) == summary["expression_count"]
    assert len(masks) == summary["mask_record_count"]
    assert sum(m is None for ms in masks.values() for m in ms) == summary["null_mask_count"] > 0
    for vid, video in meta.items():
        for exp in video["expressions"].values():
            assert len(exp["obj_id"]) == len(exp["anno_id"]) >= 1 and exp["exp"]
            assert all(str(a) in masks for a in exp["anno_id"])
        for frame in video["frames"]:
            assert f"mevis/{split}/JPEGImages/{vid}/{frame}.jpg" in mevis_zip.namelist()
        truth = world["ground_truth"]["video_objects"]["mevis"][split][vid]
        check_clip_masks(
            truth,
            {o["anno_id"]: masks[str(o["anno_id"])] for o in truth["objects"]},
            lambda f, vid=vid: jpeg(mevis_zip.read(f"mevis/{split}/JPEGImages/{vid}/{f}.jpg")),
            f"mevis {vid}",
        )


def test_mevis_server_split(mevis_zip: zipfile.ZipFile, world: dict) -> None:
    """MeViS valid as released: frames and sentences, no mask dict, no obj_id / anno_id."""
    summary = world["datasets"]["mevis"]["splits"]["valid"]
    meta = json.loads(mevis_zip.read("mevis/valid/meta_expressions.json"))["videos"]
    assert "mevis/valid/mask_dict.json" not in mevis_zip.namelist()
    assert len(meta) == summary["video_count"] > 0
    assert sum(len(v["expressions"]) for v in meta.values()) == summary["expression_count"]
    for vid, video in meta.items():
        assert all(set(e) == {"exp"} and e["exp"] for e in video["expressions"].values())
        for frame in video["frames"]:
            assert f"mevis/valid/JPEGImages/{vid}/{frame}.jpg" in mevis_zip.namelist()


def test_rvos(world_dir: Path, world: dict) -> None:
    summary = world["datasets"]["rvos"]
    with zipfile.ZipFile(world_dir / REPO / "video_datas_rvos.zip") as z:
        metas = {s: json.loads(z.read(summary["splits"][s]["meta"]))["videos"] for s in ("train", "valid")}
        masks = load_builtin_pickle(z.read("rvos/mask_dict.pkl"))
        for split, meta in metas.items():
            counts = summary["splits"][split]
            assert len(meta) == counts["video_count"]
            assert sum(len(v["expressions"]) for v in meta.values()) == counts["expression_count"]
            for vid, video in meta.items():
                # valid is released as its server sees it: sentences only
                keys = {"exp", "obj_id"} if split == "train" else {"exp"}
                assert all(
                    set(e) == keys and isinstance(e.get("obj_id", ""), str) for e in video["expressions"].values()
                )
                for frame in video["frames"]:
                    z.getinfo(f"{counts['frames_dir']}/{vid}/{frame}.jpg")
        assert list(masks) == list(range(summary["mask_record_count"]))
        assert sum(m is None for ms in masks.values() for m in ms) == summary["null_mask_count"] > 0
        counter = 0
        for vid in sorted(metas["train"]):
            truth = world["ground_truth"]["video_objects"]["rvos"]["train"][vid]
            expressions = metas["train"][vid]["expressions"]
            for exp_id in sorted(expressions, key=int):
                obj = truth["objects"][int(expressions[exp_id]["obj_id"]) - 1]
                check_clip_masks(
                    {**truth, "objects": [obj]},
                    {obj["anno_id"]: masks[counter]},
                    lambda f, vid=vid: jpeg(z.read(f"rvos/train/JPEGImages/{vid}/{f}.jpg")),
                    f"rvos {vid} expression {exp_id}",
                )
                counter += 1


def test_revos(world_dir: Path, world: dict) -> None:
    root = world_dir / "manual/ReVOS"
    summary = world["datasets"]["revos"]
    masks = json.loads((root / "mask_dict.json").read_text())
    foreground = json.loads((root / "mask_dict_foreground.json").read_text())
    assert len(masks) == summary["mask_record_count"]
    type_ids = set()
    for split in ("train", "valid"):
        meta = json.loads((root / f"meta_expressions_{split}_.json").read_text())["videos"]
        counts = summary["splits"][split]
        assert len(meta) == counts["video_count"]
        assert sum(len(v["expressions"]) for v in meta.values()) == counts["expression_count"]
        for vid, video in meta.items():
            truth = world["ground_truth"]["video_objects"]["revos"][split][vid]
            assert (video["height"], video["width"]) == (truth["height"], truth["width"])
            for exp in video["expressions"].values():
                type_ids.add(exp["type_id"])
                per_frame = [masks[str(a)] for a in exp["anno_id"]]
                if exp["type_id"] == 2:
                    assert all(m is None for frames in per_frame for m in frames)
            check_clip_masks(
                truth,
                {o["anno_id"]: masks[str(o["anno_id"])] for o in truth["objects"]},
                lambda f, vid=vid: jpeg((root / "JPEGImages" / vid / f"{f}.jpg").read_bytes()),
                f"revos {vid}",
            )
            union = np.zeros((truth["height"], truth["width"]), dtype=np.uint8)
            fg = foreground[vid]
            assert len(fg["masks_rle"]) == len(video["frames"]) == len(fg["foreground_ratio"])
            for k, rle in enumerate(fg["masks_rle"]):
                union[:] = 0
                for o in truth["objects"]:
                    if masks[str(o["anno_id"])][k] is not None:
                        union |= decode_segmentation(masks[str(o["anno_id"])][k], truth["height"], truth["width"])
                assert (decode_segmentation(rle, truth["height"], truth["width"]) == union).all()
    assert type_ids == {0, 1, 2}


# ---------------------------------------------------------------- videos and temporal annotations


def video_bytes(world_dir: Path, record: dict) -> bytes:
    if record["member"] is None:
        return (world_dir / record["path"]).read_bytes()
    with zipfile.ZipFile(world_dir / record["path"]) as z:
        return z.read(record["member"])


def test_video_set_covers_the_required_variety(world: dict) -> None:
    videos = world["videos"]
    charades = [v for v in videos if v["dataset"] == "charades"]
    didemo = [v for v in videos if v["dataset"] == "didemo"]
    assert len([v for v in charades if v["split"]]) >= 10 and len(didemo) >= 4
    assert all(len(v["video_id"]) == 5 and v["video_id"] == v["video_id"].upper() for v in charades)
    assert {v["fps_fraction"] for v in videos} >= {"24/1", "25/1", "30/1", "30000/1001"}
    assert sum(v["vfr"] for v in videos) == 1
    assert min(v["duration"] for v in videos) <= 2.0 and max(v["duration"] for v in videos) >= 90.0
    assert max(v["duration"] for v in didemo) <= 30.0
    assert all(v["width"] % 2 == 0 and v["height"] % 2 == 0 for v in videos)
    assert world["rotation"]["worked"] in (True, False)


def test_videos_decode_with_declared_timing(world_dir: Path, world: dict) -> None:
    for record in world["videos"]:
        with av.open(io.BytesIO(video_bytes(world_dir, record))) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert stream.codec_context.pix_fmt == "yuv420p"
            assert (stream.codec_context.width, stream.codec_context.height) == (record["width"], record["height"])
            assert float(stream.duration * stream.time_base) == pytest.approx(record["duration"], abs=1e-3)
            assert stream.frames == record["frame_count"]
            if not record["vfr"]:
                assert float(stream.average_rate) == pytest.approx(record["fps"], abs=1e-3)
            if record["vfr"] or record["duration"] <= 12:
                pts = [frame.pts for frame in container.decode(stream)]
                assert len(pts) == record["frame_count"]
                if record["vfr"]:
                    seconds = [float(p * stream.time_base) for p in pts]
                    declared = [float(p * Fraction(record["time_base"])) for p in record["pts"]]
                    assert seconds == pytest.approx(declared, abs=1e-6)
                    assert len(set(np.diff(pts).tolist())) > 1, "VFR video has regular frame gaps"


def test_rotation_is_reported_truthfully(world_dir: Path, world: dict) -> None:
    for video in world["rotation"]["videos"]:
        record = next(v for v in world["videos"] if v["video_id"] == video["video_id"])
        with av.open(io.BytesIO(video_bytes(world_dir, record))) as container:
            frame = next(container.decode(video=0))
        assert (frame.rotation == 90) == world["rotation"]["worked"]


def test_events_are_visible_exactly_in_their_windows(world_dir: Path, world: dict) -> None:
    short = [v for v in world["videos"] if v["duration"] <= 12.5 or v["vfr"]]
    assert short
    for record in short:
        with av.open(io.BytesIO(video_bytes(world_dir, record))) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                t = Fraction(frame.pts) * stream.time_base
                pixels = frame.to_ndarray(format="rgb24")
                for event in record["events"]:
                    # Windows are on a 0.1 s grid, or end with the video.
                    start = Fraction(round(event["start"] * 10), 10)
                    ends_with_video = event["end"] >= record["duration"]
                    visible = start <= t and (ends_with_video or t < Fraction(round(event["end"] * 10), 10))
                    x0, y0, x1, y1 = event["box_xyxy_coded"]
                    centre = pixels[(y0 + y1) // 2, (x0 + x1) // 2].astype(float)
                    distance = np.abs(centre - event["rgb"]).max()
                    assert (distance < 40) == visible, (record["video_id"], float(t), event)


def parse_charades_line(line: str) -> tuple[str, float, float, str]:
    head, sentence = line.split("##", 1)
    vid, start, end = head.split()
    return vid, float(start), float(end), sentence


def test_charades_sta_text_and_flaws(world_dir: Path, world: dict) -> None:
    summary = world["datasets"]["charades"]
    records = {v["video_id"]: v for v in world["videos"] if v["dataset"] == "charades"}
    flaws = {(f["file"], f["line"]): f for f in world["flaws"]}
    kinds = set()
    with zipfile.ZipFile(world_dir / summary["archive"]) as z:
        members = {n for n in z.namelist() if n.endswith(".mp4")}
        assert all(z.getinfo(n).compress_type == zipfile.ZIP_STORED for n in members)
    assert len(members) == summary["video_count"]
    for counts in summary["splits"].values():
        lines = (world_dir / counts["file"]).read_text().splitlines()
        assert len(lines) == counts["query_count"]
        assert len({parse_charades_line(text)[0] for text in lines}) == counts["video_count"]
        for number, line in enumerate(lines, start=1):
            vid, start, end, sentence = parse_charades_line(line)
            assert f"Charades_v1_480/{vid}.mp4" in members and sentence.endswith(".")
            event = next(e for e in records[vid]["events"] if e["sentence"] + "." == sentence)
            flaw = flaws.get((counts["file"], number))
            if flaw is None:
                assert (start, end) == (round(event["start"], 1), round(event["end"], 1))
                assert 0 <= start < end <= records[vid]["duration"] + 1e-9
                continue
            kinds.add(flaw["kind"])
            assert [start, end] == flaw["written"] and flaw["true"] == [event["start"], event["end"]]
            if flaw["kind"] == "end_after_video":
                assert end > records[vid]["duration"]
            else:
                assert start > end
    assert kinds == {"end_after_video", "start_after_end"}


def test_didemo_majority_window_is_the_event(world_dir: Path, world: dict) -> None:
    records = {v["video_id"] + ".mp4": v for v in world["videos"] if v["dataset"] == "didemo"}
    summary = world["datasets"]["didemo"]
    total = 0
    for counts in summary["splits"].values():
        entries = json.loads((world_dir / DIDEMO_REPO / counts["file"]).read_text())
        assert len(entries) == counts["annotation_count"]
        total += len(entries)
        for entry in entries:
            assert set(entry) == {"annotation_id", "description", "video", "times", "num_segments"}
            record = records[entry["video"]]
            assert (world_dir / "manual/didemo_videos" / entry["video"]).is_file()
            assert len(entry["times"]) == 4
            majority = max(entry["times"], key=entry["times"].count)
            assert entry["times"].count(majority) >= 3
            window = [5 * majority[0], min(5 * (majority[1] + 1), record["duration"])]
            event = next(e for e in record["events"] if e["sentence"] == entry["description"])
            assert window == pytest.approx([event["start"], event["end"]])
    assert total > 0


# ---------------------------------------------------------------- world.json bookkeeping


def test_world_json_lists_every_file_with_its_hash(world_dir: Path, world: dict) -> None:
    hashes = tree_hashes(world_dir)
    hashes.pop("world.json")
    assert {k: v["sha256"] for k, v in world["files"].items()} == hashes
    for record in world["hub_files"]:
        folder = REPO if record["repo_id"] == "Dense-World/Sa2VA-Training" else DIDEMO_REPO
        assert hashes[f"{folder}/{record['path']}"] == record["sha256"]
        assert (world_dir / folder / record["path"]).stat().st_size == record["size"]
    assert world["seed"] == SEED and world["generator_version"]
    assert set(world["datasets"]) == {"refcoco", "refcoco+", "refcocog", "mevis", "rvos", "revos", "charades", "didemo"}


# ---------------------------------------------------------------- determinism, atomicity, CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sa2va_st.testing", "world", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_help() -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and "--out" in result.stdout and "--seed" in result.stdout


def test_cli_same_seed_gives_identical_bytes_and_second_run_does_nothing(world_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli_world"
    first = run_cli("--out", str(out), "--seed", str(SEED))
    assert first.returncode == 0, first.stderr
    assert (out / "world.json").is_file()
    assert tree_hashes(out) == tree_hashes(world_dir)
    assert [p.name for p in tmp_path.iterdir()] == ["cli_world"], "staging folder left behind"
    second = run_cli("--out", str(out), "--seed", str(SEED))
    assert second.returncode == 0 and "nothing to do" in second.stdout


def test_different_seed_gives_a_different_world(world_dir: Path, tmp_path: Path) -> None:
    other = generate_world(tmp_path / "seed1", SEED + 1)
    assert other["seed"] == SEED + 1
    mine, theirs = tree_hashes(world_dir), tree_hashes(tmp_path / "seed1")
    assert mine["world.json"] != theirs["world.json"]
    common = set(mine) & set(theirs)
    assert sum(mine[k] != theirs[k] for k in common) > 0.9 * len(common) - 3  # fixed text files may match


def test_existing_foreign_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_world(out, SEED)
    assert (out / "keep.txt").read_text() == "mine"
    result = run_cli("--out", str(out))
    assert result.returncode == 2 and "--replace" in result.stderr


def test_failed_generation_leaves_no_half_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def write_then_fail(root: Path, seed: int, scale: object) -> dict:
        (root / "half.txt").write_text("partial")
        raise RuntimeError("killed")

    monkeypatch.setattr(world_module, "write_world", write_then_fail)
    with pytest.raises(RuntimeError):
        generate_world(tmp_path / "w", SEED)
    assert list(tmp_path.iterdir()) == []
    assert not world_is_current(tmp_path / "w", SEED)
