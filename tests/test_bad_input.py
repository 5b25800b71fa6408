"""Bad input, stage by stage: malformed or hostile files and values each get an error naming the file (or
the config key), the key where there is one, and the fix. The other bad-input tests live beside their
stage (test_archives, test_annotations_readers, test_features_*, test_model, test_config, ...); these are
the cases of the reliability issue's list that those did not hold: NaN and huge numbers, encodings,
empty files, wrong top-level types, pickle protocol 5, damaged model folders,
damaged prediction files."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest
import yaml

from sa2va_st.errors import AnnotationError, ConfigError, EvaluationError, ModelError, Sa2vaError

REPO = Path(__file__).resolve().parents[1]


def assert_names(error: Sa2vaError, file: Path | str | None, key: str | None = None) -> None:
    """The error says where (file, key) and what to do (fix)."""
    if file is not None:
        assert error.file == str(file)
    if key is not None:
        assert error.key == key
    assert error.fix


# ----------------------------------------------------------------------------- annotation readers

DIDEMO_ENTRY = {"annotation_id": 1, "description": "a dog runs", "video": "v.mp4", "num_segments": 6, "times": [[0, 1]]}
META_VIDEO = {"frames": ["00000"], "expressions": {"0": {"exp": "a cat", "obj_id": 1, "anno_id": 1}}}

READER_CASES = {
    # name: (reader, file name, bytes, key or None)
    "charades: not UTF-8": ("charades_text", "c.txt", b"V1 0 1##caf\xe9\n", None),
    "charades: NaN time": ("charades_text", "c.txt", b"V1 nan 3##x\n", "line 1"),
    "charades: huge time": ("charades_text", "c.txt", b"V1 1e400 3##x\n", "line 1"),
    "charades: empty file": ("charades_text", "c.txt", b"", None),
    "charades: blank lines only": ("charades_text", "c.txt", b"\n\n", None),
    "charades jsonl: NaN window": (
        "charades_jsonl", "c.jsonl",
        b'{"qid": 1, "query": "x", "duration": 10, "vid": "V", "relevant_windows": [[NaN, 1]]}\n',
        "line 1.relevant_windows",
    ),
    "didemo: empty list": ("didemo", "d.json", b"[]", None),
    "didemo: zero bytes": ("didemo", "d.json", b"", None),
    "didemo: NaN num_segments": ("didemo", "d.json", json.dumps([DIDEMO_ENTRY | {"num_segments": float("nan")}]).encode(), "[0].num_segments"),
    "didemo: fractional chunk": ("didemo", "d.json", json.dumps([DIDEMO_ENTRY | {"times": [[0.5, 1]]}]).encode(), "[0].times[0]"),
    "didemo: top level object": ("didemo", "d.json", b'{"0": {}}', None),
    "didemo: duplicated id": ("didemo", "d.json", json.dumps([DIDEMO_ENTRY, DIDEMO_ENTRY]).encode(), "[1].annotation_id"),
    "meta: zero bytes": ("meta", "m.json", b"", None),
    "meta: NaN height": ("meta", "m.json", json.dumps({"videos": {"v": META_VIDEO | {"height": float("nan"), "width": 3}}}).encode(), "videos.v.height"),
    "meta: huge height": ("meta", "m.json", b'{"videos": {"v": {"frames": ["a"], "height": 1e400, "width": 3, "expressions": {}}}}', "videos.v.height"),
    "meta: videos is a list": ("meta", "m.json", b'{"videos": []}', "videos"),
    "meta: sentence not a string": ("meta", "m.json", json.dumps({"videos": {"v": META_VIDEO | {"expressions": {"0": {"exp": 5, "obj_id": 1, "anno_id": 1}}}}}).encode(), "videos.v.expressions.0.exp"),
    "meta: a frame listed twice": ("meta", "m.json", json.dumps({"videos": {"v": META_VIDEO | {"frames": ["a", "a"]}}}).encode(), "videos.v.frames"),
    "meta: empty anno_id": ("meta", "m.json", json.dumps({"videos": {"v": META_VIDEO | {"expressions": {"0": {"exp": "x", "obj_id": [], "anno_id": []}}}}}).encode(), "videos.v.expressions.0.anno_id"),
    "mask dict: a list": ("mask_dict", "k.json", b"[]", None),
    "refs: a dict": ("refs", "r.p", pickle.dumps({"a": 1}, protocol=2), None),
    "refs: zero bytes": ("refs", "r.p", b"", None),
    "instances: a list": ("instances", "i.json", b"[]", None),
}  # fmt: skip


def read(reader: str, path: Path):
    from sa2va_st.annotations.charades import read_charades_jsonl, read_charades_text
    from sa2va_st.annotations.didemo import read_didemo
    from sa2va_st.annotations.refcoco import read_instances, read_refs
    from sa2va_st.annotations.video_refer import read_mask_dict, read_meta_expressions

    return {
        "charades_text": lambda: read_charades_text(path, "test"),
        "charades_jsonl": lambda: read_charades_jsonl(path, "test"),
        "didemo": lambda: read_didemo(path, "test"),
        "meta": lambda: read_meta_expressions(path),
        "mask_dict": lambda: read_mask_dict(path),
        "refs": lambda: read_refs(path),
        "instances": lambda: read_instances(path),
    }[reader]()


@pytest.mark.parametrize("case", sorted(READER_CASES))
def test_a_malformed_annotation_file_is_refused_naming_file_key_and_fix(case, tmp_path):
    reader, name, data, key = READER_CASES[case]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(AnnotationError) as caught:
        read(reader, path)
    assert_names(caught.value, path, key)


def test_unicode_sentences_and_a_huge_chunk_index_are_kept_or_counted_not_lost(tmp_path):
    """Non-ASCII text is data, kept exactly; a DiDeMo chunk far beyond the video is counted (and clipped
    later, where the duration is known), not an error."""
    from sa2va_st.annotations.charades import read_charades_text
    from sa2va_st.annotations.didemo import read_didemo

    text = tmp_path / "c.txt"
    text.write_text("V1 0 1##la señora abre la puerta 🚪\n", encoding="utf-8")
    assert read_charades_text(text, "test").records[0].sentence == "la señora abre la puerta 🚪"
    didemo = tmp_path / "d.json"
    didemo.write_text(json.dumps([DIDEMO_ENTRY | {"times": [[0, 10**30]]}]))
    assert read_didemo(didemo, "test").counts["chunks_beyond_num_segments"] == 1


def test_a_protocol_5_pickle_that_asks_for_eval_is_refused(tmp_path):
    from sa2va_st.data.pickles import UnsafePickleError, load_builtin_pickle

    class Payload:
        def __reduce__(self):
            return (eval, ("1 + 1",))

    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps(Payload(), protocol=5))
    with pytest.raises(UnsafePickleError) as caught:
        load_builtin_pickle(path)
    assert "builtins.eval" in str(caught.value)
    assert_names(caught.value, path)


# ----------------------------------------------------------------------------- config

CONFIG_CASES = {
    "fps": float("nan"),
    "training.epochs": float("inf"),
    "training.lr": float("-inf"),
    "clip.shards": 0,
    "evaluation.shards": 0,
    "evaluation.batch_size": 0,
    "training.save_total_limit": 0,
    "clip.precision": "fp8",
    "data_root": "",
    "report.random_weights": "yes",
}


@pytest.mark.parametrize("key", sorted(CONFIG_CASES))
def test_a_malformed_config_value_is_refused_naming_the_key(key):
    from sa2va_st.config import validate_config

    config = copy.deepcopy(yaml.safe_load((REPO / "config.yaml").read_text()))
    node, *_ = [config]
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = CONFIG_CASES[key]
    with pytest.raises(ConfigError) as caught:
        validate_config(config, REPO / "workflow" / "schemas" / "config.schema.yaml")
    assert_names(caught.value, "config.yaml", key)


# ----------------------------------------------------------------------------- features, predictions, models


def test_a_damaged_prediction_file_is_refused_naming_the_line(tmp_path):
    from sa2va_st.evaluation.predict import read_predictions

    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b", "answer": \n{"id": "c"}\n')
    with pytest.raises(EvaluationError) as caught:
        read_predictions([path])
    assert_names(caught.value, path, "line 2")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from sa2va_st.model import Sa2vaSTConfig, Sa2vaSTModel
    from sa2va_st.model.checkpoint import export
    from sa2va_st.testing.tiny import TINY_CLIP_DIM, save_tiny_preset

    folder = tmp_path_factory.mktemp("exported")
    vlm = save_tiny_preset(folder / "tiny", 0, ["vlm"])["vlm"]
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["model"].update(vlm=str(vlm), dtype="fp32", max_image_tiles=1)
    config["model"]["lora"].update(r=8, alpha=16)
    config["model"]["temporal"]["clip_dim"] = TINY_CLIP_DIM
    model = Sa2vaSTModel.from_config(Sa2vaSTConfig.from_pipeline_config(config), seed=0)
    return export(model, folder / "model")


def damage(folder: Path, how: str) -> Path:
    """Damage a copy of an exported model folder; returns the file (or folder) damaged."""
    from sa2va_st.model.checkpoint import EXPORT_META, EXPORT_TEMPORAL, EXPORT_VLM

    if how == "temporal weights missing":
        (folder / EXPORT_TEMPORAL).unlink()
        return folder / EXPORT_TEMPORAL
    if how == "temporal weights truncated":
        data = (folder / EXPORT_TEMPORAL).read_bytes()
        (folder / EXPORT_TEMPORAL).write_bytes(data[: len(data) // 2])
        return folder / EXPORT_TEMPORAL
    if how == "vlm weights missing":
        for weights in (folder / EXPORT_VLM).glob("*.safetensors"):
            weights.unlink()
        return folder / EXPORT_VLM
    if how == "vlm config missing":
        (folder / EXPORT_VLM / "config.json").unlink()
        return folder / EXPORT_VLM
    if how == "description unreadable":
        (folder / EXPORT_META).write_text("{not json")
        return folder / EXPORT_META
    raise ValueError(how)


@pytest.mark.parametrize(
    "how",
    [
        "temporal weights missing",
        "temporal weights truncated",
        "vlm weights missing",
        "vlm config missing",
        "description unreadable",
    ],
)
def test_a_damaged_model_folder_is_refused_naming_the_file(how, exported, tmp_path):
    import shutil

    from sa2va_st.model.checkpoint import load_exported

    folder = tmp_path / "model"
    shutil.copytree(exported, folder)
    damaged = damage(folder, how)
    with pytest.raises(ModelError) as caught:
        load_exported(folder)
    assert_names(caught.value, damaged)
