"""Spatial readers: masks, RefCOCO family, MeViS / ReVOS / Ref-YouTube-VOS, and the restricted unpickler.

Valid input comes from the synthetic world (boxes checked against its ground-truth polygons);
malformed input is made by editing copies of its files.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from sa2va_st.annotations import AnnotationError
from sa2va_st.annotations.masks import (
    check_rle,
    decode_counts_string,
    merge_empty_runs,
    normalise,
    polygons_rle,
    rle_box,
)
from sa2va_st.annotations.refcoco import read_refcoco, read_refs
from sa2va_st.annotations.video_refer import read_mevis_split, read_revos_split, read_rvos_split
from sa2va_st.data.pickles import UnsafePickleError, load_builtin_pickle
from sa2va_st.testing.sample_tree import synthetic_data_root
from sa2va_st.testing.world import generate_world
from sa2va_st.testing.world.shapes import place_shape

PIXEL_TOLERANCE = 1.0


@pytest.fixture(scope="module")
def world_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    base = tmp_path_factory.getbasetemp()
    world = generate_world(base / "annotations_world", seed=0)
    return world, synthetic_data_root(base / "annotations_world", base / "annotations_data_root")


@pytest.fixture
def world(world_root) -> dict:
    return world_root[0]


@pytest.fixture
def data_root(world_root) -> Path:
    return world_root[1]


def copy_tree(data_root: Path, relative: str, tmp_path: Path) -> Path:
    """A private copy of one dataset folder (for tests that break files)."""
    target = tmp_path / relative
    shutil.copytree(data_root / relative, target, ignore=shutil.ignore_patterns("*.jpg"))
    return target


def clip_polygon(points: list[tuple[float, float]], width: int, height: int) -> list[tuple[float, float]]:
    """Sutherland-Hodgman: the part of a polygon inside [0, width] x [0, height]."""
    edges = [(0, 0.0, True), (0, float(width), False), (1, 0.0, True), (1, float(height), False)]
    for axis, limit, keep_above in edges:
        inside = (lambda p, a=axis, v=limit: p[a] >= v) if keep_above else (lambda p, a=axis, v=limit: p[a] <= v)
        result = []
        for k, current in enumerate(points):
            previous = points[k - 1]
            if inside(current) != inside(previous):
                f = (limit - previous[axis]) / (current[axis] - previous[axis])
                result.append(
                    (previous[0] + f * (current[0] - previous[0]), previous[1] + f * (current[1] - previous[1]))
                )
            if inside(current):
                result.append(current)
        points = result
        if not points:
            break
    return points


def polygon_box(polygon: list[float], width: int, height: int) -> tuple[float, float, float, float]:
    """The box of the visible part of a ground-truth polygon (objects may be partly outside the frame)."""
    points = clip_polygon(list(zip(polygon[0::2], polygon[1::2])), width, height)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return (min(xs), min(ys), max(xs), max(ys))


def assert_box_close(box, expected, width: int, height: int, label: str) -> None:
    """Both on the pixel grid (edges are integers): the mask's box edges and the polygon's rounded extent."""
    pixels = [round(box[0] * width), round(box[1] * height), round(box[2] * width), round(box[3] * height)]
    edges = [round(v) for v in expected]
    assert all(abs(a - b) <= PIXEL_TOLERANCE for a, b in zip(pixels, edges)), f"{label}: {pixels} vs {expected}"


# ---------------------------------------------------------------- masks


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 12),
    st.integers(0, 2**31 - 1),
    st.floats(0.0, 1.0),
)
def test_rle_box_is_the_tight_box_of_the_decoded_mask(height: int, width: int, seed: int, density: float) -> None:
    mask = (np.random.default_rng(seed).random((height, width)) < density).astype(np.uint8)
    coco = mask_utils.encode(np.asfortranarray(mask))
    # the Python parser reads what pycocotools wrote, run for run
    counts = decode_counts_string(coco["counts"], file=Path("x"), key="k")
    flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8)
    assert np.array_equal(flat.reshape(width, height).T, mask)
    for form in (coco["counts"], coco["counts"].decode(), counts):
        rle = check_rle({"size": [height, width], "counts": form}, file=Path("x"), key="k")
        ys, xs = np.nonzero(mask)
        expected = None if not len(xs) else (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        assert rle_box(rle) == expected


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.binary(max_size=24), st.text(alphabet=[chr(c) for c in range(48, 112)], max_size=10).map(str.encode)),
    st.integers(1, 6),
    st.integers(1, 6),
)
def test_arbitrary_rle_strings_either_decode_exactly_or_are_refused(data: bytes, height: int, width: int) -> None:
    """Whatever the bytes, nothing reaches pycocotools unless its runs cover the mask exactly."""
    try:
        rle = check_rle({"size": [height, width], "counts": data}, file=Path("m.json"), key="k")
    except AnnotationError as error:
        assert "m.json" in str(error)
        return
    decoded = mask_utils.decode(rle.coco())
    assert decoded.shape == (height, width)
    ys, xs = np.nonzero(decoded)
    assert rle_box(rle) == (None if not len(xs) else (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.lists(st.integers(0, 5), max_size=12))
def test_runs_with_zero_lengths_give_the_box_of_their_pixels(height: int, width: int, runs: list[int]) -> None:
    pixels = height * width
    counts, total = [], 0
    for run in runs:
        run = min(run, pixels - total)
        counts.append(run)
        total += run
    counts.append(pixels - total)
    expected_mask = np.repeat(np.arange(len(counts)) % 2, counts).reshape(width, height).T
    ys, xs = np.nonzero(expected_mask)
    expected = None if not len(xs) else (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    compressed = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)["counts"]
    for form in (counts, compressed):
        assert rle_box(check_rle({"size": [height, width], "counts": form}, file=Path("x"), key="k")) == expected


def test_zero_length_runs_do_not_grow_the_box() -> None:
    # 3 zeros, 0 ones, 2 zeros, 1 one, rest zeros: only pixel 5 is set (column 1, row 1 of a 4x3 mask)
    rle = check_rle({"size": [4, 3], "counts": [3, 0, 2, 1, 6]}, file=Path("x"), key="k")
    assert rle_box(rle) == (1, 1, 2, 2)
    assert merge_empty_runs([3, 0, 2, 1, 6]) == [5, 1, 6]
    assert merge_empty_runs([0, 0, 5]) == [5]
    assert merge_empty_runs([2, 3, 0]) == [2, 3]
    assert rle_box(check_rle({"size": [2, 2], "counts": [4, 0]}, file=Path("x"), key="k")) is None


@pytest.mark.parametrize(
    "rle, message",
    [
        ({"size": [4, 4], "counts": [3, 2]}, "cover 5 pixels"),
        ({"size": [4, 4], "counts": "\x01\x02"}, "outside the COCO alphabet"),
        ({"size": [4, 4], "counts": "g"}, "ends in the middle"),
        ({"size": [4, 4], "counts": [10, -2, 8]}, "negative"),
        ({"size": [4, 4], "counts": [20, -4]}, "longer than the mask's 16 pixels"),
        ({"size": [4, 4], "counts": "1"}, "cover 1 pixels"),
        ({"size": [4], "counts": [16]}, "height, width"),
        ({"size": [4, 4], "counts": 7}, "expected a string or a list"),
        ({"counts": "abc"}, "'size' and 'counts'"),
        ([1, 2, 3], "must be an RLE object"),
    ],
)
def test_undecodable_rle_is_refused_with_its_key(rle, message: str) -> None:
    with pytest.raises(AnnotationError) as error:
        check_rle(rle, file=Path("masks.json"), key="7[3]")
    assert message in str(error.value) and "masks.json" in str(error.value) and "7[3]" in str(error.value)


def test_mask_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(AnnotationError, match="mask is 4x4"):
        check_rle({"size": [4, 4], "counts": [16]}, file=Path("x"), key="k", size=(4, 5))


def test_polygons_and_normalised_boxes() -> None:
    rle, degenerate = polygons_rle([[2, 1, 7, 1, 7, 4, 2, 4], [0, 0, 1, 1]], 10, 20, file=Path("x"), key="k")
    assert degenerate == 1  # a 2-point part has no area (pycocotools would read it as a box)
    box = rle_box(rle)
    decoded = mask_utils.decode(rle.coco())
    ys, xs = np.nonzero(decoded)
    assert box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    assert normalise((0, 0, 20, 10), 20, 10) == (0.0, 0.0, 1.0, 1.0)
    assert normalise((1, 1, 3, 3), 3, 7) == (0.333333, 0.142857, 1.0, 0.428571)
    with pytest.raises(AnnotationError, match="x, y pairs"):
        polygons_rle([[1, 2, 3]], 10, 10, file=Path("inst.json"), key="annotations[id=5].segmentation")


# ---------------------------------------------------------------- restricted unpickler


class RunsShell:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_pickle_asking_for_os_system_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 1, "x": RunsShell(f"touch {marker}")}], protocol=2))
    with pytest.raises(UnsafePickleError) as error:
        load_builtin_pickle(path)
    assert "os.system" in str(error.value) or "posix.system" in str(error.value)
    assert str(path) in str(error.value)
    with pytest.raises(UnsafePickleError):
        read_refs(path)  # the reader lets the refusal through, file named
    assert not marker.exists()


def test_pickle_allows_builtins_and_plain_numpy(tmp_path: Path) -> None:
    data = {"a": [1, 2.5, "x", b"y", None, (1, 2)], "s": {1, 2}, "n": np.arange(3), "i": np.int64(7)}
    for protocol in (2, 4, 5):
        path = tmp_path / f"ok{protocol}.pkl"
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        loaded = load_builtin_pickle(path)
        assert loaded["a"] == data["a"] and loaded["s"] == {1, 2} and loaded["i"] == 7
        assert np.array_equal(loaded["n"], np.arange(3))


def test_truncated_pickle_is_an_annotation_error(tmp_path: Path) -> None:
    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([{"ref_id": 1}] * 10, protocol=4)[:-7])
    with pytest.raises(AnnotationError, match="not a readable pickle") as error:
        read_refs(path)
    assert str(path) in str(error.value)


# ---------------------------------------------------------------- RefCOCO family


@pytest.mark.parametrize("name", ["refcoco", "refcoco+", "refcocog"])
def test_refcoco_boxes_and_counts_match_the_world(world: dict, data_root: Path, name: str) -> None:
    data = read_refcoco(data_root / "refer_seg" / name, name)
    summary = world["datasets"][name]
    truth = {o["ann_id"]: (im, o) for im in world["ground_truth"]["images"] for o in im["objects"]}
    assert len(data.expressions) == summary["sentence_count"]
    for split, expected in summary["splits"].items():
        assert data.counts[split]["records"] == expected["sentences"]
        assert data.counts[split]["refs"] == expected["refs"]
        assert data.counts[split]["images"] == expected["images"]
    assert sum(c["rle_masks"] for c in data.counts.values()) > 0  # both storage forms were decoded
    assert sum(c["polygon_masks"] for c in data.counts.values()) > 0
    for e in data.expressions:
        image, obj = truth[e.ann_id]
        assert (e.width, e.height, e.file_name) == (image["width"], image["height"], image["file_name"])
        assert all(0.0 <= v <= 1.0 for v in e.box)
        assert_box_close(e.box, polygon_box(obj["polygon"], e.width, e.height), e.width, e.height, f"ann {e.ann_id}")


def break_refs(folder: Path, edit) -> None:
    refs_path = next(folder.glob("refs(*).p"))
    refs = load_builtin_pickle(refs_path)
    edit(refs)
    refs_path.write_bytes(pickle.dumps(refs, protocol=2))


@pytest.mark.parametrize(
    "edit, message, key",
    [
        (lambda refs: refs[3].pop("ann_id"), "missing key 'ann_id'", "[3].ann_id"),
        (lambda refs: refs[2].__setitem__("image_id", "12"), "'image_id' is a str", "[2].image_id"),
        (
            lambda refs: refs[1].__setitem__("ann_id", 1),
            "annotation 1, which instances.json does not list",
            "ref_id=1.ann_id",
        ),
        (
            lambda refs: refs[0].__setitem__("image_id", 5),
            "image 5, which instances.json does not list",
            "ref_id=0.image_id",
        ),
        (lambda refs: refs[4]["sentences"][0].pop("sent_id"), "missing key 'sent_id'", "[4].sentences[0].sent_id"),
    ],
)
def test_malformed_refs_name_file_and_key(data_root: Path, tmp_path: Path, edit, message: str, key: str) -> None:
    folder = copy_tree(data_root, "refer_seg/refcoco", tmp_path)
    break_refs(folder, edit)
    with pytest.raises(AnnotationError) as error:
        read_refcoco(folder, "refcoco")
    text = str(error.value)
    assert message in text and "refs(unc).p" in text and f"key: {key}" in text and "fix:" in text


def test_malformed_instances_name_file_and_key(data_root: Path, tmp_path: Path) -> None:
    folder = copy_tree(data_root, "refer_seg/refcoco", tmp_path)
    instances = json.loads((folder / "instances.json").read_text())
    referred = {r["ann_id"] for r in load_builtin_pickle(folder / "refs(unc).p")}
    crowd = next(a for a in instances["annotations"] if isinstance(a["segmentation"], dict) and a["id"] in referred)
    crowd["segmentation"]["counts"] = "0" * 3  # three runs of length 0: not the image's pixel count
    (folder / "instances.json").write_text(json.dumps(instances))
    with pytest.raises(AnnotationError, match="RLE runs cover") as error:
        read_refcoco(folder, "refcoco")
    assert f"annotations[id={crowd['id']}].segmentation" in str(error.value) and "instances.json" in str(error.value)
    del instances["images"][0]["width"]
    (folder / "instances.json").write_text(json.dumps(instances))
    with pytest.raises(AnnotationError, match="missing key 'width'") as error:
        read_refcoco(folder, "refcoco")
    assert "images[0].width" in str(error.value)
    (folder / "instances.json").write_text('{"images": [')
    with pytest.raises(AnnotationError, match="not valid JSON"):
        read_refcoco(folder, "refcoco")


def test_missing_refs_file_says_what_it_looked_for(tmp_path: Path) -> None:
    (tmp_path / "refcocog").mkdir()
    with pytest.raises(AnnotationError, match=r"expected refs\(umd\)\.p"):
        read_refcoco(tmp_path / "refcocog", "refcocog")


# ---------------------------------------------------------------- video datasets


def object_box(obj: dict, t: int, width: int, height: int):
    if not obj["present"][t]:
        return None
    cx, cy = obj["centres"][t]
    return polygon_box(list(place_shape(obj["kind"], obj["colour"], obj["radius"], cx, cy).polygon), width, height)


def check_against_truth(records, truth: dict, objects_of) -> int:
    """Every object's per-frame box within a pixel of its ground-truth polygon's (objects in the record's
    order, one box each: never their hull); returns the frames checked."""
    checked = 0
    for r in records:
        clip = truth[r.video]
        assert list(r.frames) == clip["frames"] and (r.width, r.height) == (clip["width"], clip["height"])
        objects = objects_of(r, clip)
        for t, frame in enumerate(r.boxes):
            if not objects:  # ReVOS no-target: a ghost object, absent from every frame
                assert all(b is None for b in frame), f"{r.video}/{r.exp_id} frame {t}"
                continue
            assert len(frame) == len(objects), f"{r.video}/{r.exp_id} frame {t}: one entry per object"
            for k, (box, obj) in enumerate(zip(frame, objects)):
                expected = object_box(obj, t, r.width, r.height)
                where = f"{r.video}/{r.exp_id} frame {t} object {k}"
                if expected is None:
                    assert box is None, where
                else:
                    assert_box_close(box, expected, r.width, r.height, where)
            checked += 1
    return checked


def by_anno_id(record, clip):
    """The ground-truth objects of a record, in the record's anno_ids order."""
    by_id = {str(o["anno_id"]): o for o in clip["objects"]}
    return [by_id[a] for a in record.anno_ids if a in by_id]


