"""Temporal readers: Charades-STA (text and JSONL) and DiDeMo (chunk indices, most agreed window)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sa2va_st.annotations import AnnotationError, clip_window, window
from sa2va_st.annotations.charades import read_charades, read_charades_jsonl, read_charades_text
from sa2va_st.annotations.didemo import chunks_to_seconds, most_agreed, read_didemo
from sa2va_st.testing.sample_tree import synthetic_data_root
from sa2va_st.testing.world import generate_world

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_CHARADES = REPO_ROOT.parent / "shared" / "data" / "charades_sta"
REAL_COUNTS = {"train": (12_404, 5_336), "test": (3_720, 1_334)}


@pytest.fixture(scope="module")
def world_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    base = tmp_path_factory.getbasetemp()
    world = generate_world(base / "annotations_world", seed=0)
    return world, synthetic_data_root(base / "annotations_world", base / "annotations_data_root")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- Charades-STA, synthetic world


@pytest.mark.parametrize("split", ["train", "test"])
def test_charades_text_counts_flaws_and_true_windows(world_root, split: str) -> None:
    world, data_root = world_root
    result = read_charades_text(data_root / f"temporal/Charades/annotations/charades_sta_{split}.txt", split)
    summary = world["datasets"]["charades"]["splits"][split]
    assert result.counts["records"] == summary["query_count"] and result.counts["videos"] == summary["video_count"]
    flaws = {f["line"]: f for f in world["flaws"] if f["file"].endswith(f"charades_sta_{split}.txt")}
    reversed_lines = {line for line, f in flaws.items() if f["kind"] == "start_after_end"}
    assert result.counts["reordered_windows"] == len(reversed_lines)
    videos = {v["video_id"]: v for v in world["videos"] if v["dataset"] == "charades"}
    for q in result.records:
        assert q.window.ordered[0] <= q.window.ordered[1]
        if q.line in flaws:
            flaw = flaws[q.line]
            assert list(q.window.written) == flaw["written"]  # kept as written
            assert q.window.reordered == (flaw["kind"] == "start_after_end")
            # the manifests clip with the video's duration; that recovers the true window
            assert list(clip_window(q.window.ordered, flaw["duration"])) == pytest.approx(flaw["true"], abs=1e-6)
        else:
            assert not q.window.reordered
        video = videos[q.video]
        events = [e for e in video["events"] if e["sentence"] + "." == q.sentence]
        assert len(events) == 1, q
        clipped = clip_window(q.window.ordered, video["duration"])
        assert clipped == pytest.approx((events[0]["start"], events[0]["end"]), abs=0.05 + 1e-9)  # text has 1 decimal


def test_window_keeps_as_written_and_orders() -> None:
    w = window(9.2, 2.1)
    assert w.written == (9.2, 2.1) and w.ordered == (2.1, 9.2) and w.reordered
    assert window(1.0, 1.0).zero_length and not window(1.0, 1.0).reordered
    assert clip_window((4.1, 10.8), 9.009) == (4.1, 9.009)


def test_charades_text_and_jsonl_agree_on_the_same_queries(tmp_path: Path) -> None:
    text = write(
        tmp_path / "charades_sta_train.txt",
        "AO8RW 0.0 6.9##a person is putting a book on a shelf.\n\nY6R7T 29.4 20.8##person begins to play on a phone.\r\n",
    )
    lines = [
        {
            "qid": 0,
            "query": "a person is putting a book on a shelf.",
            "duration": 33.67,
            "vid": "AO8RW",
            "relevant_windows": [[0.0, 6.9]],
        },
        {
            "qid": 1,
            "query": "person begins to play on a phone.",
            "duration": 29.42,
            "vid": "Y6R7T",
            "relevant_windows": [[29.4, 20.8]],
        },
    ]
    jsonl = write(tmp_path / "charades_train.jsonl", "".join(json.dumps(x) + "\n" for x in lines))
    a, b = read_charades(text, "train"), read_charades(jsonl, "train")
    assert (a.source_format, b.source_format) == ("text", "jsonl")
    assert [(q.video, q.sentence, q.window) for q in a.records] == [(q.video, q.sentence, q.window) for q in b.records]
    assert a.counts["reordered_windows"] == b.counts["reordered_windows"] == 1
    assert a.counts["blank_lines"] == 1 and [q.line for q in a.records] == [1, 3]
    assert [q.qid for q in a.records] == ["train-L1", "train-L3"] and [q.qid for q in b.records] == ["0", "1"]
    assert [q.duration for q in b.records] == [33.67, 29.42] and a.records[0].duration is None


@pytest.mark.parametrize(
    "content, message, line",
    [
        ("AO8RW 0.0 6.9 a person is sitting.\n", "no '##'", "line 1"),
        ("AO8RW 0.0 6.9##ok.\nAO8RW 0.0##missing end.\n", "2 fields before '##'", "line 2"),
        ("AO8RW 0.0 6.9##ok.\nAO8RW 1.0 x##bad time.\n", "'x' is not a time", "line 2"),
        ("AO8RW -1.0 6.9##negative.\n", "'-1.0' is not a time", "line 1"),
        ("AO8RW 0.0 nan##not a number.\n", "'nan' is not a time", "line 1"),
        ("AO8RW 0.0 6.9##   \n", "empty sentence", "line 1"),
    ],
)
def test_malformed_charades_text_names_file_and_line(tmp_path: Path, content: str, message: str, line: str) -> None:
    path = write(tmp_path / "charades_sta_test.txt", content)
    with pytest.raises(AnnotationError) as error:
        read_charades_text(path, "test")
    text = str(error.value)
    assert message in text and str(path) in text and f"key: {line}" in text and "fix:" in text


@pytest.mark.parametrize(
    "content, message, key",
    [
        ('{"qid": 1, "query": "q", "vid": "V", "relevant_windows": [[0, 1]]}\nnot json\n', "not JSON", "line 2"),
        ("[1, 2]\n", "expected an object", "line 1"),
        ('{"qid": 1, "query": "q", "relevant_windows": [[0, 1]]}\n', "lacks 'vid'", "line 1.vid"),
        (
            '{"qid": 1, "query": "q", "vid": "V", "relevant_windows": [[0, 1], [2, 3]]}\n',
            "exactly one [start, end]",
            "line 1.relevant_windows",
        ),
        (
            '{"qid": 1, "query": "q", "vid": "V", "relevant_windows": [["0", 1]]}\n',
            "expected a time",
            "line 1.relevant_windows",
        ),
        (
            '{"qid": 1, "query": 5, "vid": "V", "relevant_windows": [[0, 1]]}\n',
            "'query' must be a non-empty string",
            "line 1.query",
        ),
        (
            '{"qid": 1, "query": "q", "vid": "V", "relevant_windows": [[0, 1]]}\n' * 2,
            "qid 1 appears twice",
            "line 2.qid",
        ),
        ('{"qid": 1.5, "query": "q", "vid": "V", "relevant_windows": [[0, 1]]}\n', "expected an integer", "line 1.qid"),
    ],
)
def test_malformed_charades_jsonl_names_file_and_key(tmp_path: Path, content: str, message: str, key: str) -> None:
    path = write(tmp_path / "charades_test.jsonl", content)
    with pytest.raises(AnnotationError) as error:
        read_charades_jsonl(path, "test")
    text = str(error.value)
    assert message in text and str(path) in text and f"key: {key}" in text


def test_unknown_video_is_refused_when_videos_are_known(tmp_path: Path) -> None:
    path = write(tmp_path / "charades_sta_test.txt", "AAAAA 0.0 1.0##one.\nBBBBB 0.0 1.0##two.\n")
    assert read_charades_text(path, "test", videos={"AAAAA", "BBBBB"}).counts["records"] == 2
    with pytest.raises(AnnotationError, match="video BBBBB is not among the 1 known videos") as error:
        read_charades_text(path, "test", videos={"AAAAA"})
    assert "key: line 2" in str(error.value)


# ---------------------------------------------------------------- Charades-STA, the real annotations


@pytest.mark.skipif(
    not REAL_CHARADES.is_dir(),
    reason=f"the real Charades-STA annotations are not here ({REAL_CHARADES}: ../shared is absent)",
)
@pytest.mark.parametrize("split", ["train", "test"])
def test_real_charades_jsonl_and_its_text_form_agree(tmp_path: Path, split: str) -> None:
    jsonl = read_charades_jsonl(REAL_CHARADES / f"charades_{split}_release.jsonl", split)
    queries, videos = REAL_COUNTS[split]
    assert jsonl.counts["records"] == queries and jsonl.counts["videos"] == videos
    # the same data in the official text form (windows as written, shortest float repr)
    text_path = write(
        tmp_path / f"charades_sta_{split}.txt",
        "".join(f"{q.video} {q.window.written[0]!r} {q.window.written[1]!r}##{q.sentence}\n" for q in jsonl.records),
    )
    text = read_charades_text(text_path, split)
    assert [(q.video, q.sentence, q.window) for q in text.records] == [
        (q.video, q.sentence, q.window) for q in jsonl.records
    ]
    for key in ("records", "videos", "reordered_windows", "zero_length_windows"):
        assert text.counts[key] == jsonl.counts[key], key
    print(f"real Charades-STA {split}: {jsonl.counts}")  # reorder counts, shown with -s


# ---------------------------------------------------------------- DiDeMo


def test_chunks_to_seconds_and_clipping() -> None:
    assert chunks_to_seconds(0, 0) == (0.0, 5.0)
    assert chunks_to_seconds(2, 5) == (10.0, 30.0)
    assert chunks_to_seconds(2, 5, duration=27.3) == (10.0, 27.3)
    assert chunks_to_seconds(5, 5, duration=22.0) == (22.0, 22.0)  # a chunk past the end clips to a point


def test_most_agreed_window_and_ties() -> None:
    assert most_agreed([(1, 2), (1, 2), (0, 2), (1, 2)]) == ((1, 2), 3, False)
    assert most_agreed([(3, 4), (1, 2), (3, 4), (1, 2)]) == ((1, 2), 2, True)  # tie: the earliest
    assert most_agreed([(2, 3), (2, 2), (4, 5), (1, 5)]) == ((1, 5), 1, True)  # all differ: earliest start
    assert most_agreed([(2, 2), (2, 3)]) == ((2, 2), 1, True)  # same start: the shorter


def test_didemo_reader_mode_reorder_and_counts(tmp_path: Path) -> None:
    entries = [
        {
            "annotation_id": 7,
            "description": "a dog runs",
            "video": "v1.mp4",
            "times": [[1, 1], [1, 1], [0, 1], [1, 2]],
            "num_segments": 6,
        },
        {
            "annotation_id": 8,
            "description": "a cat sits",
            "video": "v1.mp4",
            "times": [[3, 2], [2, 3], [4, 4], [4, 4]],
            "num_segments": 6,
        },
        {
            "annotation_id": 9,
            "description": "the end",
            "video": "v2.mp4",
            "times": [[5, 6], [5, 6], [5, 6], [5, 6]],
            "num_segments": 6,
        },
    ]
    result = read_didemo(write(tmp_path / "train_data.json", json.dumps(entries)), "train")
    a, b, c = result.records
    assert (a.chunks, a.agreement, a.tie, a.window) == ((1, 1), 2, False, (5.0, 10.0))
    assert (b.chunks, b.agreement, b.tie, b.window) == (
        (2, 3),
        2,
        True,
        (10.0, 20.0),
    )  # [3,2] ordered, ties [4,4]: earliest wins
    assert b.times == ((3, 2), (2, 3), (4, 4), (4, 4))  # as written
    assert c.window == (25.0, 35.0) and c.clipped(30.0) == (25.0, 30.0)
    assert result.counts == {
        "records": 3,
        "videos": 2,
        "mode_ties": 1,
        "unanimous": 1,
        "reordered_annotator_windows": 1,
        "chunks_beyond_num_segments": 4,
    }


def test_didemo_synthetic_world_windows_are_the_events(world_root) -> None:
    world, data_root = world_root
    videos = {Path(v["path"]).name: v for v in world["videos"] if v["dataset"] == "didemo"}
    for split, summary in world["datasets"]["didemo"]["splits"].items():
        result = read_didemo(data_root / "temporal/didemo/annotations" / summary["file"], split)
        assert (
            result.counts["records"] == summary["annotation_count"]
            and result.counts["videos"] == summary["video_count"]
        )
        for q in result.records:
            video = videos[q.video]
            event = next(e for e in video["events"] if e["sentence"] == q.sentence)
            assert q.agreement == 3 and not q.tie
            assert q.clipped(video["duration"]) == pytest.approx((event["start"], event["end"]), abs=1e-6)


@pytest.mark.parametrize(
    "edit, message, key",
    [
        (lambda e: e[1].pop("times"), "missing key 'times'", "[1].times"),
        (lambda e: e[0].__setitem__("times", []), "no annotator window", "[0].times"),
        (lambda e: e[0]["times"].__setitem__(2, [1]), "must be [s, e]", "[0].times[2]"),
        (lambda e: e[0]["times"].__setitem__(2, [-1, 2]), ">= 0", "[0].times[2]"),
        (lambda e: e[0]["times"].__setitem__(2, ["1", 2]), "expected an integer", "[0].times[2]"),
        (lambda e: e[2].__setitem__("annotation_id", e[0]["annotation_id"]), "appears twice", "[2].annotation_id"),
        (lambda e: e[0].__setitem__("num_segments", "six"), "'num_segments' is a str", "[0].num_segments"),
        (lambda e: e[1].__setitem__("description", None), "'description' is a null", "[1].description"),
    ],
)
def test_malformed_didemo_names_file_and_key(world_root, tmp_path: Path, edit, message: str, key: str) -> None:
    _, data_root = world_root
    entries = json.loads((data_root / "temporal/didemo/annotations/train_data.json").read_text())
    edit(entries)
    path = write(tmp_path / "train_data.json", json.dumps(entries))
    with pytest.raises(AnnotationError) as error:
        read_didemo(path, "train")
    text = str(error.value)
    assert message in text and str(path) in text and f"key: {key}" in text and "fix:" in text


def test_didemo_unknown_video_and_broken_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "val_data.json",
        json.dumps([{"annotation_id": 1, "description": "d", "video": "x.mp4", "times": [[0, 0]], "num_segments": 1}]),
    )
    with pytest.raises(AnnotationError, match="video x.mp4 is not among"):
        read_didemo(path, "val", videos={"y.mp4"})
    write(path, '{"not": "a list"}')
    with pytest.raises(AnnotationError, match="expected a list of entries"):
        read_didemo(path, "val")
    write(path, "[{")
    with pytest.raises(AnnotationError, match="not valid JSON"):
        read_didemo(path, "val")
