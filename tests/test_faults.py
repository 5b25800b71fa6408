"""Fault injection: each stage's script killed with SIGKILL at points of its writes chosen by a seed
(`sa2va_st.testing.faults`: inside a write, right before a rename), then run again.

For every kill: the process died there; every file it left under a final name is byte-equal to the
uninterrupted run's (no partial file is ever taken as done); the re-run succeeds and its outputs equal
the uninterrupted run's, with no temporary file left behind. Download, features and training have
their own kill tests (test_download, test_features_pipeline, test_training); this file covers unpack,
special_jsons, the spatial and temporal manifests, evaluation and the submission archive.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from sa2va_st.testing.faults import count_points, kill_points, run_script

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "scripts"
SEEDS = (0, 1, 2)
TRANSIENT_SUFFIXES = (".tmp", ".staging", ".partial")


def transient(relative: str) -> bool:
    """A name only a write in progress uses (atomic.py's temporary files, staging folders, .partial)."""
    return any(
        part.endswith(TRANSIENT_SUFFIXES) or part.startswith(".removing.") or part == ".fault_points"
        for part in Path(relative).parts
    )


def snapshot(roots: list[Path]) -> dict[str, str]:
    """sha256 of every file under the roots, by path relative to each root's parent."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")) if root.exists() else ():
            if path.is_file():
                found[str(path.relative_to(root.parent))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def check_stage(tmp_path: Path, fresh: Callable[[Path], tuple[Path, list[str], list[Path]]]) -> list[int]:
    """The checks of the module docstring; ``fresh(folder)`` lays out a new run and returns (script, args,
    output roots). Returns the points killed at."""
    script, args, outputs = fresh(tmp_path / "reference")
    total = count_points(script, args, cwd=tmp_path / "reference")
    reference = snapshot(outputs)
    assert reference and not any(transient(p) for p in reference)
    killed = []
    for seed in SEEDS:
        for point in kill_points(total, seed, k=1):
            folder = tmp_path / f"seed{seed}_point{point}"
            script, args, outputs = fresh(folder)
            died = run_script(script, args, cwd=folder, kill_at=point)
            assert died.returncode == -9, (
                f"seed {seed}: point {point} of {total} was not reached\n{died.stderr[-2000:]}"
            )
            left = snapshot(outputs)
            for name, digest in left.items():
                if not transient(name):
                    assert reference.get(name) == digest, f"seed {seed}, point {point}: {name} is partial or wrong"
            again = run_script(script, args, cwd=folder)
            assert again.returncode == 0, f"seed {seed}, point {point}: the re-run failed\n{again.stderr[-3000:]}"
            final = snapshot(outputs)
            assert [n for n in final if transient(n)] == [], f"seed {seed}, point {point}: temporary files left"
            assert final == reference, f"seed {seed}, point {point}: the re-run's outputs differ"
            killed.append(point)
    return killed


def test_special_jsons_survive_a_kill_anywhere(synthetic_build, tmp_path):
    def fresh(folder: Path):
        folder.mkdir(parents=True)
        out = folder / "special_jsons"
        return (
            SCRIPTS / "build_special_jsons.py",
            ["--data-root", str(synthetic_build["root"]), "--out-dir", str(out)],
            [out],
        )

    assert check_stage(tmp_path, fresh)


@pytest.mark.parametrize("kind", ["spatial", "temporal"])
def test_manifests_survive_a_kill_anywhere(kind, synthetic_build, tmp_path):
    from sa2va_st.testing.build import FEATURES_LABEL, FPS

    special = synthetic_build["tmp"] / "special_jsons"
    temporal = ["--features-label", FEATURES_LABEL, "--fps", str(FPS)] if kind == "temporal" else []

    def fresh(folder: Path):
        folder.mkdir(parents=True)
        out = folder / "manifests"
        args = [
            kind, "--special-jsons", str(special), "--data-root", str(synthetic_build["root"]),
            "--out-dir", str(out), *temporal,
        ]  # fmt: skip
        return SCRIPTS / "build_manifests.py", args, [out]

    assert check_stage(tmp_path, fresh)


def test_unpack_survives_a_kill_anywhere(synthetic_build, tmp_path):
    from sa2va_st.atomic import atomic_write_json, sha256_file

    archive = (
        synthetic_build["tmp"] / "world" / "hub" / "datasets" / "Dense-World" / "Sa2VA-Training" / "ref_seg_coco_g.zip"
    )

    def fresh(folder: Path):
        folder.mkdir(parents=True)
        receipt = folder / "receipts" / f"{archive.name}.json"
        atomic_write_json(
            receipt,
            {
                "archive": archive.name,
                "commit": "0" * 40,
                "parts": [
                    {
                        "name": archive.name,
                        "path": str(archive),
                        "size": archive.stat().st_size,
                        "sha256": sha256_file(archive),
                    }
                ],
            },
        )
        data = folder / "data"
        args = ["--receipt", str(receipt), "--data-root", str(data), "--marker", str(data / ".unpacked" / f"{archive.name}.json"),
                "--max-members", "100000", "--max-total-bytes", str(10**10), "--max-ratio", "1000", "--reserve-bytes", "0"]  # fmt: skip
        return SCRIPTS / "unpack.py", args, [data]

    assert check_stage(tmp_path, fresh)


@pytest.fixture(scope="module")
def exported_tiny_model(tmp_path_factory) -> Path:
    import yaml

    from sa2va_st.model import Sa2vaSTConfig, Sa2vaSTModel
    from sa2va_st.model.checkpoint import export
    from sa2va_st.testing.tiny import TINY_CLIP_DIM, save_tiny_preset

    folder = tmp_path_factory.mktemp("tiny")
    presets = save_tiny_preset(folder, 0, ["vlm", "sam2"])
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["model"].update(vlm=str(presets["vlm"]), dtype="fp32", max_image_tiles=1)
    config["model"]["lora"].update(r=8, alpha=16)
    config["model"]["temporal"]["clip_dim"] = TINY_CLIP_DIM
    model = Sa2vaSTModel.from_config(Sa2vaSTConfig.from_pipeline_config(config), seed=0).eval()
    export(model, folder / "model")
    return folder


def test_an_evaluation_shard_and_its_archive_survive_a_kill_anywhere(exported_tiny_model, synthetic_build, tmp_path):
    """A shard of a server's split: its answers with SAM2's masks over every frame, then its archive."""
    benchmark = "rvos/valid"

    def fresh(folder: Path):
        folder.mkdir(parents=True)
        out = folder / "metrics"
        args = [
            "predict", "--model", str(exported_tiny_model / "model"), "--benchmark", benchmark,
            "--spatial-manifests", str(synthetic_build["spatial_manifests"]),
            "--temporal-manifests", str(synthetic_build["temporal_manifests"]), "--video-frames", "3",
            "--batch-size", "2", "--shard", "0", "--num-shards", "2", "--device", "cpu",
            "--sam2", str(exported_tiny_model / "sam2"), "--data-root", str(synthetic_build["root"]),
            "--out", str(out / "p.jsonl"),
        ]  # fmt: skip
        return SCRIPTS / "evaluate.py", args, [out]

    assert check_stage(tmp_path / "predict", fresh)
    predictions = next((tmp_path / "predict" / "reference" / "metrics").glob("p.jsonl"))
    assert all("frame_names" in json.loads(line) for line in predictions.read_text().splitlines())

    def fresh_archive(folder: Path):
        folder.mkdir(parents=True)
        shutil.copy(predictions, folder / "p.jsonl")
        out = folder / "submissions"
        return (
            SCRIPTS / "evaluate.py",
            ["submit", "--benchmark", benchmark, "--out", str(out / "s.zip"), str(folder / "p.jsonl")],
            [out],
        )

    assert check_stage(tmp_path / "submit", fresh_archive)


def test_a_dead_writers_temporaries_are_swept_and_nothing_else(tmp_path):
    """`atomic.remove_stale`: the temporaries mkstemp / mkdtemp made for the named outputs go, whether one
    name or a shard's many; outputs, other outputs' temporaries and names that only start alike stay."""
    import tempfile

    from sa2va_st.atomic import remove_stale

    dead = [
        Path(tempfile.mkstemp(prefix=".a.npy.", suffix=".tmp", dir=tmp_path)[1]),
        Path(tempfile.mkstemp(prefix=".b.npy.", suffix=".tmp", dir=tmp_path)[1]),
        Path(tempfile.mkdtemp(prefix=".a.npy.", suffix=".tmp", dir=tmp_path)),
    ]
    (dead[2] / "inside").write_text("x")
    kept = [tmp_path / "a.npy", tmp_path / ".a.npy.x.tmp", tmp_path / ".a.npy.abcdefgh.staging"]
    kept.append(Path(tempfile.mkstemp(prefix=".a.npy.old.", suffix=".tmp", dir=tmp_path)[1]))  # a.npy.old's
    kept.append(Path(tempfile.mkstemp(prefix=".c.npy.", suffix=".tmp", dir=tmp_path)[1]))  # not this shard's
    for path in kept[:3]:
        path.write_text("keep")
    assert remove_stale(tmp_path, {"a.npy", "b.npy"}, ".tmp") == sorted(dead)
    assert not any(p.exists() for p in dead) and all(p.exists() for p in kept)
    assert remove_stale(tmp_path, "c.npy", ".tmp") == [kept[4]] and remove_stale(tmp_path / "absent", "a", ".tmp") == []