@pytest.mark.parametrize("split", ["train", "valid_u"])
def test_mevis_boxes_and_counts_match_the_world(world: dict, data_root: Path, split: str) -> None:
    result = read_mevis_split(data_root / "video_datas/mevis" / split)
    summary = world["datasets"]["mevis"]["splits"][split]
    assert result.counts["records"] == summary["expression_count"]
    assert result.counts["videos"] == summary["video_count"] and result.counts["frames"] == summary["frame_count"]
    assert len(result.mask_keys) == summary["mask_record_count"] and result.used_mask_keys == result.mask_keys
    truth = world["ground_truth"]["video_objects"]["mevis"][split]
    assert result.counts["multi_object_expressions"] == sum(len(r.anno_ids) > 1 for r in result.records) > 0
    assert check_against_truth(result.records, truth, by_anno_id) == result.counts["box_frames"]
    assert result.counts["empty_boxes"] > 0  # objects that leave the frame


@pytest.mark.parametrize("split", ["train", "valid"])
def test_revos_boxes_type_ids_and_counts_match_the_world(world: dict, data_root: Path, split: str) -> None:
    result = read_revos_split(data_root / "video_datas/ReVOS", split)
    summary = world["datasets"]["revos"]["splits"][split]
    assert result.counts["records"] == summary["expression_count"]
    assert {t: result.counts[f"type_id_{t}"] for t in (0, 1, 2)} == {
        int(k): v for k, v in summary["expression_count_by_type_id"].items()
    }
    no_target = [r for r in result.records if r.type_id == 2]
    assert no_target and all(all(b is None for frame in r.boxes for b in frame) for r in no_target)
    assert result.counts["empty_expressions"] == len(no_target)
    truth = world["ground_truth"]["video_objects"]["revos"][split]
    check_against_truth(result.records, truth, by_anno_id)
    assert any(len(r.anno_ids) == 2 and r.type_id == 0 for r in result.records)  # ReVOS refers to several too


