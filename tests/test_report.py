"""The report's parts on hand-made inputs: the scorecard rows (status, published numbers, difference), the
figures, and the gallery's ranking. The whole page, rendered in Chromium, is tested on the demo
(test_workflow)."""

from __future__ import annotations

import pytest

from sa2va_st.report import plots
from sa2va_st.report.gallery import answer_iou, examples_and_failures
from sa2va_st.report.published import published_for
from sa2va_st.report.scorecard import scorecard_rows


def rows_by(rows, benchmark, metric):
    (row,) = [r for r in rows if f"{r['dataset']}/{r['split']}" == benchmark and r["metric"] == metric]
    return row


def test_scorecard_sets_ours_beside_the_published_numbers():
    metrics = {
        "trained": {
            ("refcoco", "val"): {"Acc@0.5": 0.5, "box_mIoU": 0.4, "n": 10, "unparseable": 1},
            ("charades", "test"): {"R1@0.5": 0.3, "mIoU": 0.25, "n": 20, "unparseable": 0},
        },
        "untrained": {("refcoco", "val"): {"Acc@0.5": 0.0, "box_mIoU": 0.0, "n": 10, "unparseable": 10}},
    }
    rows = scorecard_rows(metrics)
    acc = rows_by(rows, "refcoco/val", "Acc@0.5")
    assert acc["ours"] == {"trained": 50.0, "untrained": 0.0} and acc["status"] == "scored here" and acc["n"] == 10
    ciou = rows_by(rows, "refcoco/val", "cIoU")  # upstream publishes cIoU; these metrics files have no masks
    assert ciou["published"] == [("Sa2VA-4B", 82.4)] and ciou["status"] == "not scored" and ciou["n"] is None
    r1 = rows_by(rows, "charades/test", "R1@0.5")
    # upstream publishes no temporal number: the difference is to the best anchor (Mr.BLIP 69.3)
    assert r1["difference"] == pytest.approx(30.0 - 69.3)
    assert {who for who, _ in r1["published"]} >= {"UniVTG", "Mr.BLIP"}
    server = rows_by(rows, "rvos/valid", "J&F")
    assert server["status"] == "needs server" and server["published"] == [("Sa2VA-4B", 71.3)]
    assert rows_by(rows, "didemo/test", "R1@0.5")["status"] == "not scored"


def test_published_numbers_are_those_of_the_docs():
    charades = {(who, metric): v for who, metric, v in published_for("charades", "test")}
    assert charades[("UniVTG", "R1@0.7")] == 38.6 and charades[("VideoChat-TPO (fine-tuned)", "mIoU")] == 55.0
    assert published_for("mevis", "valid_u") == [("Sa2VA-4B", "J&F", 55.9)]


def window(id_, expected, prediction, duration=60.0):
    return {"id": id_, "sentence": f"query {id_}", "expected": expected, "prediction": prediction, "duration": duration}


def test_temporal_figures_and_length_buckets():
    records = [
        window("a", [0, 5], [0, 5]),  # short, hit
        window("b", [0, 8], [20, 30]),  # short, miss
        window("c", [10, 30], [10, 25]),  # middle (20 s), IoU 0.75: hit
        window("d", [0, 40], None),  # long, unparseable: miss
    ]
    svg, table = plots.r1_by_length(records)
    assert svg.startswith("<svg")
    assert [(t["n"], t["R1"]) for t in table] == [(2, 0.5), (1, 1.0), (1, 0.0)]
    for figure in (plots.iou_histogram(records), plots.timelines(records)):
        assert figure.startswith("<svg") and figure.rstrip().endswith("</svg>")
    curves = plots.training_curves(
        [
            {"event": "train", "step": 1, "loss": {"image_grounding": 2.0}, "lr": 1e-3, "samples_per_s": 5.0},
            {"event": "held_out", "step": 1, "loss": {"image_grounding": 2.5}},
        ]
    )
    assert "image_grounding (held out)" in curves


def test_gallery_ranks_the_worst_answers_first():
    box = [0.1, 0.1, 0.5, 0.5]
    good = {"id": "g", "prediction": [[box]], "expected": [[box]]}
    half = {"id": "h", "prediction": [[[0.1, 0.1, 0.5, 0.3]]], "expected": [[box]]}
    missing = {"id": "m", "prediction": None, "expected": [[box]]}
    empty_right = {"id": "e", "prediction": [[]], "expected": [[]]}
    assert answer_iou(good) == 1.0 and answer_iou(half) == pytest.approx(0.5) and answer_iou(missing) == 0.0
    assert answer_iou(empty_right) == 1.0
    examples, worst = examples_and_failures([good, half, missing, empty_right], count=2)
    assert [r["id"] for r in examples] == ["g", "h"] and [r["id"] for r in worst] == ["m", "h"]
