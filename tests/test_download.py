"""Hub downloads through the real huggingface_hub client against the local hub server:
exactly the configured files, verified, resumable after a kill, the token used and never printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from sa2va_st.atomic import sha256_file
from sa2va_st.data.hub import ArchiveRequest, archive_parts, fetch_archive
from sa2va_st.data.transfer import part_path
from sa2va_st.errors import DownloadError
from sa2va_st.testing.hub import HubServer

REPO = Path(__file__).resolve().parent.parent
REPO_ID = "Org/Data"
BIG = 3 << 20  # large enough to kill a throttled transfer halfway


@pytest.fixture
def hub_root(tmp_path: Path) -> Path:
    repo = tmp_path / "hub" / "hub" / "datasets" / REPO_ID
    repo.mkdir(parents=True)
    (repo / ".gitattributes").write_text(
        "*.zip filter=lfs diff=lfs merge=lfs -text\n*.z[0-9][0-9] filter=lfs diff=lfs merge=lfs -text\n"
    )
    (repo / "README.md").write_text("# test repo\n")
    with zipfile.ZipFile(repo / "plain.zip", "w") as archive:
        archive.writestr("mevis/train/meta_expressions.json", '{"videos": {}}')
        archive.writestr("mevis/train/mask_dict.json", "{}")
        archive.writestr("mevis/train/blob.bin", os.urandom(BIG))
    data = (repo / "plain.zip").read_bytes()
    third = len(data) // 3
    for suffix, chunk in (("z01", data[:third]), ("z02", data[third : 2 * third]), ("zip", data[2 * third :])):
        (repo / f"split.{suffix}").write_bytes(chunk)
    (repo / "unrelated.zip").write_bytes(os.urandom(1 << 20))
    return tmp_path / "hub"


def request_for(archive: str, tmp_path: Path, url: str, **changes) -> ArchiveRequest:
    fields = dict(
        archive=archive, repo_id=REPO_ID, revision="main", download_dir=tmp_path / "dl", endpoint=url, reserve_bytes=0
    )
    return ArchiveRequest(**(fields | changes))


def resolved_files(server: HubServer) -> list[str]:
    return [r["path"].rsplit("/", 1)[-1] for r in server.requests if "/resolve/" in r["path"] and r["method"] == "GET"]


def test_archive_parts_are_ordered_and_complete():
    names = ["a.zip", "a.z02", "a.z01", "b.z01", "b.zip", "ab.z01"]
    assert archive_parts("a.zip", names) == ["a.z01", "a.z02", "a.zip"]
    assert archive_parts("ab.zip", names + ["ab.zip"]) == ["ab.z01", "ab.zip"]
    with pytest.raises(DownloadError, match="missing"):
        archive_parts("c.zip", ["c.z01", "c.z03", "c.zip"])


def test_fetch_verifies_and_fetches_nothing_else(tmp_path, hub_root):
    with HubServer(hub_root) as server:
        receipt = fetch_archive(request_for("plain.zip", tmp_path, server.url), tmp_path / "r.json")
        assert resolved_files(server) == ["plain.zip"]
    local = tmp_path / "dl" / "plain.zip"
    assert (
        receipt["parts"][0]["sha256"] == sha256_file(local) == sha256_file(hub_root / "hub/datasets/Org/Data/plain.zip")
    )
    assert len(receipt["commit"]) == 40 and receipt["source"] == "hub"
    assert json.loads((tmp_path / "r.json").read_text()) == receipt


def test_split_archive_fetches_all_parts_in_order(tmp_path, hub_root):
    with HubServer(hub_root) as server:
        receipt = fetch_archive(request_for("split.zip", tmp_path, server.url), tmp_path / "r.json")
        assert sorted(resolved_files(server)) == ["split.z01", "split.z02", "split.zip"]
    assert [p["name"] for p in receipt["parts"]] == ["split.z01", "split.z02", "split.zip"]


def test_checksum_mismatch_redownloads_once(tmp_path, hub_root):
    with HubServer(hub_root, corrupt_downloads={"plain.zip": 1}) as server:
        fetch_archive(request_for("plain.zip", tmp_path, server.url), tmp_path / "r.json")
        assert resolved_files(server) == ["plain.zip", "plain.zip"]
    assert sha256_file(tmp_path / "dl/plain.zip") == sha256_file(hub_root / "hub/datasets/Org/Data/plain.zip")


def test_checksum_mismatch_twice_fails_naming_the_file(tmp_path, hub_root):
    with HubServer(hub_root, corrupt_downloads={"plain.zip": 2}) as server:
        with pytest.raises(DownloadError, match="plain.zip") as error:
            fetch_archive(request_for("plain.zip", tmp_path, server.url), tmp_path / "r.json")
    assert "after 2 downloads" in str(error.value)
    assert not (tmp_path / "dl/plain.zip").exists() and not (tmp_path / "r.json").exists()


def test_unknown_archive_and_revision_are_clear_errors(tmp_path, hub_root):
    with HubServer(hub_root) as server:
        with pytest.raises(DownloadError, match="not in Org/Data") as error:
            fetch_archive(request_for("nope.zip", tmp_path, server.url), tmp_path / "r.json")
        assert "plain.zip" in str(error.value) and "sa2va_training.files" in str(error.value)
        with pytest.raises(DownloadError, match="revision"):
            fetch_archive(request_for("plain.zip", tmp_path, server.url, revision="f" * 40), tmp_path / "r.json")


def test_too_little_disk_is_refused_before_downloading(tmp_path, hub_root):
    with HubServer(hub_root) as server:
        with pytest.raises(DownloadError, match="not enough free disk") as error:
            fetch_archive(request_for("plain.zip", tmp_path, server.url, reserve_bytes=1 << 50), tmp_path / "r.json")
        assert resolved_files(server) == []
    assert "reserve" in str(error.value)


def run_download_script(url: str, tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    command = [
        sys.executable, str(REPO / "scripts" / "download.py"),
        "--archive", "plain.zip", "--repo-id", REPO_ID, "--revision", "main",
        "--download-dir", str(tmp_path / "dl"), "--endpoint", url, "--reserve-bytes", "0",
        "--receipt", str(tmp_path / "r.json"),
    ]  # fmt: skip
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ | (env or {})
    )


def test_killed_download_resumes_with_range(tmp_path, hub_root):
    partial = part_path(tmp_path / "dl" / "plain.zip")
    with HubServer(hub_root, throttle_bytes_per_s=1 << 20) as slow:
        process = run_download_script(slow.url, tmp_path)
        deadline = time.monotonic() + 60
        while (not partial.exists() or partial.stat().st_size < 512 << 10) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
    had = partial.stat().st_size
    assert 0 < had < BIG, "the first run should have been killed mid-transfer"
    with HubServer(hub_root) as server:
        process = run_download_script(server.url, tmp_path)
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output
        gets = [r for r in server.requests if r["method"] == "GET" and r["path"].endswith("/plain.zip")]
    assert len(gets) == 1 and gets[0]["range"] == f"bytes={had}-"
    size = (hub_root / "hub/datasets/Org/Data/plain.zip").stat().st_size
    assert gets[0]["bytes_sent"] == size - had, "only the missing bytes may be fetched again"
    assert sha256_file(tmp_path / "dl/plain.zip") == sha256_file(hub_root / "hub/datasets/Org/Data/plain.zip")
    assert not partial.exists()


def test_token_is_used_and_never_printed(tmp_path, hub_root):
    secret = "hf_sEcReT_do_not_print_42"
    with HubServer(hub_root, token=secret) as server:
        denied = run_download_script(server.url, tmp_path, env={"HF_TOKEN": ""})
        denied_output, _ = denied.communicate(timeout=120)
        assert denied.returncode != 0 and "HF_TOKEN" in denied_output
        allowed = run_download_script(server.url, tmp_path, env={"HF_TOKEN": secret})
        output, _ = allowed.communicate(timeout=120)
        assert allowed.returncode == 0, output
        log_text = json.dumps(server.requests)
        downloads = [r for r in server.requests if r["method"] == "GET" and r["path"].endswith("/plain.zip")]
    assert downloads and all(r["auth"]["matches_token"] for r in downloads), downloads
    assert secret not in output + denied_output + log_text + (tmp_path / "r.json").read_text()


def test_local_mirror_is_verified_and_nothing_downloaded(tmp_path, hub_root):
    mirror = hub_root / "hub/datasets/Org/Data"
    with HubServer(hub_root) as server:
        receipt = fetch_archive(
            request_for("split.zip", tmp_path, server.url, local_mirror=mirror), tmp_path / "r.json"
        )
        assert resolved_files(server) == []
    assert receipt["source"] == "local_mirror"
    assert [Path(p["path"]) for p in receipt["parts"]] == [
        mirror / "split.z01",
        mirror / "split.z02",
        mirror / "split.zip",
    ]
    assert not (tmp_path / "dl").exists()


def test_local_mirror_with_a_bad_file_fails_naming_it(tmp_path, hub_root):
    served = hub_root / "hub/datasets/Org/Data"
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in ("split.z01", "split.z02", "split.zip"):
        (mirror / name).write_bytes((served / name).read_bytes())
    broken = bytearray((mirror / "split.z02").read_bytes())
    broken[100] ^= 0xFF
    (mirror / "split.z02").write_bytes(bytes(broken))
    with HubServer(hub_root) as server:
        with pytest.raises(DownloadError, match="split.z02") as error:
            fetch_archive(request_for("split.zip", tmp_path, server.url, local_mirror=mirror), tmp_path / "r.json")
    assert "does not match" in str(error.value) and "sha256" in str(error.value)


def test_local_git_lfs_clone_is_verified_offline(tmp_path, hub_root):
    """No hub at all: the expected hashes come from the clone's own LFS pointers."""
    served = hub_root / "hub/datasets/Org/Data"
    clone = tmp_path / "clone"
    clone.mkdir()

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(clone), *args], check=True, capture_output=True)

    git("init", "-q")
    for name in ("plain.zip", "README.md"):
        data = (served / name).read_bytes()
        pointer = (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256_file(served / name)}\nsize {len(data)}\n"
        )
        (clone / name).write_text(pointer if name.endswith(".zip") else data.decode())
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "snapshot")
    (clone / "plain.zip").write_bytes((served / "plain.zip").read_bytes())  # what `git lfs pull` leaves
    request = request_for("plain.zip", tmp_path, "http://127.0.0.1:9", local_mirror=clone, revision="HEAD")
    receipt = fetch_archive(request, tmp_path / "r.json")
    assert receipt["parts"][0]["sha256"] == sha256_file(served / "plain.zip")
    (clone / "plain.zip").write_bytes(b"not the archive")
    with pytest.raises(DownloadError, match="does not match"):
        fetch_archive(request, tmp_path / "r.json")