def test_rvos_keys_follow_the_documented_order(world: dict, data_root: Path) -> None:
    assert "sorted video ids, then expression ids sorted numerically" in world["datasets"]["rvos"]["mask_dict_keys"]
    root = data_root / "video_datas/rvos"
    result = read_rvos_split(root, "train", root / "mask_dict.pkl")
    summary = world["datasets"]["rvos"]["splits"]["train"]
    assert result.counts["records"] == summary["expression_count"] == world["datasets"]["rvos"]["mask_record_count"]
    assert [r.anno_ids for r in result.records] == [(str(k),) for k in range(len(result.records))]
    truth = world["ground_truth"]["video_objects"]["rvos"]["train"]
    check_against_truth(result.records, truth, lambda r, clip: [clip["objects"][int(r.obj_ids[0]) - 1]])
    valid = read_rvos_split(root, "valid")
    assert valid.counts["records"] == world["datasets"]["rvos"]["splits"]["valid"]["expression_count"]
    assert all(r.boxes is None for r in valid.records)


def test_rvos_key_orders_agree_on_the_world_and_differ_where_documented(data_root: Path, tmp_path: Path) -> None:
    root = data_root / "video_datas/rvos"
    upstream = read_rvos_split(root, "train", root / "mask_dict.pkl")
    world_order = read_rvos_split(root, "train", root / "mask_dict.pkl", key_order="sorted_numeric")
    assert upstream.records == world_order.records  # videos listed sorted, < 10 expressions each
    # where they differ: videos not listed in sorted order, a video with 11 expressions
    meta = {
        "videos": {
            "b": {"frames": ["00000"], "expressions": {str(k): {"exp": f"e{k}", "obj_id": "1"} for k in range(11)}},
            "a": {"frames": ["00000"], "expressions": {"0": {"exp": "x", "obj_id": "1"}}},
        }
    }
    (tmp_path / "meta_expressions/train").mkdir(parents=True)
    (tmp_path / "meta_expressions/train/meta_expressions.json").write_text(json.dumps(meta))
    masks = {k: [{"size": [2, 2], "counts": [k % 4, 1, 3 - k % 4]}] for k in range(12)}
    (tmp_path / "mask_dict.pkl").write_bytes(pickle.dumps(masks))
    keys = {}
    for order in ("upstream", "sorted_numeric"):
        records = read_rvos_split(tmp_path, "train", tmp_path / "mask_dict.pkl", order).records
        keys[order] = {f"{r.video}/{r.exp_id}": r.anno_ids[0] for r in records}
    # upstream: file order (b first), ids as strings (0, 1, 10, 2, ...); world: a first, ids numerically
    assert keys["upstream"]["b/0"] == "0" and keys["upstream"]["b/10"] == "2" and keys["upstream"]["a/0"] == "11"
    assert (
        keys["sorted_numeric"]["a/0"] == "0"
        and keys["sorted_numeric"]["b/10"] == "11"
        and keys["sorted_numeric"]["b/2"] == "3"
    )


