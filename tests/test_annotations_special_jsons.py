"""The special_jsons stage: layout, byte-for-byte reproducibility, schemas, report, script."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from sa2va_st.annotations import AnnotationError, build_special_jsons, load_schemas, read_special_json, validate
from sa2va_st.annotations.special_jsons import dumps, kind_of
from sa2va_st.testing.sample_tree import synthetic_data_root
from sa2va_st.testing.world import generate_world

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "build_special_jsons.py"
EXPECTED_FILES = {
    "refcoco": {"train", "val", "testA", "testB"},
    "refcoco+": {"train", "val", "testA", "testB"},
    "refcocog": {"train", "val", "test"},
    "mevis": {"train", "valid_u", "valid"},
    "rvos": {"train", "valid"},
    "revos": {"train", "valid"},
    "charades": {"train", "test"},
    "didemo": {"train", "val", "test"},
}


@pytest.fixture(scope="module")
def world_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    base = tmp_path_factory.getbasetemp()
    world = generate_world(base / "annotations_world", seed=0)
    return world, synthetic_data_root(base / "annotations_world", base / "annotations_data_root")


@pytest.fixture(scope="module")
def built(world_root, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("special") / "special_jsons"
    return out, build_special_jsons(world_root[1], out)


def file_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_one_file_per_dataset_and_split(built) -> None:
    out, report = built
    found = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    expected = {f"{d}/{s}.json" for d, splits in EXPECTED_FILES.items() for s in splits} | {"report.json"}
    assert found == expected
    assert {d: set(e["splits"]) for d, e in report["datasets"].items()} == EXPECTED_FILES
    assert json.loads((out / "report.json").read_text()) == report


def test_build_is_reproducible_byte_for_byte(world_root, built, tmp_path: Path) -> None:
    out, _ = built
    again = tmp_path / "elsewhere" / "special_jsons"
    build_special_jsons(world_root[1], again)
    assert file_bytes(again) == file_bytes(out)
    # and the bytes hold no absolute path and no machine-specific data
    for name, data in file_bytes(out).items():
        text = data.decode("utf-8")
        assert str(world_root[1]) not in text and str(out) not in text and str(tmp_path) not in text, name
        assert text.endswith("}\n")


def test_every_file_matches_its_schema_and_is_canonical(built) -> None:
    out, report = built
    schemas = load_schemas()
    for dataset, entry in report["datasets"].items():
        for split, info in entry["splits"].items():
            path = out / info["file"]
            doc = read_special_json(path)
            assert (doc["dataset"], doc["split"], doc["kind"]) == (dataset, split, kind_of(dataset))
            assert dumps(doc) == path.read_text(encoding="utf-8")  # what is on disk is the canonical form
            assert doc["counts"] == info["counts"]
            assert all(not Path(source).is_absolute() for source in doc["sources"])
    jsonschema.Draft202012Validator(schemas["report"]).validate(report)


def test_counts_and_content_match_the_world(world_root, built) -> None:
    world, _ = world_root
    out, report = built
    d = report["datasets"]
    for name in ("refcoco", "refcoco+", "refcocog"):
        for split, expected in world["datasets"][name]["splits"].items():
            assert d[name]["splits"][split]["counts"]["records"] == expected["sentences"]
    for split, expected in world["datasets"]["mevis"]["splits"].items():
        assert d["mevis"]["splits"][split]["counts"]["records"] == expected["expression_count"]
    mevis_masks = sum(split["mask_record_count"] for split in world["datasets"]["mevis"]["splits"].values())
    assert d["mevis"]["mask_entries"] == {"entries": mevis_masks, "unused": 0}
    for split, expected in world["datasets"]["revos"]["splits"].items():
        counts = d["revos"]["splits"][split]["counts"]
        assert counts["records"] == expected["expression_count"]
        assert counts["type_id_2"] == expected["expression_count_by_type_id"]["2"] == counts["empty_expressions"]
    assert d["revos"]["mask_entries"] == {"entries": world["datasets"]["revos"]["mask_record_count"], "unused": 0}
    for split, expected in world["datasets"]["rvos"]["splits"].items():
        assert d["rvos"]["splits"][split]["counts"]["records"] == expected["expression_count"]
    for split, expected in world["datasets"]["charades"]["splits"].items():
        assert d["charades"]["splits"][split]["counts"]["records"] == expected["query_count"]
    assert d["charades"]["splits"]["train"]["counts"]["reordered_windows"] == 1
    for split, expected in world["datasets"]["didemo"]["splits"].items():
        assert d["didemo"]["splits"][split]["counts"]["records"] == expected["annotation_count"]

    charades = json.loads((out / "charades/train.json").read_text())
    flaw = next(f for f in world["flaws"] if f["kind"] == "start_after_end")
    record = next(r for r in charades["records"] if r["line"] == flaw["line"])
    assert record["window"] == sorted(flaw["written"]) and record["window_as_written"] == flaw["written"]
    assert sum("window_as_written" in r for r in charades["records"]) == 1

    rvos_valid = json.loads((out / "rvos/valid.json").read_text())
    assert rvos_valid["annotated"] is False and all(r["boxes"] is None for r in rvos_valid["records"])
    assert all(r["width"] and r["height"] for r in rvos_valid["records"])  # from the first frame's header
    image = json.loads((out / "refcoco/val.json").read_text())["records"][0]
    assert image["frame_dir"] == "refer_seg/coco2014/train2014" and len(image["boxes"]) == len(image["frames"]) == 1
    mevis = json.loads((out / "mevis/train.json").read_text())["records"][0]
    assert len(mevis["boxes"]) == len(mevis["frames"]) and mevis["frames"][0].endswith(".jpg")
    assert mevis["frame_dir"] == f"video_datas/mevis/train/JPEGImages/{mevis['video']}"


def broken_variants(doc: dict) -> list[tuple[str, dict]]:
    variants = []
    for label, edit in [
        ("box of 3 numbers", lambda d: d["records"][0]["boxes"].__setitem__(0, [0.1, 0.2, 0.3])),
        ("box outside [0, 1]", lambda d: d["records"][0]["boxes"].__setitem__(0, [0.1, 0.2, 1.3, 0.5])),
        ("record without sentence", lambda d: d["records"][0].pop("sentence")),
        ("unknown record key", lambda d: d["records"][0].__setitem__("extra", 1)),
        ("absolute source path", lambda d: d["sources"].__setitem__("/abs/path.json", "0" * 64)),
        ("wrong format version", lambda d: d.__setitem__("format_version", 1)),
        ("negative count", lambda d: d["counts"].__setitem__("records", -1)),
    ]:
        broken = copy.deepcopy(doc)
        edit(broken)
        variants.append((label, broken))
    return variants


def test_schema_rejects_broken_files(built, tmp_path: Path) -> None:
    out, _ = built
    schemas = load_schemas()
    doc = json.loads((out / "mevis/train.json").read_text())
    validate(doc, schemas["video_refer"], "mevis/train.json")
    for label, broken in broken_variants(doc):
        with pytest.raises(AnnotationError, match="does not match its schema"):
            validate(broken, schemas["video_refer"], "mevis/train.json")
        path = tmp_path / "broken.json"
        path.write_text(json.dumps(broken))
        with pytest.raises(AnnotationError, match="does not match its schema") as error:
            read_special_json(path)
        assert str(path) in str(error.value), label
    charades = json.loads((out / "charades/train.json").read_text())
    charades["records"][0]["window"] = [-1.0, 2.0]
    with pytest.raises(AnnotationError, match="records/0/window"):
        validate(charades, schemas[kind_of("charades")], "charades/train.json")


def test_absent_datasets_are_skipped_and_said_so(world_root, tmp_path: Path) -> None:
    _, data_root = world_root
    partial = tmp_path / "data"
    shutil.copytree(data_root / "temporal", partial / "temporal")
    out = tmp_path / "special_jsons"
    (out / "mevis").mkdir(parents=True)
    (out / "mevis" / "train.json").write_text("{}")  # left by an earlier run whose data is gone
    report = build_special_jsons(partial, out)
    assert {n for n, e in report["datasets"].items() if e["status"] == "built"} == {"charades", "didemo"}
    assert report["datasets"]["revos"] == {
        "status": "skipped",
        "folder": "video_datas/ReVOS",
        "reason": "video_datas/ReVOS is absent under data_root",
    }
    assert not (out / "mevis" / "train.json").exists()
    only = build_special_jsons(partial, tmp_path / "only", datasets=["didemo"])
    assert list(only["datasets"]) == ["didemo"]
    with pytest.raises(AnnotationError, match="unknown dataset"):
        build_special_jsons(partial, tmp_path / "x", datasets=["kinetics"])


def test_malformed_input_fails_and_leaves_earlier_outputs_intact(world_root, tmp_path: Path) -> None:
    _, data_root = world_root
    partial = tmp_path / "data"
    shutil.copytree(data_root / "temporal", partial / "temporal")
    out = tmp_path / "special_jsons"
    build_special_jsons(partial, out)
    before = file_bytes(out)
    text = partial / "temporal/Charades/annotations/charades_sta_test.txt"
    text.write_text(text.read_text() + "BROKEN LINE\n")
    with pytest.raises(AnnotationError, match="no '##'"):
        build_special_jsons(partial, out)
    assert file_bytes(out) == before
    (partial / "temporal/didemo/annotations").mkdir(exist_ok=True)
    for p in (partial / "temporal/didemo/annotations").iterdir():
        p.unlink()
    with pytest.raises(AnnotationError, match="holds no"):
        build_special_jsons(partial, out, datasets=["didemo"])


def test_script_builds_and_reports_errors_cleanly(world_root, tmp_path: Path) -> None:
    _, data_root = world_root
    out = tmp_path / "special_jsons"
    ok = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--data-root",
            str(data_root),
            "--out-dir",
            str(out),
            "--datasets",
            "charades",
            "didemo",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert set(json.loads((out / "report.json").read_text())["datasets"]) == {"charades", "didemo"}
    broken = tmp_path / "broken"
    (broken / "temporal/didemo/annotations").mkdir(parents=True)
    (broken / "temporal/didemo/annotations/train_data.json").write_text("[{]")
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "--data-root", str(broken), "--out-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "AnnotationError" in bad.stderr and "train_data.json" in bad.stderr
    assert "Traceback" not in bad.stderr
