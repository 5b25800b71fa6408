"""The demo end to end: snakemake runs the DAG against the local hub server through the real client
code, the tree matches the synthetic world, nothing unconfigured is fetched, a second run has
nothing to do, and another fps builds a second feature set beside the first."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sa2va_st.demo import SMOKE, run_demo

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    demo_dir = tmp_path_factory.mktemp("demo")
    port = free_port()
    requests: list[dict] = []
    first = run_demo(REPO, demo_dir, port, ["--quiet"], on_request=requests.append, size=SMOKE)
    return demo_dir, port, first, requests


def test_prepare_data_succeeds_and_lays_out_the_tree(demo_run):
    demo_dir, _port, status, _requests = demo_run
    logs = {
        str(p.relative_to(demo_dir)): p.read_text()[-2000:] for p in (demo_dir / "results" / "logs").glob("**/*.log")
    }
    assert status == 0, logs
    root = demo_dir / "datasets"
    expected = [
        "refer_seg/refcoco/instances.json", "refer_seg/refcoco/refs(unc).p", "refer_seg/refcoco+/refs(unc).p",
        "refer_seg/refcocog/refs(umd).p", "refer_seg/coco2014/train2014",
        "video_datas/mevis/train/meta_expressions.json", "video_datas/mevis/train/mask_dict.json",
        "video_datas/rvos/meta_expressions/train/meta_expressions.json", "video_datas/rvos/mask_dict.pkl",
        "video_datas/ReVOS/mask_dict_foreground.json", "temporal/Charades/videos",
        "temporal/Charades/annotations/charades_sta_train.txt", "temporal/didemo/annotations/train_data.json",
        "temporal/didemo/videos",
    ]  # fmt: skip
    missing = [path for path in expected if not (root / path).exists()]
    assert not missing


def test_inventory_matches_the_world(demo_run):
    demo_dir, *_ = demo_run
    world = json.loads((demo_dir / "world" / "world.json").read_text())["datasets"]
    inventory = json.loads((demo_dir / "results" / "data" / "inventory.json").read_text())["datasets"]
    for name in ("refcoco", "refcoco+", "refcocog"):
        assert inventory[name]["images"] == world[name]["image_count"]
        assert inventory[name]["refs"] == world[name]["ref_count"]
        assert inventory[name]["expressions"] == world[name]["sentence_count"]
    for name in ("mevis", "rvos", "revos"):
        splits = world[name]["splits"].values()
        assert inventory[name]["videos"] == sum(split["video_count"] for split in splits), name
        assert inventory[name]["images"] == sum(split["frame_count"] for split in splits), name
        assert inventory[name]["expressions"] == sum(split["expression_count"] for split in splits), name
    assert inventory["charades"]["videos"] == world["charades"]["video_count"]
    assert inventory["didemo"]["videos"] == world["didemo"]["video_count"]
    sta_lines = sum(
        len(path.read_text().splitlines()) for path in (demo_dir / "world" / "static" / "charades").glob("*.txt")
    )
    assert inventory["charades"]["expressions"] == sta_lines


def test_only_configured_files_are_fetched(demo_run):
    *_, requests = demo_run
    fetched = {r["path"].rsplit("/", 1)[-1] for r in requests if "/resolve/" in r["path"] and r["method"] == "GET"}
    assert "sam_v_full.zip" not in {r["path"].rsplit("/", 1)[-1] for r in requests if "/resolve/" in r["path"]}
    assert {
        "ref_seg_coco.zip", "ref_seg_coco_g.zip", "ref_seg_coco_+.zip", "video_datas_mevis.z01",
        "video_datas_mevis.z02", "video_datas_mevis.zip", "video_datas_rvos.zip",
    } <= fetched  # fmt: skip


def test_second_run_has_nothing_to_do(demo_run, capfd):
    demo_dir, port, _status, _requests = demo_run
    capfd.readouterr()
    assert run_demo(REPO, demo_dir, port, [], size=SMOKE) == 0
    output = capfd.readouterr()
    assert "Nothing to be done" in output.out + output.err


def features_folder(demo_dir: Path, dataset: str, fps: str) -> Path:
    """The demo's feature folder, named as the workflow names it (model + the checkpoint's hash)."""
    from sa2va_st.features.identity import features_label

    clip = yaml.safe_load((demo_dir / "config.yaml").read_text())["clip"]
    label = features_label(clip["model"], str(demo_dir / clip["pretrained"]))
    return demo_dir / "datasets" / "clip_features" / dataset / label / fps


def feature_files(demo_dir: Path, dataset: str, fps: str) -> dict[str, tuple[int, int]]:
    folder = features_folder(demo_dir, dataset, fps)
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*") if p.is_file()}


def test_features_cover_every_video(demo_run):
    import numpy as np
    import pandas as pd

    demo_dir, *_ = demo_run
    world = json.loads((demo_dir / "world" / "world.json").read_text())
    for dataset in ("charades", "didemo"):
        folder = features_folder(demo_dir, dataset, "fps10")
        index = pd.read_parquet(folder / "index.parquet")
        videos = [v for v in world["videos"] if v["dataset"] == dataset]
        assert sorted(index["vid"]) == sorted(
            v["video_id"] if dataset == "charades" else Path(v["path"]).stem for v in videos
        )
        assert (index["status"] == "ok").all()
        for row in index.itertuples():
            features = np.load(folder / f"{row.vid}.npy")
            assert features.shape[0] == row.T and features.dtype == np.float16


def test_another_fps_plans_only_its_own_jobs_and_keeps_the_first(demo_run, capfd):
    demo_dir, port, *_ = demo_run
    before = feature_files(demo_dir, "charades", "fps10")
    capfd.readouterr()
    assert run_demo(REPO, demo_dir, port, ["-n", "extract_clip_features", "--config", "fps=5"], size=SMOKE) == 0
    plan = capfd.readouterr()
    planned = "\n".join(line for line in (plan.out + plan.err).splitlines() if line.strip().startswith("output:"))
    assert "fps5" in planned and "fps10" not in planned
    assert not re.search(r"^(download|unpack|fetch_source)\s+\d+$", plan.out + plan.err, flags=re.M)
    assert run_demo(REPO, demo_dir, port, ["extract_clip_features", "--config", "fps=5", "--quiet"], size=SMOKE) == 0
    assert feature_files(demo_dir, "charades", "fps10") == before, "the fps-10 set must be left untouched"
    fps5 = feature_files(demo_dir, "charades", "fps5")
    assert set(fps5) == set(before)


def test_special_jsons_cover_all_eight_datasets(demo_run):
    demo_dir, *_ = demo_run
    report = json.loads((demo_dir / "special_jsons" / "report.json").read_text())
    datasets = {"refcoco", "refcoco+", "refcocog", "mevis", "rvos", "revos", "charades", "didemo"}
    assert {name for name, entry in report["datasets"].items() if entry["status"] == "built"} == datasets
    for name in datasets:
        assert list((demo_dir / "special_jsons" / name).glob("*.json")), name


SPATIAL = {
    "refcoco": "image",
    "refcoco+": "image",
    "refcocog": "image",
    "mevis": "video",
    "rvos": "video",
    "revos": "video",
}
TEMPORAL = ("charades", "didemo")


def test_manifests_cover_all_eight_datasets_and_load_as_training_samples(demo_run):
    from sa2va_st.datasets import ImageGroundingDataset, TemporalGroundingDataset, VideoGroundingDataset

    demo_dir, *_ = demo_run
    manifests = demo_dir / "results" / "manifests"
    spatial = json.loads((manifests / "spatial" / "report.json").read_text())
    (temporal_report,) = (manifests / "temporal").glob("*/fps10/report.json")
    temporal = json.loads(temporal_report.read_text())
    assert {n for n, e in spatial["datasets"].items() if e["status"] == "built"} == set(SPATIAL)
    assert {n for n, e in temporal["datasets"].items() if e["status"] == "built"} == set(TEMPORAL)
    for report in (spatial, temporal):
        for name, entry in report["datasets"].items():
            for split, counts in entry["splits"].items():
                assert (
                    counts["rows_in"]
                    == counts["kept"] + counts["dropped"]["rows"]
                    == counts["kept"] + sum(counts["dropped"]["by_reason"].values())
                ), (name, split)
                assert counts["kept"] > 0, (name, split)
    kinds = {"image": ImageGroundingDataset, "video": VideoGroundingDataset}
    for name, kind in SPATIAL.items():
        dataset = kinds[kind](
            sorted((manifests / "spatial" / name).glob("*.parquet")), root=demo_dir, check_files=True, train=False
        )
        item = dataset[len(dataset) - 1]
        assert item["dataset"] == name and item["task"] == f"{kind}_grounding"
    for name in TEMPORAL:
        paths = sorted(temporal_report.parent.joinpath(name).glob("*.parquet"))
        dataset = TemporalGroundingDataset(paths, root=demo_dir, check_files=True, train=False)
        for index in range(len(dataset)):
            item = dataset[index]
            assert item["features"].shape[0] == 100 and item["fps"] == 10.0
            start, end = item["window_s"]
            assert 0 <= start <= end <= item["duration"] + 1e-6


def test_manifests_at_another_fps_sit_beside_the_first(demo_run):
    demo_dir, port, *_ = demo_run
    first = sorted((demo_dir / "results" / "manifests" / "temporal").glob("*/fps10/*/*.parquet"))
    before = {path: path.read_bytes() for path in first}
    assert run_demo(REPO, demo_dir, port, ["manifests", "--config", "fps=5", "--quiet"], size=SMOKE) == 0
    assert {path: path.read_bytes() for path in first} == before
    (report,) = (demo_dir / "results" / "manifests" / "temporal").glob("*/fps5/report.json")
    assert json.loads(report.read_text())["fps"] == 5.0


def test_demo_config_builds_the_tiny_model_from_its_folders(demo_run, monkeypatch):
    import yaml

    from sa2va_st.config import validate_config
    from sa2va_st.model import Sa2vaSTConfig, Sa2vaSTModel, load_sam2

    demo_dir, *_ = demo_run
    monkeypatch.chdir(demo_dir)  # the config's paths are relative to the run directory, as in snakemake
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = validate_config(
        yaml.safe_load(Path("config.yaml").read_text()), REPO / "workflow" / "schemas" / "config.schema.yaml"
    )
    model = Sa2vaSTModel.from_config(Sa2vaSTConfig.from_pipeline_config(config))
    assert (
        0 < sum(p.numel() for p in model.parameters() if p.requires_grad) < sum(p.numel() for p in model.parameters())
    )
    segmenter = load_sam2(config["model"]["sam2"])
    assert not any(p.requires_grad for p in segmenter.image_model.parameters())


def test_demo_trains_with_two_ranks_rotates_checkpoints_and_learns(demo_run):
    """The demo trains through torchrun with two CPU ranks: checkpoints rotate to save_total_limit,
    every task's held-out loss falls, and the model answers training samples through the inference
    API (the untrained one answers none). This is the test suite's short run on the base world; what
    `make demo` reaches is measured in docs/training.md, "The demo"."""
    from sa2va_st.demo import DEMO_TRAINING
    from sa2va_st.training.metrics_log import read_metrics

    demo_dir, _, first, _ = demo_run
    assert first == 0
    run = demo_dir / "results" / "train" / "work"
    assert (run / "model").is_dir()
    records = read_metrics(run / "metrics.jsonl")
    held_out = [r for r in records if r["event"] == "held_out"]
    assert len(held_out) >= 2
    for task, loss in held_out[-1]["loss"].items():  # falls (and at its lowest, below half the start)
        assert loss < held_out[0]["loss"][task], task
        assert min(r["loss"][task] for r in held_out) < 0.5 * held_out[0]["loss"][task], task
    checkpoints = sorted(p.name for p in (demo_dir / "work" / "checkpoints").iterdir())
    assert len(checkpoints) == DEMO_TRAINING["save_total_limit"], checkpoints
    last_step = max(r["step"] for r in records if r["event"] == "train")
    assert checkpoints[-1] == f"step_{last_step:08d}"
    log = (demo_dir / "results" / "logs" / "train" / "work.log").read_text()
    assert "[default1]" in log  # the second rank ran
    answers = json.loads((run / "training_answers.json").read_text())["tasks"]
    assert answers["image_grounding"]["asked"] == answers["temporal_grounding"]["asked"] == 16
    assert answers["image_grounding"]["fraction"] >= 0.25
    assert answers["temporal_grounding"]["fraction"] >= 0.25


def test_demo_scores_trained_and_untrained_on_every_local_split(demo_run):
    from sa2va_st import paths
    from sa2va_st.evaluation.benchmarks import all_benchmarks

    demo_dir, *_ = demo_run
    for benchmark in (b for b in all_benchmarks() if b.scored_here):
        for model in ("trained", "untrained"):
            metrics = json.loads(
                (demo_dir / paths.split_metrics(model, benchmark.dataset, benchmark.split)).read_text()
            )
            assert metrics["benchmark"] == benchmark.name and metrics["n"] > 0
            if benchmark.task == "image_grounding":  # SAM2's masks of the answers, scored against the annotations
                assert 0.0 <= metrics["cIoU"] <= 1.0 and 0.0 <= metrics["gIoU"] <= 1.0
            if benchmark.task == "video_grounding":  # SAM2 propagated from the answered frames, every frame
                assert 0.0 <= metrics["J"] <= 1.0 and 0.0 <= metrics["F"] <= 1.0 and "J&F" in metrics


def test_demo_writes_the_archive_of_each_split_a_server_scores(demo_run):
    """MeViS valid and Ref-YouTube-VOS valid: one PNG per expression and frame of the released meta file."""
    import zipfile

    from sa2va_st import paths
    from sa2va_st.evaluation.benchmarks import all_benchmarks

    demo_dir, *_ = demo_run
    world = json.loads((demo_dir / "world" / "world.json").read_text())
    page = (demo_dir / "results" / "report" / "index.html").read_text()
    for benchmark in (b for b in all_benchmarks() if not b.scored_here):
        split = world["datasets"][benchmark.dataset]["splits"][benchmark.split]
        for model in ("trained", "untrained"):
            archive = paths.split_submission(model, benchmark.dataset, benchmark.split)
            with zipfile.ZipFile(demo_dir / archive) as z:
                names = [n for n in z.namelist() if n.endswith(".png")]
            assert len({n.rsplit("/", 1)[0] for n in names}) == split["expression_count"] > 0
            assert archive in page


def test_demo_report_renders_the_scorecard_and_plots_in_chromium(demo_run, tmp_path):
    from sa2va_st.testing.browser import distinct_colours, ensure_chromium, is_blank, screenshot

    demo_dir, port, *_ = demo_run
    page = demo_dir / "results" / "report" / "index.html"
    text = page.read_text()
    assert "Scorecard" in text and "Sa2VA-4B" in text and "<svg" in text and "random weights" in text
    assert "cIoU (random SAM2)" in text  # every mask number says SAM2 is random here
    assert run_demo(REPO, demo_dir, port, ["--report", "results/report.html", "--quiet"], size=SMOKE) == 0
    assert (demo_dir / "results" / "report.html").stat().st_size > page.stat().st_size
    try:
        chromium = ensure_chromium()
    except RuntimeError as exc:
        pytest.skip(f"headless Chromium unavailable: {exc}")
    shot = screenshot(page, tmp_path / "report.png", width=1400, height=5000, chromium=chromium)
    assert not is_blank(shot)
    assert len(distinct_colours(shot)) >= 3  # the figures' colours, beyond text and table lines
    wrapped = screenshot(demo_dir / "results" / "report.html", tmp_path / "snakemake.png", chromium=chromium)
    assert not is_blank(wrapped)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A real one-node SLURM (Debian's slurm-wlm + munge, installed when missing). Skips, loudly, only where
    it cannot start (not root, no apt-get, a daemon that refuses), with the reason."""
    from sa2va_st.testing.slurm import LocalSlurm, SlurmUnavailable

    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        env = cluster.__enter__()
    except SlurmUnavailable as exc:
        message = f"SLURM CANNOT START ON THIS MACHINE, the cluster test did not run: {exc}"
        print(f"\n{'!' * 20} {message}", file=sys.stderr)
        pytest.skip(message)
    yield env
    cluster.__exit__(None, None, None)


