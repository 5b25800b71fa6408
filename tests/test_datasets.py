"""Datasets over the manifests: items, answers, sampling rules, determinism, errors (sa2va_st.datasets)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from sa2va_st.catalog import IMAGE_GROUNDING, TEMPORAL_GROUNDING, VIDEO_GROUNDING
from sa2va_st.datasets import (
    ConcatTaskDataset,
    DatasetError,
    ImageGroundingDataset,
    TemporalGroundingDataset,
    VideoGroundingDataset,
    collate_keep_lists,
)
from sa2va_st.datasets.image import training_sentence
from sa2va_st.datasets.sampler import TaskGroupedBatchSampler
from sa2va_st.errors import Sa2vaError
from sa2va_st.formats import BOX_SEP_TOKEN, NEXT_TOKEN, NO_BOX_TOKEN, ParseFailure
from sa2va_st.formats.boxes import decode_boxes, decode_video_box_lists
from sa2va_st.formats.windows import decode_window_tokens, indices_to_window, sample_positions

BOX = pa.list_(pa.field("element", pa.float64()), 4)  # fixed-size, as the manifests stage writes it

IMAGE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("dataset", pa.string()),
        ("split", pa.string()),
        ("image_id", pa.int64()),
        ("image_path", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("ref_id", pa.int64()),
        ("ann_id", pa.int64()),
        ("sentence", pa.string()),
        ("raw", pa.string()),
        ("box", BOX),
    ]
)
VIDEO_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("dataset", pa.string()),
        ("split", pa.string()),
        ("video", pa.string()),
        ("exp_id", pa.string()),
        ("sentence", pa.string()),
        ("frame_dir", pa.string()),
        ("frames", pa.list_(pa.string())),
        ("num_frames", pa.int64()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("boxes", pa.list_(pa.list_(BOX))),  # per frame, per object
        ("num_objects", pa.int64()),
        ("type_id", pa.int64()),
        ("has_masks", pa.bool_()),
    ]
)
TEMPORAL_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("dataset", pa.string()),
        ("split", pa.string()),
        ("video", pa.string()),
        ("sentence", pa.string()),
        ("video_path", pa.string()),
        ("features_path", pa.string()),
        ("fps", pa.float64()),
        ("num_features", pa.int64()),
        ("duration", pa.float64()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("start_idx", pa.int64()),
        ("end_idx", pa.int64()),
    ]
)


def write_manifest(path: Path, rows: list[dict], schema: pa.Schema) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def solid_jpeg(path: Path, size: tuple[int, int], colour: tuple[int, int, int], mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, quality=95)


def frame_colour(j: int) -> tuple[int, int, int]:
    """Frame j of a clip is a solid colour that encodes j (robust to JPEG)."""
    return (min(255, 20 * j), 128, 255 - min(255, 20 * j))


def random_box(rng: np.random.Generator) -> list[float]:
    x = np.sort(rng.uniform(0, 1, 2))
    y = np.sort(rng.uniform(0, 1, 2))
    return [float(x[0]), float(y[0]), float(x[1]), float(y[1])]


# ----------------------------------------------------------------------------- the world


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(7)
    out: dict = {"root": root}

    # images: refcoco has image A (7 expressions, 40x30 red) and B (2, grayscale 24x20); refcoco+ reuses A
    img_a, img_b = root / "coco" / "a.jpg", root / "coco" / "b.jpg"
    solid_jpeg(img_a, (40, 30), (200, 30, 30))
    solid_jpeg(img_b, (24, 20), (90, 90, 90), mode="L")
    rows = []
    for k in range(7):
        rows.append(
            dict(
                id=f"rc-a{k}",
                dataset="refcoco",
                split="train",
                image_id=1,
                image_path=str(img_a),
                width=40,
                height=30,
                ref_id=100 + k,
                ann_id=1000 + k,
                sentence=f"thing a{k}",
                raw=f"The  Thing A{k}.",
                box=random_box(rng),
            )
        )
    # a second sentence of ref 100: training takes at most one sentence per ref
    rows.append(dict(rows[0], id="rc-a0-bis", sentence="thing a0 bis", raw="Thing A0, once more."))
    for k in range(2):
        rows.append(
            dict(
                id=f"rc-b{k}",
                dataset="refcoco",
                split="train",
                image_id=2,
                image_path="coco/b.jpg",
                width=24,
                height=20,
                ref_id=200 + k,
                ann_id=2000 + k,
                sentence=f"thing b{k}",
                raw=f"thing b{k}",
                box=random_box(rng),
            )
        )
    rows.insert(3, rows.pop())  # interleave: grouping must not rely on order
    out["image_rows"] = rows
    out["refcoco"] = write_manifest(root / "manifests" / "refcoco_train.parquet", rows, IMAGE_SCHEMA)
    plus = [dict(r, id=f"rp-{r['id']}", dataset="refcoco+") for r in rows if r["image_id"] == 1][:3]
    out["refcoco+"] = write_manifest(root / "manifests" / "refcoco+_train.parquet", plus, IMAGE_SCHEMA)

    # videos: clip1 has 10 frames (16x12), clip2 has 3 frames
    def clip(name: str, n: int) -> tuple[str, list[str]]:
        d = root / "frames" / name
        names = [f"{j:05d}.jpg" for j in range(n)]
        for j, f in enumerate(names):
            solid_jpeg(d / f, (16, 12), frame_colour(j))
        return str(d), names

    d1, f1 = clip("clip1", 10)
    d2, f2 = clip("clip2", 3)
    boxes1 = [None if j in (2, 3, 7) else random_box(rng) for j in range(10)]
    boxes2 = [random_box(rng), None, random_box(rng)]
    other = [None if j in (3, 4) else random_box(rng) for j in range(10)]  # a second object of clip1

    def objects(*per_object):  # per-object per-frame boxes -> per frame, per object
        return [list(frame) for frame in zip(*per_object)]

    common = dict(split="train", width=16, height=12, has_masks=True, type_id=None, num_objects=1)
    vrows = [
        dict(
            common,
            id="mv-0",
            dataset="mevis",
            video="clip1",
            exp_id="0",
            sentence="the moving one",
            frame_dir=d1,
            frames=f1,
            num_frames=10,
            boxes=objects(boxes1),
        ),
        dict(
            common,
            id="mv-1",
            dataset="mevis",
            video="clip2",
            exp_id="0",
            sentence="short clip",
            frame_dir=d2,
            frames=f2,
            num_frames=3,
            boxes=objects(boxes2),
        ),
        dict(
            common,
            id="mv-2",
            dataset="mevis",
            video="clip1",
            exp_id="1",
            sentence="never there",
            frame_dir=d1,
            frames=f1,
            num_frames=10,
            boxes=objects([None] * 10),
        ),
        dict(
            common,
            id="mv-3",
            dataset="mevis",
            video="clip1",
            exp_id="2",
            sentence="the moving one and the other one",
            frame_dir=d1,
            frames=f1,
            num_frames=10,
            boxes=objects(boxes1, other),
            num_objects=2,
        ),
    ]
    out["video_rows"] = vrows
    out["mevis"] = write_manifest(root / "manifests" / "mevis_train.parquet", vrows, VIDEO_SCHEMA)
    revos = [
        dict(
            common,
            id="rv-0",
            dataset="revos",
            video="clip1",
            exp_id="0",
            sentence="what is not there",
            frame_dir=d1,
            frames=f1,
            num_frames=10,
            boxes=objects([None] * 10),
            type_id=2,
        ),
        dict(
            common,
            id="rv-1",
            dataset="revos",
            video="clip1",
            exp_id="1",
            sentence="reason about it",
            frame_dir=d1,
            frames=f1,
            num_frames=10,
            boxes=objects(boxes1),
            type_id=1,
        ),
    ]
    out["revos_rows"] = revos
    out["revos"] = write_manifest(root / "manifests" / "revos_train.parquet", revos, VIDEO_SCHEMA)
    valid = [dict(vrows[0], id="mvv-0", split="valid_u", boxes=None, has_masks=False)]
    out["mevis_valid"] = write_manifest(root / "manifests" / "mevis_valid.parquet", valid, VIDEO_SCHEMA)

    # temporal: three feature files, T = 300 (30 s at 10 fps), 50 (< 100 positions), 100
    feats = {}
    for vid, t, dur in (("v300", 300, 30.0), ("v50", 50, 5.0), ("v100", 100, 9.95)):
        arr = rng.standard_normal((t, 8)).astype(np.float16)
        arr[:, 0] = np.arange(t)  # row number in column 0 (exact in float16 below 2048)
        path = root / "features" / f"{vid}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, arr)
        feats[vid] = (path, t, dur, arr)
    out["features"] = feats

    def trow(qid, vid, start, end, dataset="charades"):
        path, t, dur, _ = feats[vid]
        return dict(
            id=qid,
            dataset=dataset,
            split="train",
            video=vid,
            sentence=f"query {qid}",
            video_path=f"videos/{vid}.mp4",
            features_path=str(path),
            fps=10.0,
            num_features=t,
            duration=dur,
            start_s=start,
            end_s=end,
            start_idx=int(start * 10),
            end_idx=int(end * 10),
        )

    trows = [
        trow("q0", "v300", 3.2, 7.9),
        trow("q1", "v300", 20.0, 30.0),  # same video as q0, another window
        trow("q2", "v50", 0.0, 0.3),
        trow("q3", "v100", 4.0, 4.0),  # zero-length window
        trow("q4", "v300", 0.0, 30.0),
    ]
    out["temporal_rows"] = trows
    out["charades"] = write_manifest(root / "manifests" / "charades_train.parquet", trows, TEMPORAL_SCHEMA)
    out["didemo"] = write_manifest(
        root / "manifests" / "didemo_train.parquet",
        [trow("d0", "v300", 5.0, 10.0, "didemo"), trow("d1", "v100", 0.0, 5.0, "didemo")],
        TEMPORAL_SCHEMA,
    )
    # the same queries with other windows only: the target must not change the features
    moved = [dict(r, start_s=0.6 * r["duration"], end_s=0.9 * r["duration"]) for r in trows]
    out["charades_moved"] = write_manifest(root / "manifests" / "charades_moved.parquet", moved, TEMPORAL_SCHEMA)
    return out


def image_ds(world, **kw) -> ImageGroundingDataset:
    return ImageGroundingDataset(world["refcoco"], root=world["root"], **kw)


# ----------------------------------------------------------------------------- image


def test_image_items_group_by_image_and_answers_decode_to_the_boxes(world):
    ds = image_ds(world, train=False)
    assert ds.task == IMAGE_GROUNDING and ds.name == "refcoco"
    assert len(ds) == 2 and ds.num_expressions == 10
    by_id = {r["id"]: r for r in world["image_rows"]}
    for i in range(len(ds)):
        item = ds[i]
        assert 1 <= len(item["ids"]) <= 5
        assert len(item["sentences"]) == len(item["answers"]) == len(item["ids"]) == item["boxes"].shape[0]
        assert item["image"].dtype == torch.uint8 and item["image"].shape[0] == 3  # CHW
        assert (item["height"], item["width"]) == tuple(item["image"].shape[1:])
        for rid, sentence, answer, box in zip(item["ids"], item["sentences"], item["answers"], item["boxes"]):
            row = by_id[rid]
            assert row["image_id"] == item["image_id"] and row["sentence"] == sentence  # evaluation: REFER's sent
            decoded = decode_boxes(answer)
            assert len(decoded) == 1
            np.testing.assert_allclose(decoded[0], row["box"], atol=0.0005 + 1e-12)
            np.testing.assert_allclose(box.numpy(), row["box"], atol=1e-6)
    # evaluation: the first five expressions of image A in manifest order, and both of B
    a_ids = [r["id"] for r in world["image_rows"] if r["image_id"] == 1]
    assert ds[0]["ids"] == a_ids[:5]
    assert sorted(ds[1]["ids"]) == ["rc-b0", "rc-b1"]


def test_training_text_is_upstreams_raw_lower_cased_without_the_final_period():
    assert training_sentence("The  Thing A3.") == "the thing a3"
    assert training_sentence("Thing A0, once more.") == "thing a0, once more"
    assert training_sentence("no period here") == "no period here"
    assert training_sentence("the U.S. flag.") == "the u.s. flag"


def test_image_pixels_are_rgb_chw_even_for_grayscale_files(world):
    ds = image_ds(world, train=False)
    a, b = ds[0], ds[1]
    assert tuple(a["image"].shape) == (3, 30, 40)
    assert tuple(b["image"].shape) == (3, 20, 24)  # the grayscale JPEG becomes 3 channels
    mean_a = a["image"].float().mean(dim=(1, 2))
    assert abs(mean_a[0] - 200) < 6 and abs(mean_a[1] - 30) < 6 and abs(mean_a[2] - 30) < 6


def test_image_training_items_take_one_sentence_per_ref_seeded_per_epoch_and_index(world):
    ds = image_ds(world, train=True, seed=3)
    rows = {r["id"]: r for r in world["image_rows"]}
    a_ids = {r["id"] for r in world["image_rows"] if r["image_id"] == 1}
    subsets, bis = [], 0
    for epoch in range(12):
        ds.set_epoch(epoch)
        item = ds[0]
        assert len(item["ids"]) == 5 and len(set(item["ids"])) == 5 and set(item["ids"]) <= a_ids
        assert len({rows[i]["ref_id"] for i in item["ids"]}) == 5, "two sentences of one ref in one item"
        assert item["sentences"] == [training_sentence(rows[i]["raw"]) for i in item["ids"]]
        assert ds[0]["ids"] == item["ids"]  # deterministic for (seed, epoch, index)
        subsets.append(tuple(item["ids"]))
        bis += "rc-a0-bis" in item["ids"]
    assert len(set(subsets)) > 1  # the subset changes with the epoch
    assert 0 < bis < 12, "both sentences of ref 100 take turns over the epochs"
    again = image_ds(world, train=True, seed=3)
    again.set_epoch(4)
    assert tuple(again[0]["ids"]) == subsets[4]
    state = np.random.get_state()
    torch_state = torch.get_rng_state()
    ds[0]
    assert np.array_equal(np.random.get_state()[1], state[1]) and torch.equal(torch.get_rng_state(), torch_state)


def test_variable_length_box_lists_read_the_same(world, tmp_path):
    schema = pa.schema([f if f.name != "box" else pa.field("box", pa.list_(pa.float64())) for f in IMAGE_SCHEMA])
    manifest = write_manifest(tmp_path / "var.parquet", world["image_rows"], schema)
    ours = ImageGroundingDataset(manifest, root=world["root"], train=False)
    fixed = image_ds(world, train=False)
    assert ours[0]["answers"] == fixed[0]["answers"] and torch.equal(ours[0]["boxes"], fixed[0]["boxes"])


def test_image_max_expressions_none_takes_all_and_datasets_do_not_share_groups(world):
    ds = image_ds(world, train=False, max_expressions=None)
    assert len(ds[0]["ids"]) == 8
    both = ImageGroundingDataset([world["refcoco"], world["refcoco+"]], root=world["root"], train=False)
    assert len(both) == 3  # refcoco+ image A is its own item although the file is the same
    assert {both[i]["dataset"] for i in range(3)} == {"refcoco", "refcoco+"}
    assert all(len(set(both[i]["ids"])) == len(both[i]["ids"]) for i in range(3))
    with pytest.raises(DatasetError):
        image_ds(world, max_expressions=0)


# ----------------------------------------------------------------------------- video


def rows_of_clip(rows: list[dict], video: str) -> list[dict]:
    return [r for r in rows if r["video"] == video]


def test_video_items_are_clips_whose_turns_answer_one_box_per_visible_object(world):
    ds = VideoGroundingDataset(world["mevis"], train=False)
    assert ds.task == VIDEO_GROUNDING and ds.name == "mevis"
    assert len(ds) == 2 and ds.num_expressions == 4  # one item per clip, not per expression
    for i, video in enumerate(("clip1", "clip2")):
        item = ds[i]
        rows = rows_of_clip(world["video_rows"], video)
        assert item["ids"] == [r["id"] for r in rows]  # evaluation: every expression, manifest order
        assert item["sentences"] == [r["sentence"] for r in rows]
        picks = item["frame_indices"].tolist()
        assert len(picks) == 6 and picks == sorted(picks)
        assert picks == sample_positions(rows[0]["num_frames"], 6).tolist()  # bin centres in evaluation
        assert item["frames"].dtype == torch.uint8 and tuple(item["frames"].shape) == (6, 3, 12, 16)
        for t, j in enumerate(picks):  # the decoded frame is the picked one
            red = item["frames"][t, 0].float().mean().item()
            assert abs(red - frame_colour(j)[0]) < 8
        for row, answer, boxes, present in zip(rows, item["answers"], item["boxes"], item["present"]):
            decoded = decode_video_box_lists(answer, 6)
            assert not isinstance(decoded, ParseFailure) and len(decoded) == 6
            assert tuple(boxes.shape) == (6, row["num_objects"], 4)
            for t, j in enumerate(picks):
                want = [b for b in row["boxes"][j] if b is not None]  # the visible objects, in object order
                assert len(decoded[t]) == len(want) == int(present[t].sum())
                for got, box in zip(decoded[t], want):
                    np.testing.assert_allclose(got, box, atol=0.0005 + 1e-12)
    clip1 = ds[0]
    assert clip1["frame_indices"].tolist() == [1, 2, 4, 6, 7, 9]
    moving, never, both = clip1["answers"]
    assert moving.split(NEXT_TOKEN)[1] == moving.split(NEXT_TOKEN)[4] == NO_BOX_TOKEN  # frames 2 and 7
    assert never == NEXT_TOKEN.join([NO_BOX_TOKEN] * 6)
    entries = both.split(NEXT_TOKEN)  # frames 1, 2, 4, 6, 7, 9: the other object is absent at 3 and 4
    assert [e.count(BOX_SEP_TOKEN) for e in entries] == [1, 0, 0, 1, 0, 1]
    assert entries[1] != NO_BOX_TOKEN and entries[4] != NO_BOX_TOKEN  # the other object alone is still a box


def test_video_short_clip_repeats_frames_and_their_box_entries(world):
    ds = VideoGroundingDataset(world["mevis"], train=False)
    item = ds[1]  # clip2: 3 frames
    picks = item["frame_indices"].tolist()
    assert picks == [0, 1, 1, 2, 2, 2]
    entries = item["answers"][0].split(NEXT_TOKEN)
    assert len(entries) == 6 and entries[1] == entries[2] == NO_BOX_TOKEN and entries[3] == entries[5]
    train = VideoGroundingDataset(world["mevis"], train=True, seed=1)
    for epoch in range(3):
        train.set_epoch(epoch)
        assert len(train[1]["frame_indices"]) == 6 and tuple(train[1]["frames"].shape)[0] == 6


def test_video_revos_no_target_is_all_no_box(world):
    ds = VideoGroundingDataset(world["revos"], train=False)
    assert len(ds) == 1  # both expressions are turns of clip1
    item = ds[0]
    assert item["type_ids"] == [2, 1]
    assert item["answers"][0] == NEXT_TOKEN.join([NO_BOX_TOKEN] * 6)
    assert not item["present"][0].any()
    mevis = VideoGroundingDataset(world["mevis"], train=False)[0]
    assert item["answers"][1] == mevis["answers"][0]  # the same boxes answer the same way


def test_video_training_draws_expressions_without_replacement_per_epoch(world):
    ds = VideoGroundingDataset(world["mevis"], train=True, seed=2, max_expressions=2)
    orders = set()
    for epoch in range(10):
        ds.set_epoch(epoch)
        item = ds[0]
        assert len(item["ids"]) == 2 and len(set(item["ids"])) == 2, "an expression twice in one conversation"
        assert set(item["ids"]) <= {"mv-0", "mv-2", "mv-3"}
        assert ds[0]["ids"] == item["ids"]
        orders.add(tuple(item["ids"]))
    assert len(orders) > 2
    full = VideoGroundingDataset(world["mevis"], train=True, seed=2)  # up to 5: all three, in a random order
    assert sorted(full[0]["ids"]) == ["mv-0", "mv-2", "mv-3"]


def test_video_training_jitter_is_deterministic_and_changes_with_the_epoch(world):
    ds = VideoGroundingDataset(world["mevis"], train=True, seed=5)
    picks = []
    for epoch in range(8):
        ds.set_epoch(epoch)
        p = ds.frame_indices(0).tolist()
        assert p == ds[0]["frame_indices"].tolist()
        # one frame per segment of the 10-frame clip: segment k owns frames ceil(10k/6) .. ceil(10(k+1)/6) - 1
        for k, j in enumerate(p):
            assert math.ceil(10 * k / 6) <= j < math.ceil(10 * (k + 1) / 6)
        picks.append(tuple(p))
    assert len(set(picks)) > 1
    fresh = VideoGroundingDataset(world["mevis"], train=True, seed=5)
    fresh.set_epoch(5)
    assert tuple(fresh.frame_indices(0)) == picks[5]


def test_video_split_without_masks_is_eval_only(world):
    ds = VideoGroundingDataset(world["mevis_valid"], train=False)
    item = ds[0]
    assert item["answers"] == [None] and not item["has_masks"] and not item["present"][0].any()
    with pytest.raises(DatasetError, match="has_masks"):
        VideoGroundingDataset(world["mevis_valid"], train=True)


# ----------------------------------------------------------------------------- temporal


def test_temporal_items_features_and_answers(world):
    ds = TemporalGroundingDataset(world["charades"], train=False)
    assert ds.task == TEMPORAL_GROUNDING and ds.name == "charades" and len(ds) == 5
    for i, row in enumerate(world["temporal_rows"]):
        item = ds[i]
        _, t, dur, arr = world["features"][row["video"]]
        assert item["features"].dtype == torch.float32 and tuple(item["features"].shape) == (100, 8)
        pos = item["positions"].numpy()
        assert pos.tolist() == sample_positions(t, 100).tolist()
        np.testing.assert_array_equal(item["features"].numpy(), arr[pos].astype(np.float32))
        ab = decode_window_tokens(item["answer"])
        assert ab == item["window_idx"]
        start, end = indices_to_window(*ab, dur)
        assert item["duration"] == dur and item["window_s"] == (row["start_s"], row["end_s"])
        tol = dur / 100 + 1e-9
        assert start <= row["start_s"] + 1e-9 and row["start_s"] - start <= tol  # contains the window,
        assert end >= row["end_s"] - 1e-9 and end - row["end_s"] <= tol  # within duration / 100 at each end
    assert ds[4]["answer"] == "<frame_0><frame_0>-<frame_9><frame_9>"
    assert ds[2]["positions"].tolist() == sorted(ds[2]["positions"].tolist())  # T = 50 < 100: rows repeat
    assert len(set(ds[0]["positions"].tolist())) == 100  # T = 300: 100 distinct rows


def test_temporal_evaluation_sampling_ignores_the_target(world):
    ds = TemporalGroundingDataset(world["charades"], train=False)
    q0, q1 = ds[0], ds[1]  # same video, different windows
    assert q0["window_idx"] != q1["window_idx"]
    assert torch.equal(q0["positions"], q1["positions"]) and torch.equal(q0["features"], q1["features"])


def test_temporal_training_positions_never_depend_on_the_target(world):
    ours = TemporalGroundingDataset(world["charades"], train=True, seed=2)
    moved = TemporalGroundingDataset(world["charades_moved"], train=True, seed=2)
    for epoch in range(3):
        ours.set_epoch(epoch)
        moved.set_epoch(epoch)
        for i in range(len(ours)):
            a, b = ours[i], moved[i]
            assert a["window_s"] != b["window_s"]
            assert torch.equal(a["positions"], b["positions"]) and torch.equal(a["features"], b["features"])


def test_temporal_training_jitter_is_deterministic_per_seed_epoch_index(world):
    ds = TemporalGroundingDataset(world["charades"], train=True, seed=9)
    by_epoch = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        first = ds[0]["positions"]
        assert torch.equal(first, ds[0]["positions"])
        # jitter stays inside each bin: the answer cannot change
        for j, r in enumerate(first.tolist()):
            assert math.ceil(300 * j / 100) <= r < math.ceil(300 * (j + 1) / 100)
        by_epoch.append(first)
    assert not torch.equal(by_epoch[0], by_epoch[1]) and not torch.equal(by_epoch[1], by_epoch[2])
    again = TemporalGroundingDataset(world["charades"], train=True, seed=9)
    again.set_epoch(1)
    assert torch.equal(again[0]["positions"], by_epoch[1])
    assert not torch.equal(ds[0]["positions"], ds[4]["positions"])  # same video, other index: own jitter
    other = TemporalGroundingDataset(world["charades"], train=True, seed=10)
    other.set_epoch(2)
    assert not torch.equal(other[0]["positions"], by_epoch[2])


def test_temporal_each_features_file_is_opened_once_per_sample(world, monkeypatch):
    import builtins
    import mmap as mmap_module

    import sa2va_st.datasets.npy as npy_module

    opens: list[str] = []
    maps: list[int] = []
    loads: list[str] = []
    real_open, real_mmap, real_load = builtins.open, mmap_module.mmap, np.load

    def counting_open(file, *args, **kwargs):
        opens.append(str(file))
        return real_open(file, *args, **kwargs)

    def counting_mmap(*args, **kwargs):
        maps.append(1)
        return real_mmap(*args, **kwargs)

    def counting_load(file, *args, **kwargs):
        loads.append(str(file))
        return real_load(file, *args, **kwargs)

    monkeypatch.setattr(npy_module, "open", counting_open, raising=False)  # the reader's open
    monkeypatch.setattr(npy_module.mmap, "mmap", counting_mmap)
    monkeypatch.setattr(np, "load", counting_load)
    for train in (False, True):
        ds = TemporalGroundingDataset(world["charades"], train=train)
        for _ in range(2):  # first read parses the header, later ones use the cache: still one open
            for i in range(len(ds)):
                opens.clear(), maps.clear(), loads.clear()
                item = ds[i]
                assert opens == [world["temporal_rows"][i]["features_path"]]  # 100 rows, ONE open
                assert len(maps) == 1 and loads == []  # memory-mapped; numpy's 3-open loader not used
                assert item["features"].shape[0] == 100


def test_temporal_reader_rereads_a_changed_file_and_refuses_broken_ones(world, tmp_path):
    path = tmp_path / "f.npy"
    first = np.arange(300 * 8, dtype=np.float16).reshape(300, 8) % 512
    np.save(path, first)
    row = dict(world["temporal_rows"][0], features_path=str(path))
    ds = TemporalGroundingDataset(write_manifest(tmp_path / "m.parquet", [row], TEMPORAL_SCHEMA), train=False)
    pos = ds[0]["positions"].numpy()
    np.testing.assert_array_equal(ds[0]["features"].numpy(), first[pos].astype(np.float32))
    second = (first + 1).astype(np.float16)
    np.save(path, second)
    os.utime(path, ns=(1, 1))  # a new mtime even on coarse clocks: the cached header is re-validated
    np.testing.assert_array_equal(ds[0]["features"].numpy(), second[pos].astype(np.float32))
    np.save(path, second[:200])
    with pytest.raises(DatasetError, match="num_features"):
        ds[0]
    np.save(path, np.asfortranarray(second.astype(np.float32)))  # unusual layout: numpy's reader
    np.testing.assert_array_equal(ds[0]["features"].numpy(), second[pos].astype(np.float32))
    np.save(path, second)
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    with pytest.raises(DatasetError, match="truncated"):
        ds[0]
    np.save(path, np.zeros((300, 8), dtype=np.int32))
    with pytest.raises(DatasetError, match="floating-point"):
        ds[0]
    path.write_bytes(b"not an npy file at all")
    with pytest.raises(DatasetError, match="cannot read"):
        ds[0]


def test_temporal_features_shorter_than_the_manifest_says_raise(world, tmp_path):
    rows = [dict(world["temporal_rows"][0], num_features=301)]
    ds = TemporalGroundingDataset(write_manifest(tmp_path / "m.parquet", rows, TEMPORAL_SCHEMA), train=False)
    with pytest.raises(DatasetError, match="num_features"):
        ds[0]


# ----------------------------------------------------------------------------- concat + sampler


def test_dataloader_with_task_grouped_sampler_gives_task_pure_batches(world):
    image = image_ds(world, train=True)
    video = VideoGroundingDataset([world["mevis"]], train=True)
    revos = VideoGroundingDataset([world["revos"]], train=True)
    charades = TemporalGroundingDataset(world["charades"], train=True)
    didemo = TemporalGroundingDataset(world["didemo"], train=True)
    mix = ConcatTaskDataset([image, video, revos, charades, didemo])
    assert [s.name for s in mix.specs] == ["refcoco", "mevis", "revos", "charades", "didemo"]
    assert len(mix) == 2 + 2 + 1 + 5 + 2  # images, mevis clips, revos clips, charades and didemo queries
    sampler = mix.make_sampler(
        batch_size=2, seed=1, repeats={"refcoco": 2, "mevis": 2, "revos": 2, "charades": 1, "didemo": 2}
    )
    mix.check_sampler(sampler)
    assert sampler.offsets == mix.offsets
    for workers in (0, 2):
        loader = DataLoader(mix, batch_sampler=sampler, collate_fn=collate_keep_lists, num_workers=workers)
        for epoch in range(2):
            sampler.set_epoch(epoch)
            mix.set_epoch(epoch)
            n = 0
            for batch, indices in zip(loader, sampler):
                n += 1
                assert batch["size"] == 2
                tasks = {sampler.task_of(i) for i in indices}
                assert tasks == {batch["task"]}
                for k, i in enumerate(indices):  # the loader's item is the sampler's index
                    name, local = sampler.split_index(i)
                    assert batch["dataset"][k] == name and batch["index"][k] == local
                if batch["task"] == TEMPORAL_GROUNDING:
                    assert all(f.shape == (100, 8) for f in batch["features"])
                    direct = [mix[i] for i in indices]  # same epoch in the main process: same jitter
                    assert all(torch.equal(d["positions"], p) for d, p in zip(direct, batch["positions"]))
            assert n == len(sampler)


def test_concat_ordered_like_a_sampler_and_mismatches_are_refused(world):
    image = image_ds(world, train=False)
    charades = TemporalGroundingDataset(world["charades"], train=False)
    sampler = TaskGroupedBatchSampler(
        [("charades", TEMPORAL_GROUNDING, len(charades)), ("refcoco", IMAGE_GROUNDING, len(image))], batch_size=1
    )
    mix = ConcatTaskDataset.ordered_like(sampler, [image, charades])
    assert [s.name for s in mix.specs] == ["charades", "refcoco"]
    assert mix[0]["task"] == TEMPORAL_GROUNDING and mix[len(charades)]["task"] == IMAGE_GROUNDING
    with pytest.raises(DatasetError):
        ConcatTaskDataset([image, charades]).check_sampler(sampler)
    with pytest.raises(DatasetError, match="more than once"):
        ConcatTaskDataset([image, image_ds(world)])
    with pytest.raises(DatasetError, match="mixes tasks"):
        collate_keep_lists([image[0], charades[0]])


# ----------------------------------------------------------------------------- errors


def test_missing_files_name_the_file_and_the_manifest(world, tmp_path):
    rows = [dict(world["image_rows"][0], image_path=str(tmp_path / "gone.jpg"))]
    manifest = write_manifest(tmp_path / "img.parquet", rows, IMAGE_SCHEMA)
    with pytest.raises(DatasetError) as info:
        ImageGroundingDataset(manifest, train=False)[0]
    assert "gone.jpg" in str(info.value) and str(manifest) in str(info.value) and isinstance(info.value, Sa2vaError)
    with pytest.raises(DatasetError, match="gone.jpg"):
        ImageGroundingDataset(manifest, train=False, check_files=True)

    vrow = dict(world["video_rows"][0], frames=[f"x{j}.jpg" for j in range(10)])
    manifest = write_manifest(tmp_path / "vid.parquet", [vrow], VIDEO_SCHEMA)
    with pytest.raises(DatasetError) as info:
        VideoGroundingDataset(manifest, train=False)[0]
    assert "x1.jpg" in str(info.value) and str(manifest) in str(info.value)

    trow = dict(world["temporal_rows"][0], features_path=str(tmp_path / "nofeat.npy"))
    manifest = write_manifest(tmp_path / "tmp.parquet", [trow], TEMPORAL_SCHEMA)
    with pytest.raises(DatasetError) as info:
        TemporalGroundingDataset(manifest, train=False)[0]
    assert "nofeat.npy" in str(info.value) and str(manifest) in str(info.value)
    with pytest.raises(DatasetError, match="nofeat.npy"):
        TemporalGroundingDataset(manifest, check_files=True)

    with pytest.raises(DatasetError, match="does not exist"):
        TemporalGroundingDataset(tmp_path / "no_manifest.parquet")
    with pytest.raises(DatasetError, match="lacks column"):
        TemporalGroundingDataset(world["refcoco"])  # an image manifest is not a temporal one
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DatasetError, match="Parquet"):
        VideoGroundingDataset(tmp_path / "junk.parquet")


def test_bad_rows_are_refused_at_construction(world, tmp_path):
    vrow = dict(world["video_rows"][0], num_frames=9)
    with pytest.raises(DatasetError, match="num_frames"):
        VideoGroundingDataset(write_manifest(tmp_path / "v.parquet", [vrow], VIDEO_SCHEMA))
    vrow = dict(world["video_rows"][0], boxes=world["video_rows"][0]["boxes"][:4])
    with pytest.raises(DatasetError, match="per-frame box entries"):
        VideoGroundingDataset(write_manifest(tmp_path / "v2.parquet", [vrow], VIDEO_SCHEMA))
    vrow = dict(world["video_rows"][0], num_objects=2)  # one box per frame for a two-object row
    with pytest.raises(DatasetError, match="refers to 2 objects"):
        VideoGroundingDataset(write_manifest(tmp_path / "v3.parquet", [vrow], VIDEO_SCHEMA))
    trow = dict(world["temporal_rows"][0], start_s=8.0, end_s=2.0)
    with pytest.raises(DatasetError, match="bad window"):
        TemporalGroundingDataset(write_manifest(tmp_path / "t.parquet", [trow], TEMPORAL_SCHEMA))
    with pytest.raises(IndexError):
        TemporalGroundingDataset(world["charades"])[5]