def test_rvos_pickle_of_another_split_is_refused(data_root: Path, tmp_path: Path) -> None:
    root = data_root / "video_datas/rvos"
    masks = load_builtin_pickle(root / "mask_dict.pkl")
    expressions = len(masks)  # the train split's, one mask list per expression
    masks[len(masks) + 3] = masks[0]
    bad = tmp_path / "mask_dict.pkl"
    bad.write_bytes(pickle.dumps(masks, protocol=4))
    with pytest.raises(AnnotationError, match=f"need keys 0..{expressions - 1}") as error:
        read_rvos_split(root, "train", bad)
    assert str(bad) in str(error.value)


def edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def first_video(meta: dict) -> dict:
    return meta["videos"][sorted(meta["videos"])[0]]


@pytest.mark.parametrize(
    "target, edit, message, key",
    [
        ("mask_dict.json", lambda m: m["1"].pop(), "has 11 frames but", "key: 1"),
        ("mask_dict.json", lambda m: m.pop("2"), "mask entry 2 is missing", "key: 2"),
        ("mask_dict.json", lambda m: m["1"].__setitem__(0, {"size": [72, 128], "counts": "oops"}), "RLE", "key: 1[0]"),
        (
            "mask_dict.json",
            lambda m: m["1"].__setitem__(1, {"size": [70, 128], "counts": [8960]}),
            "expected 72x128",
            "key: 1[1]",
        ),
        (
            "mask_dict.json",
            lambda m: m.__setitem__("2", [{"size": [70, 128], "counts": [8960]}] * len(m["2"])),
            "different sizes",
            "videos.",
        ),
        (
            "meta_expressions.json",
            lambda m: first_video(m)["expressions"]["0"].pop("anno_id"),
            "missing key 'anno_id'",
            ".expressions.0.anno_id",
        ),
        (
            "meta_expressions.json",
            lambda m: first_video(m)["expressions"]["0"].__setitem__("exp", 3),
            "'exp' is a int",
            ".expressions.0.exp",
        ),
        ("meta_expressions.json", lambda m: first_video(m).pop("frames"), "missing key 'frames'", ".frames"),
        ("meta_expressions.json", lambda m: m.pop("videos"), "missing key 'videos'", "key: videos"),
    ],
)
def test_malformed_mevis_names_file_and_key(
    data_root: Path, tmp_path: Path, target: str, edit, message: str, key: str
) -> None:
    split = copy_tree(data_root, "video_datas/mevis/train", tmp_path)
    edit_json(split / target, edit)
    with pytest.raises(AnnotationError) as error:
        read_mevis_split(split)
    text = str(error.value)
    assert message in text and key in text and "fix:" in text
    assert target in text or "mask_dict.json" in text  # the file that is wrong (or the masks that disagree)


