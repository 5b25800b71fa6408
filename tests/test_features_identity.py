"""A feature set knows what made it (features.identity): folders named by the checkpoint's hash, and a
folder that refuses features of another model set-up, naming both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sa2va_st.errors import FeatureError
from sa2va_st.features import identity
from sa2va_st.features.identity import FeatureIdentity, check_identity, features_label, weights_id
from sa2va_st.testing import media
from sa2va_st.testing.tiny import save_tiny_preset

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "extract_clip_features.py"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(identity.CACHE_ENV, str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    """Two different tiny CLIPs in folders of the same name (lab_a/clip, lab_b/clip)."""
    root = tmp_path_factory.mktemp("checkpoints")
    return (
        save_tiny_preset(root / "lab_a", 0, ["clip"])["clip"],
        save_tiny_preset(root / "lab_b", 1, ["clip"])["clip"],
    )


def test_a_tag_names_itself_and_a_checkpoint_names_its_bytes(two_checkpoints):
    a, b = two_checkpoints
    assert features_label("ViT-H-14", "laion2b_s32b_b79k") == "ViT-H-14_laion2b_s32b_b79k"
    assert weights_id("laion2b_s32b_b79k") == "laion2b_s32b_b79k"
    label_a, label_b = features_label("tiny", str(a)), features_label("tiny", str(b))
    assert label_a.startswith("tiny_clip-") and label_b.startswith("tiny_clip-")
    assert label_a != label_b, "two checkpoints with the same name must never share a folder"
    assert weights_id(str(a)).startswith("sha256:") and weights_id(str(a)) != weights_id(str(b))
    weights = a / "open_clip_model.safetensors"
    assert features_label("tiny", str(weights)) == f"tiny_open_clip_model-{identity.checkpoint_sha256(weights)[:12]}"


def test_checkpoint_hashes_are_cached_by_path_size_and_mtime(two_checkpoints, monkeypatch):
    a, _ = two_checkpoints
    first = weights_id(str(a))
    calls = []
    monkeypatch.setattr(identity, "sha256_file", lambda path: calls.append(path) or "0" * 64)
    assert weights_id(str(a)) == first and calls == [], "an unchanged checkpoint is not read again"


def test_a_folder_refuses_features_of_another_checkpoint_naming_both(tmp_path, two_checkpoints):
    a, b = two_checkpoints
    preprocess = {"image_size": [32, 32], "interpolation": "bicubic"}
    path = tmp_path / "identity.json"
    check_identity(tmp_path, FeatureIdentity.of("tiny", str(a), preprocess, 10.0), path)
    check_identity(tmp_path, FeatureIdentity.of("tiny", str(a), preprocess, 10.0), path)  # the same: fine
    with pytest.raises(FeatureError) as error:
        check_identity(tmp_path, FeatureIdentity.of("tiny", str(b), preprocess, 10.0), path)
    message = str(error.value)
    assert str(a) in message and str(b) in message and "weights" in message
    assert error.value.key == "clip.pretrained"
    for changed in (FeatureIdentity.of("tiny", str(a), preprocess, 5.0), FeatureIdentity.of("tiny", str(a), {}, 10.0)):
        with pytest.raises(FeatureError, match="another model set-up"):
            check_identity(tmp_path, changed, path)
    recorded = json.loads(path.read_text())
    assert recorded["weights"] == weights_id(str(a)) and recorded["frame_rule"] >= 1


def test_shards_recording_the_identity_at_once_leave_each_others_temporaries_alone(tmp_path, two_checkpoints):
    """Every shard job of a feature folder records its identity.json when it finds none, and SLURM or
    --cores N start them together (a CI run lost a shard so: one swept the other's temporary before its
    rename). A temporary of identity.json may be a live shard's: it is not swept."""
    import tempfile

    a, _ = two_checkpoints
    preprocess = {"image_size": [32, 32], "interpolation": "bicubic"}
    path = tmp_path / "identity.json"
    _, other = tempfile.mkstemp(prefix=".identity.json.", suffix=".tmp", dir=tmp_path)  # another shard's, mid-write
    check_identity(tmp_path, FeatureIdentity.of("tiny", str(a), preprocess, 10.0), path)
    assert Path(other).exists() and json.loads(path.read_text())["weights"] == weights_id(str(a))
    os.replace(other, path)  # that shard's rename still finds its file


@pytest.mark.slow
def test_the_shard_script_keeps_a_folder_to_the_checkpoint_that_made_it(tmp_path, two_checkpoints):
    a, b = two_checkpoints
    videos = tmp_path / "videos"
    media.write_cfr(videos / "v1.mp4", 25, 30)
    out = tmp_path / "features"

    def shard(checkpoint: Path) -> subprocess.CompletedProcess:
        args = [
            "--videos", str(videos), "--shard", "0", "--shards", "1", "--fps", "5", "--out-dir", str(out),
            "--index", str(tmp_path / "index.parquet"), "--identity", str(out / "identity.json"),
            "--model", "tiny", "--pretrained", str(checkpoint), "--batch-size", "8", "--precision", "fp32",
            "--num-workers", "0", "--max-failed-fraction", "0", "--device", "cpu",
        ]  # fmt: skip
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        return subprocess.run(
            [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300
        )

    assert shard(a).returncode == 0
    before = (out / "v1.npy").read_bytes()
    refused = shard(b)
    assert refused.returncode == 1
    assert "FeatureError" in refused.stderr and str(a) in refused.stderr and str(b) in refused.stderr
    assert (out / "v1.npy").read_bytes() == before, "the refused job must not touch the folder's features"