def slurm_jobs(env: dict) -> list[dict]:
    """Every job the controller still knows (MinJobAge keeps finished ones), as key=value dicts."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], env=env, capture_output=True, text=True).stdout
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if "JobId=" in line]


def test_the_demo_dag_runs_on_a_one_node_slurm_cluster_with_its_profile(demo_run, slurm_cluster, tmp_path):
    """Feature shards as separate SLURM jobs, each with its resources; training as one SLURM job that runs
    its own `srun torchrun` (two ranks, c10d) on the allocation, through workflow/profiles/slurm."""
    demo_dir, *_ = demo_run
    run = tmp_path / "demo"
    shutil.copytree(demo_dir, run, symlinks=True)
    for stale in ("datasets/clip_features", "results/manifests/temporal", "results/train", "work"):
        shutil.rmtree(run / stale, ignore_errors=True)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["training"]["epochs"] = 1  # a few dozen steps: the launch is what is tested here
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    before = {job["JobId"] for job in slurm_jobs(slurm_cluster)}
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(run),
        "--profile", str(REPO / "workflow" / "profiles" / "slurm"), "--slurm-no-account",
        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
        "--latency-wait", "5", "--jobs", "4", "--verbose",
        # this cluster's node: 2 CPUs, no GPU (the profile's GPU requests would never be granted here)
        "--default-resources", "mem_mb=1500", "runtime=30", "cpus_per_task=1",
        "--set-resources", "clip_features_shard:gpu=0", "clip_features_shard:mem_mb=3000",
        "temporal_manifests:mem_mb=3000", "train:mpi=srun", "train:nodes=1", "train:tasks_per_node=2",
        "train:cpus_per_task=1", "train:gpu=0", "train:mem_mb=8000",
        "--", "train",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=slurm_cluster, capture_output=True, text=True)
    output = done.stdout + done.stderr
    logs = {p.name: p.read_text()[-1500:] for p in (run / "results" / "logs" / "train").glob("*.log")}
    assert done.returncode == 0, output[-6000:] + str(logs)

    jobs = [job for job in slurm_jobs(slurm_cluster) if job["JobId"] not in before]
    by_rule = {}
    for job in jobs:
        assert job["JobState"] == "COMPLETED", job
        rule = re.match(r"rule_(\w+?)(_wildcards_|$)", job.get("Comment", ""))
        by_rule.setdefault(rule.group(1) if rule else job.get("Comment"), []).append(job)
    shards = config["clip"]["shards"] * len(config["temporal_datasets"])
    assert len(by_rule.get("clip_features_shard", [])) == shards  # one SLURM job per feature shard
    assert all(job["NumCPUs"] == "1" for job in by_rule["clip_features_shard"])  # its own resource request
    (train_job,) = by_rule["train"]
    assert train_job["NumTasks"] == "2" and train_job["NumNodes"] == "1"

    # the train job ran srun + torchrun itself: the plugin's sbatch line, the shell, and torchrun's rank logs
    # named by the rendezvous id, which is the SLURM job id
    sbatch = [line for line in output.splitlines() if "sbatch call:" in line and "rule_train" in line]
    assert len(sbatch) == 1 and "--ntasks-per-node=2" in sbatch[0]
    ranks = list((run / "results" / "logs" / "train").glob(f"*/ranks/{train_job['JobId']}_*/attempt_0"))
    assert len(ranks) == 1 and {p.name for p in ranks[0].iterdir()} == {"0", "1"}
    metrics = [json.loads(line) for line in next((run / "results" / "train").glob("*/metrics.jsonl")).open()]
    assert metrics and max(m.get("step", 0) for m in metrics) > 0