def test_mask_dict_may_be_a_pickle(data_root: Path, tmp_path: Path) -> None:
    split = copy_tree(data_root, "video_datas/mevis/train", tmp_path)
    masks = json.loads((split / "mask_dict.json").read_text())
    (split / "mask_dict.pkl").write_bytes(pickle.dumps({int(k): v for k, v in masks.items()}, protocol=4))
    (split / "mask_dict.json").unlink()
    from_pickle = read_mevis_split(split)
    from_json = read_mevis_split(data_root / "video_datas/mevis/train")
    assert [r.boxes for r in from_pickle.records] == [r.boxes for r in from_json.records]
    assert from_pickle.mask_file.name == "mask_dict.pkl"


def test_revos_bad_type_id_and_unannotated_split(data_root: Path, tmp_path: Path) -> None:
    root = copy_tree(data_root, "video_datas/ReVOS", tmp_path)
    edit_json(
        root / "meta_expressions_valid_.json", lambda m: first_video(m)["expressions"]["0"].__setitem__("type_id", 5)
    )
    with pytest.raises(AnnotationError, match="type_id 5 is not one of") as error:
        read_revos_split(root, "valid")
    assert "meta_expressions_valid_.json" in str(error.value) and ".expressions.0.type_id" in str(error.value)
    (root / "mask_dict.json").unlink()
    train = read_revos_split(root, "train")
    assert train.mask_file is None and all(r.boxes is None for r in train.records)
    assert all((r.width, r.height) != (None, None) for r in train.records)  # ReVOS states the size
