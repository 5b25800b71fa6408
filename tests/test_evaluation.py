"""Evaluation: a model's answers on a benchmark split saved shard by shard (resumable), scored from the
saved answers alone, and the rules that wire it (`snakemake -n evaluate`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from sa2va_st import catalog, paths
from sa2va_st.errors import EvaluationError
from sa2va_st.evaluation.benchmarks import all_benchmarks, open_benchmark, select_benchmarks
from sa2va_st.evaluation.predict import predict_split, read_predictions, shard_indices
from sa2va_st.evaluation.score import score_records

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """The tiny preset with fresh trainable parts (what `untrained_model` exports), in eval mode."""
    from sa2va_st.model import Sa2vaSTConfig, Sa2vaSTModel
    from sa2va_st.testing.tiny import TINY_CLIP_DIM, save_tiny_preset

    vlm = save_tiny_preset(tmp_path_factory.mktemp("tiny"), 0, ["vlm"])["vlm"]
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["model"].update(vlm=str(vlm), dtype="fp32", max_image_tiles=1)
    config["model"]["lora"].update(r=8, alpha=16)
    config["model"]["temporal"]["clip_dim"] = TINY_CLIP_DIM
    return Sa2vaSTModel.from_config(Sa2vaSTConfig.from_pipeline_config(config), seed=0).eval()


def benchmark(name: str):
    (found,) = select_benchmarks([name], ())
    return found


def dataset_of(name: str, build: dict):
    return open_benchmark(
        benchmark(name),
        spatial=build["spatial_manifests"],
        temporal=build["temporal_manifests"],
        video_frames=3,
        num_positions=100,
    )


def test_benchmarks_come_from_the_catalog_and_unknown_names_fail():
    names = [b.name for b in all_benchmarks()]
    assert names[:3] == ["refcoco/val", "refcoco/testA", "refcoco/testB"]
    assert "charades/test" in names and "didemo/test" in names
    server = {b.name for b in all_benchmarks() if not b.scored_here}
    assert server == {"mevis/valid", "rvos/valid"}
    assert [b.name for b in select_benchmarks(None, ["refcocog"])] == ["refcocog/val", "refcocog/test"]
    with pytest.raises(EvaluationError, match="evaluation.benchmarks"):
        select_benchmarks(["refcoco/train2"], ())


def test_shards_partition_the_items():
    shards = [list(shard_indices(10, s, 3)) for s in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(10))
    with pytest.raises(ValueError):
        shard_indices(10, 3, 3)


@pytest.mark.parametrize("name", ["refcoco/val", "mevis/valid_u", "charades/test"])
def test_every_expression_is_answered_once_and_scores_rerun_from_the_saved_answers(
    name, tiny_model, synthetic_build, tmp_path
):
    bench = benchmark(name)
    dataset = dataset_of(name, synthetic_build)
    files = [
        predict_split(tiny_model, dataset, tmp_path / f"p.{s}.jsonl", shard=s, num_shards=2, batch_size=4)
        for s in range(2)
    ]
    records = read_predictions(files)
    folder = synthetic_build["temporal_manifests" if bench.task == catalog.TEMPORAL_GROUNDING else "spatial_manifests"]
    manifest = pd.read_parquet(paths.manifest(str(folder), bench.dataset, bench.split))
    assert sorted(r["id"] for r in records) == sorted(str(i) for i in manifest["id"])
    assert {r["task"] for r in records} == {bench.task}
    assert all(r["expected"] is not None for r in records)
    first = score_records(records)
    again = score_records(read_predictions(files))
    assert first == again
    assert first["n"] >= len(records) and 0 <= first["unparseable"] <= len(records)
    if bench.task == catalog.TEMPORAL_GROUNDING:
        assert set(first) >= {"R1@0.3", "R1@0.5", "R1@0.7", "mIoU", "mAP"}
        by_id = manifest.set_index(manifest["id"].astype(str))
        for r in records:  # the saved truths are the manifest's target and its list of ground-truth windows
            assert r["expected"] == pytest.approx([by_id.loc[r["id"], "start_s"], by_id.loc[r["id"], "end_s"]])
            windows = [[float(v) for v in w] for w in by_id.loc[r["id"], "ground_truth_windows"]]
            assert r["expected_windows"] == windows and r["expected"] in r["expected_windows"]
    else:
        assert set(first) >= {"Acc@0.5", "box_mIoU"}


def test_a_killed_shard_resumes_without_asking_again(tiny_model, synthetic_build, tmp_path, monkeypatch):
    from sa2va_st.model import inference

    dataset = dataset_of("refcoco/val", synthetic_build)
    whole = predict_split(tiny_model, dataset, tmp_path / "whole.jsonl", batch_size=4)
    lines = whole.read_text().splitlines(keepends=True)
    out = tmp_path / "resumed.jsonl"
    # what a kill leaves: the first batches saved, the last line torn
    out.with_name(out.name + ".partial").write_text("".join(lines[:5]) + lines[5][:17])
    asked = []
    real = inference.ground_boxes_batch

    def counting(model, requests, **kwargs):
        asked.extend(requests)
        return real(model, requests, **kwargs)

    monkeypatch.setattr(inference, "ground_boxes_batch", counting)
    predict_split(tiny_model, dataset, out, batch_size=4)
    assert len(asked) == len(lines) - 5
    assert out.read_text() == whole.read_text()
    assert not out.with_name(out.name + ".partial").exists()


def record(task, prediction, expected, **extra):
    return {"id": str(len(extra)), "task": task, "prediction": prediction, "expected": expected} | extra


def test_scores_of_hand_made_answers():
    image = [
        record(catalog.IMAGE_GROUNDING, [[[0, 0, 2, 2]]], [[[0, 0, 2, 2]]]),  # IoU 1
        record(catalog.IMAGE_GROUNDING, [[[0, 0, 2, 1]]], [[[0, 0, 2, 2]]]),  # IoU 0.5: counts (>=)
        record(catalog.IMAGE_GROUNDING, None, [[[0, 0, 2, 2]]]),  # unparseable: IoU 0, in the denominator
        record(catalog.IMAGE_GROUNDING, [[]], [[[0, 0, 2, 2]]]),  # no box answered: IoU 0
    ]
    scores = score_records(image)
    assert scores["Acc@0.5"] == 0.5 and scores["box_mIoU"] == pytest.approx(1.5 / 4)
    assert scores["n"] == 4 and scores["unparseable"] == 2

    box, half = [0, 0, 2, 2], [0, 0, 2, 1]
    video = [
        # frame 1 matched, frame 2 half (IoU 0.5), frame 3 correctly empty
        record(catalog.VIDEO_GROUNDING, [[box], [half], []], [[box], [box], []], type_id=0),
        # two objects, one missed in frame 1 (0), frame 2 both right, frame 3 a box where none is (0)
        record(catalog.VIDEO_GROUNDING, [[box], [box, box], [box]], [[box, box], [box, box], []], type_id=1),
    ]
    scores = score_records(video)
    assert scores["n"] == 6 and scores["expressions"] == 2
    assert scores["Acc@0.5"] == pytest.approx(4 / 6)
    assert scores["box_mIoU"] == pytest.approx((1 + 0.5 + 1 + 0 + 1 + 0) / 6)
    assert scores["subsets"]["referring"]["Acc@0.5"] == 1.0
    assert scores["subsets"]["reasoning"]["Acc@0.5"] == pytest.approx(1 / 3)

    temporal = [
        record(catalog.TEMPORAL_GROUNDING, [0.0, 10.0], [0.0, 10.0]),
        record(catalog.TEMPORAL_GROUNDING, [0.0, 4.0], [0.0, 10.0]),  # IoU 0.4
        record(catalog.TEMPORAL_GROUNDING, None, [2.0, 3.0]),
    ]
    scores = score_records(temporal)
    assert scores["R1@0.3"] == pytest.approx(2 / 3) and scores["R1@0.5"] == pytest.approx(1 / 3)
    assert scores["mIoU"] == pytest.approx(1.4 / 3) and scores["unparseable"] == 1

    # DiDeMo: several annotators' windows; the answer is matched with the one it overlaps best
    didemo = [
        record(catalog.TEMPORAL_GROUNDING, [5.0, 10.0], [0.0, 10.0], expected_windows=[[0.0, 10.0], [5.0, 10.0]]),
        record(catalog.TEMPORAL_GROUNDING, [20.0, 25.0], [0.0, 5.0], expected_windows=[[0.0, 5.0], [0.0, 10.0]]),
    ]
    scores = score_records(didemo)
    assert scores["R1@0.7"] == 0.5 and scores["mIoU"] == pytest.approx(0.5)  # IoU 1 (second window), then 0


def test_a_split_without_labels_is_refused_not_scored():
    with pytest.raises(EvaluationError, match="server"):
        score_records([record(catalog.VIDEO_GROUNDING, [[]], None)], source="p.jsonl")
    with pytest.raises(EvaluationError, match="no predictions"):
        score_records([], source="p.jsonl")


def dry_run(*config: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "evaluate", "--config", *config],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=os.environ | {"CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_evaluate_plans_each_model_on_each_scored_split_with_its_shards():
    plan = dry_run("evaluation={shards: 3}")
    outputs = set(re.findall(r"output: (results/metrics/\S+\.json)\b", plan))
    local = [b for b in all_benchmarks() if b.scored_here]
    wanted = {paths.split_metrics(m, b.dataset, b.split) for m in ("trained", "untrained") for b in local}
    assert outputs == wanted
    shards = re.findall(r"predictions/refcoco_val\.(\d)-of-3\.jsonl", plan)
    assert sorted(set(shards)) == ["0", "1", "2"]
    assert "mevis_valid.json" not in plan and "rvos_valid.json" not in plan
    # the splits a server scores get their archive instead of metrics
    archives = set(re.findall(r"output: (results/submissions/\S+\.zip)\b", plan))
    server = [b for b in all_benchmarks() if not b.scored_here]
    assert archives == {paths.split_submission(m, b.dataset, b.split) for m in ("trained", "untrained") for b in server}
    assert "submissions" not in dry_run("evaluation={masks: false}")

    only = dry_run("evaluation={models: [untrained], benchmarks: [charades/test]}")
    assert set(re.findall(r"output: (results/metrics/\S+\.json)\b", only)) == {
        "results/metrics/untrained/charades_test.json"
    }


def test_saved_answers_are_json_lines(tiny_model, synthetic_build, tmp_path):
    out = predict_split(tiny_model, dataset_of("revos/valid", synthetic_build), tmp_path / "r.jsonl", batch_size=4)
    for line in out.read_text().splitlines():
        row = json.loads(line)
        assert {"id", "sentence", "answer", "prediction", "expected", "type_id", "frame_indices"} <= set(row)
        assert len(row["frame_indices"]) == 3 and len(row["expected"]) == 3


def test_image_records_carry_the_true_mask_and_sam2s_and_rescore_exactly(tiny_model, synthetic_build, tmp_path):
    from pycocotools import mask as mask_utils

    from sa2va_st.evaluation.masks import ReferenceMasks, decode_mask
    from sa2va_st.model.sam2 import load_sam2
    from sa2va_st.testing.tiny import save_tiny_preset

    segmenter = load_sam2(save_tiny_preset(tmp_path / "tiny", 0, ["sam2"])["sam2"])
    reference = ReferenceMasks(synthetic_build["root"], "refcoco")
    dataset = dataset_of("refcoco/val", synthetic_build)
    out = predict_split(
        tiny_model, dataset, tmp_path / "p.jsonl", batch_size=4, segmenter=segmenter, reference_masks=reference
    )
    records = read_predictions([out])
    instances = json.loads(reference.file.read_text())
    annotations = {a["id"]: a for a in instances["annotations"]}
    sizes = {im["id"]: (im["height"], im["width"]) for im in instances["images"]}
    for r in records:  # the saved target is the annotation's mask as pycocotools reads instances.json
        annotation = annotations[r["ann_id"]]
        height, width = sizes[annotation["image_id"]]
        segmentation = annotation["segmentation"]
        if isinstance(segmentation, dict):
            rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode()}
        else:
            rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        assert np.array_equal(decode_mask(r["expected_mask"]), mask_utils.decode(rle).astype(bool))
        assert r["mask"] is None or decode_mask(r["mask"]).shape == (height, width)
        assert (r["mask"] is None) == (r["prediction"] is None)
    scores = score_records(records)
    assert {"cIoU", "gIoU"} <= set(scores) and scores == score_records(read_predictions([out]))

    # SAM2 prompted by a true box gives a mask of the image's size (random weights: its content means nothing)
    item = dataset[0]
    mask = segmenter.expression_mask(item["image"], [item["boxes"][0].tolist()])
    assert tuple(mask.shape) == (item["height"], item["width"]) and mask.dtype == torch.bool


def test_mask_scores_of_hand_made_records():
    from sa2va_st.evaluation.masks import encode_mask

    def square(x0, y0, x1, y1, size=(4, 4)):
        mask = np.zeros(size, dtype=bool)
        mask[y0:y1, x0:x1] = True
        return mask

    truth = square(0, 0, 2, 2)  # 4 pixels
    cases = [
        (square(0, 0, 2, 2), truth),  # IoU 1: 4 / 4
        (square(0, 0, 2, 1), truth),  # IoU 0.5: 2 / 4
        (None, truth),  # unparseable: empty mask, 0 / 4
        (np.zeros((4, 4), bool), np.zeros((4, 4), bool)),  # empty answer of an empty target: gIoU 1, adds 0 / 0
    ]
    records = [
        record(
            catalog.IMAGE_GROUNDING,
            [[[0, 0, 1, 1]]],
            [[[0, 0, 0.5, 0.5]]],
            mask=None if pred is None else encode_mask(pred),
            expected_mask=encode_mask(gt),
        )
        for pred, gt in cases
    ]
    scores = score_records(records)
    assert scores["cIoU"] == pytest.approx((4 + 2 + 0 + 0) / (4 + 4 + 4 + 0))
    assert scores["gIoU"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)


def test_video_records_carry_every_frames_true_mask_and_sam2s_and_rescore_jf_exactly(
    tiny_model, synthetic_build, tmp_path
):
    from pycocotools import mask as mask_utils

    from sa2va_st.evaluation.masks import ReferenceVideoMasks, decode_mask
    from sa2va_st.evaluation.predict import _video_masks
    from sa2va_st.model.sam2 import load_sam2
    from sa2va_st.testing.tiny import save_tiny_preset

    segmenter = load_sam2(save_tiny_preset(tmp_path / "tiny", 0, ["sam2"])["sam2"])
    reference = ReferenceVideoMasks(synthetic_build["root"], "revos", "valid")
    dataset = dataset_of("revos/valid", synthetic_build)
    out = predict_split(
        tiny_model, dataset, tmp_path / "v.jsonl", batch_size=4, segmenter=segmenter, reference_masks=reference
    )
    records = read_predictions([out])
    mask_dict = json.loads(reference.file.read_text())
    for r in records:  # the saved targets: the union of the expression's objects' masks, frame by frame
        for t, saved in enumerate(r["expected_masks"]):
            truth = None
            for anno_id in r["anno_ids"]:
                rle = mask_dict[str(anno_id)][t]
                if rle is not None:
                    frame = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
                    truth = frame if truth is None else truth | frame
            decoded = decode_mask(saved)
            assert np.array_equal(decoded, truth if truth is not None else np.zeros_like(decoded))
        assert (r["masks"] is None) == (r["prediction"] is None)
    scores = score_records(records)
    assert {"J", "F", "J&F"} <= set(scores) and scores == score_records(read_predictions([out]))

    # an answer with boxes: SAM2 propagates its key-frame boxes to every frame of the clip
    item = dataset[0]
    first = next(r for r in records if r["id"] == str(item["ids"][0]))
    perfect = first | {"prediction": first["expected"]}
    frames = dataset.clip_frames(0)  # (F, 3, H, W): every frame of the clip, the shown ones among them
    assert torch.equal(frames[item["frame_indices"]], item["frames"])
    masks = _video_masks(segmenter, reference, frames, dataset.clip_frame_names(0), perfect)
    assert len(masks["masks"]) == frames.shape[0] == len(masks["expected_masks"])
    assert all(decode_mask(m).shape == (item["height"], item["width"]) for m in masks["masks"])


def test_jf_of_hand_made_video_records():
    from sa2va_st.evaluation.masks import encode_mask

    full = np.zeros((1, 8, 8), dtype=bool)  # a square inside the frame: it has a boundary (the frame's edge is none)
    full[0, 2:6, 2:6] = True
    empty = np.zeros((1, 8, 8), dtype=bool)
    boxes = [[[0, 0, 1, 1]]]
    records = [  # J 1 and F 1 (identical masks); J 0 and F 0 (an empty answer of the square); unparseable
        record(
            catalog.VIDEO_GROUNDING, boxes, boxes, masks=[encode_mask(full[0])], expected_masks=[encode_mask(full[0])]
        ),
        record(
            catalog.VIDEO_GROUNDING, boxes, boxes, masks=[encode_mask(empty[0])], expected_masks=[encode_mask(full[0])]
        ),
        record(catalog.VIDEO_GROUNDING, None, boxes, masks=None, expected_masks=[encode_mask(empty[0])]),
    ]
    scores = score_records(records)
    # the unparseable one is an empty mask of an empty target: J = 1, F = 1 (DAVIS's empty-of-empty)
    assert scores["J"] == pytest.approx(2 / 3) and scores["F"] == pytest.approx(2 / 3)
    assert scores["J&F"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("name", ["rvos/valid", "mevis/valid"])
def test_a_server_split_is_written_as_the_archive_its_server_reads(name, tiny_model, synthetic_build, tmp_path):
    """Every expression and every frame of the split's meta file gets one 0/255 PNG at the frame's size, laid
    out as the server reads it, equal to the saved SAM2 masks; an unparseable answer is sent as empty masks."""
    import io
    import zipfile

    from PIL import Image

    from sa2va_st.evaluation.masks import decode_mask
    from sa2va_st.evaluation.predict import _video_masks
    from sa2va_st.evaluation.submission import LAYOUTS, write_submission
    from sa2va_st.model.sam2 import load_sam2
    from sa2va_st.testing.tiny import save_tiny_preset

    segmenter = load_sam2(save_tiny_preset(tmp_path / "tiny", 0, ["sam2"])["sam2"])
    dataset = dataset_of(name, synthetic_build)
    out = predict_split(tiny_model, dataset, tmp_path / "p.jsonl", batch_size=4, segmenter=segmenter)
    records = read_predictions([out])
    with pytest.raises(EvaluationError, match="server"):
        score_records(records)

    # the expected archive comes from the meta file the world released, not from our manifests
    root = Path(synthetic_build["root"])
    world = json.loads((root.parent / "world" / "world.json").read_text())
    dataset_name, split = name.split("/")
    meta_file = {
        "rvos": "rvos/meta_expressions/valid/meta_expressions.json",
        "mevis": "mevis/valid/meta_expressions.json",
    }
    meta = json.loads((root / "video_datas" / meta_file[dataset_name]).read_text())["videos"]
    frames_dir = root / "video_datas" / dataset_name / "valid" / "JPEGImages"
    prefix = "Annotations/" if dataset_name == "rvos" else ""
    wanted = {
        f"{prefix}{vid}/{exp_id}/{Path(frame).stem}.png"
        for vid, video in meta.items()
        for exp_id in video["expressions"]
        for frame in video["frames"]
    }
    assert len(wanted) == sum(len(v["expressions"]) * len(v["frames"]) for v in meta.values()) > 0
    assert world["datasets"][dataset_name]["splits"][split]["expression_count"] == len(records)

    # one answer made unparseable (sent as empty masks), one answered with a box on every shown frame
    records[0] = records[0] | {"prediction": None, "masks": None}
    answered = records[-1] | {"prediction": [[[0.1, 0.2, 0.6, 0.7]] for _ in records[-1]["frame_indices"]]}
    position = next(i for i in range(len(dataset)) if answered["id"] in dataset[i]["ids"])
    answered |= _video_masks(
        segmenter, None, dataset.clip_frames(position), dataset.clip_frame_names(position), answered
    )
    records[-1] = answered
    archive_path = tmp_path / "submission.zip"
    counts = write_submission(records, dataset_name, archive_path)
    unparseable = sum(r["masks"] is None for r in records)
    assert (
        counts == {"expressions": len(records), "frames": len(wanted), "unparseable": unparseable} and unparseable >= 1
    )
    by_name = {}
    for r in records:
        for t, frame in enumerate(r["frame_names"]):
            layout = LAYOUTS[dataset_name].format(video=r["video"], exp_id=r["exp_id"], frame=Path(frame).stem)
            by_name[layout] = None if r["masks"] is None else decode_mask(r["masks"][t])
    with zipfile.ZipFile(archive_path) as archive:
        assert set(archive.namelist()) == wanted == set(by_name)
        for entry, mask in by_name.items():
            image = Image.open(io.BytesIO(archive.read(entry)))
            pixels = np.asarray(image)
            assert image.mode == "L" and set(np.unique(pixels)) <= {0, 255}
            vid = entry.removeprefix(prefix).split("/")[0]
            height, width = np.asarray(Image.open(next((frames_dir / vid).iterdir()))).shape[:2]
            assert pixels.shape == (height, width)
            assert np.array_equal(pixels == 255, np.zeros((height, width), bool) if mask is None else mask)


def test_every_split_a_server_scores_has_its_archive_layout():
    from sa2va_st.evaluation.submission import LAYOUTS

    assert {b.dataset for b in all_benchmarks() if not b.scored_here} <= set(LAYOUTS)


def test_a_failed_archive_write_leaves_the_old_archive(tmp_path):
    from sa2va_st.evaluation.masks import encode_mask
    from sa2va_st.evaluation.submission import write_submission

    good = {
        "id": "v/0", "video": "v", "exp_id": "0", "frame_names": ["00000.jpg", "00005.jpg"], "size": [4, 6],
        "masks": [encode_mask(np.eye(4, 6, dtype=bool)), encode_mask(np.zeros((4, 6), bool))],
    }  # fmt: skip
    out = tmp_path / "s.zip"
    assert write_submission([good], "rvos", out)["frames"] == 2
    before = out.read_bytes()
    broken = {k: v for k, v in good.items() if k != "frame_names"} | {"id": "v/1"}
    with pytest.raises(EvaluationError, match="frame_names"):
        write_submission([good, broken], "rvos", out)
    with pytest.raises(EvaluationError, match="twice"):
        write_submission([good, good], "mevis", out)
    with pytest.raises(EvaluationError, match="masks for 2 frames"):
        write_submission([good | {"masks": good["masks"][:1]}], "mevis", out)
    assert out.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["s.zip"]


@pytest.mark.parametrize(
    "benchmark, record, message",
    [
        ("refcoco/val", {"id": "a", "dataset": "refcoco", "split": "val"}, "refcoco/val is scored here"),
        ("rvos/valid", {"id": "a", "dataset": "mevis", "split": "valid"}, "1 records are not of rvos/valid"),
    ],
)
def test_submit_refuses_a_split_scored_here_and_records_of_another_split(benchmark, record, message, tmp_path):
    predictions = tmp_path / "p.jsonl"
    predictions.write_text(json.dumps(record) + "\n")
    out = tmp_path / "s.zip"
    command = [sys.executable, str(REPO / "scripts" / "evaluate.py"), "submit", "--benchmark", benchmark]
    done = subprocess.run([*command, "--out", str(out), str(predictions)], capture_output=True, text=True)
    assert done.returncode == 1
    assert f"EvaluationError: {message}" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not out.exists() and list(tmp_path.iterdir()) == [predictions]
