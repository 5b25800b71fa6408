"""The local hub server, exercised through the REAL huggingface_hub client (2.4.0).

Besides checking the server, these tests pin down what this client version does, because the rest of
the project relies on it: where it leaves `.incomplete` files, that it does NOT verify sha256, and that
it only sends `Range: bytes=N-` when a connection breaks inside one process (never across processes).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from sa2va_st.testing.hub import HubServer
from sa2va_st.testing.hub.git import lfs_pointer

DATASET = "synth/tiny"
MODEL = "synth/model"
LFS_ATTRIBUTES = "*.bin filter=lfs diff=lfs merge=lfs -text\n*.tar filter=lfs diff=lfs merge=lfs -text\n"
MIB = 1024 * 1024
CLIENT_CHUNK = 10 * MIB  # huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE: the client writes to disk in these


def random_bytes(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


DATASET_FILES = {
    ".gitattributes": LFS_ATTRIBUTES.encode(),
    "README.md": b"# tiny\nA synthetic dataset.\n",
    "data/a.bin": random_bytes(1, 1_000_000),
    "data/b.tar": random_bytes(2, 1_100_000),
    "sub/nested/notes.txt": b"plain text, not lfs\n",
}
MODEL_FILES = {
    ".gitattributes": LFS_ATTRIBUTES.encode(),
    "config.json": b'{"hidden_size": 8}\n',
    "weights.bin": random_bytes(3, 300_000),
}
STATIC_FILES = {"files/blob.bin": random_bytes(4, 256 * 1024)}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hub_root")
    write_files(folder / "hub" / "datasets" / DATASET, DATASET_FILES)
    write_files(folder / "hub" / "models" / MODEL, MODEL_FILES)
    write_files(folder / "static", STATIC_FILES)
    return folder


@pytest.fixture(autouse=True)
def isolated_hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read a developer's saved token or write to their cache."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)


@pytest.fixture
def server(root: Path) -> Iterator[HubServer]:
    with HubServer(root) as hub:
        yield hub


@pytest.fixture
def api(server: HubServer) -> HfApi:
    return HfApi(endpoint=server.url, token=False)


def download(server: HubServer, filename: str, **kwargs) -> Path:
    kwargs.setdefault("repo_type", "dataset")
    kwargs.setdefault("token", False)
    repo_id = kwargs.pop("repo_id", DATASET)
    return Path(hf_hub_download(repo_id, filename, endpoint=server.url, **kwargs))


def file_gets(server: HubServer, suffix: str) -> list[dict]:
    return [r for r in server.requests if r["method"] == "GET" and r["path"].endswith(suffix)]


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------------- downloads


@pytest.mark.parametrize("filename", ["README.md", "data/a.bin", "data/b.tar", "sub/nested/notes.txt"])
def test_download_to_local_dir_gives_identical_bytes(server: HubServer, tmp_path: Path, filename: str) -> None:
    path = download(server, filename, local_dir=tmp_path / "out")
    assert path == tmp_path / "out" / filename
    assert path.read_bytes() == DATASET_FILES[filename]


def test_download_to_cache_dir_names_blobs_by_etag(server: HubServer, api: HfApi, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    commit = api.dataset_info(DATASET).sha
    lfs_path = download(server, "data/a.bin", cache_dir=cache)
    text_path = download(server, "README.md", cache_dir=cache)
    repo_cache = cache / "datasets--synth--tiny"
    assert lfs_path == repo_cache / "snapshots" / commit / "data" / "a.bin"
    assert lfs_path.read_bytes() == DATASET_FILES["data/a.bin"]
    assert text_path.read_bytes() == DATASET_FILES["README.md"]
    # The cache names blobs by ETag: sha256 for LFS files, git blob sha1 otherwise.
    assert lfs_path.resolve().name == sha256(DATASET_FILES["data/a.bin"])
    assert text_path.resolve().name == git_blob_sha1(DATASET_FILES["README.md"])
    assert (repo_cache / "refs" / "main").read_text() == commit


def test_resolve_headers_match_the_hub(server: HubServer) -> None:
    data = DATASET_FILES["data/a.bin"]
    lfs = requests.head(f"{server.url}/datasets/{DATASET}/resolve/main/data/a.bin")
    assert lfs.status_code == 200
    assert lfs.headers["ETag"] == f'"{sha256(data)}"'
    assert lfs.headers["X-Linked-Etag"] == f'"{sha256(data)}"'
    assert lfs.headers["X-Linked-Size"] == str(len(data))
    assert lfs.headers["Content-Length"] == str(len(data))
    assert lfs.headers["Accept-Ranges"] == "bytes"
    assert re.fullmatch(r"[0-9a-f]{40}", lfs.headers["X-Repo-Commit"])
    assert not any(name.lower().startswith("x-xet") for name in lfs.headers)  # the client must never try Xet
    text = requests.head(f"{server.url}/datasets/{DATASET}/resolve/main/README.md")
    assert text.headers["ETag"] == f'"{git_blob_sha1(DATASET_FILES["README.md"])}"'
    assert "X-Linked-Etag" not in text.headers
    part = requests.get(f"{server.url}/datasets/{DATASET}/resolve/main/data/a.bin", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    assert part.content == data[10:20]


def test_model_repo_and_snapshot_download(server: HubServer, api: HfApi, tmp_path: Path) -> None:
    weights = download(server, "weights.bin", repo_id=MODEL, repo_type=None, local_dir=tmp_path / "model")
    assert weights.read_bytes() == MODEL_FILES["weights.bin"]
    assert api.model_info(MODEL).sha == api.repo_info(MODEL, revision="main").sha
    folder = Path(
        snapshot_download(DATASET, repo_type="dataset", local_dir=tmp_path / "snap", endpoint=server.url, token=False)
    )
    for relative, data in DATASET_FILES.items():
        assert (folder / relative).read_bytes() == data
    assert sorted(api.list_repo_files(DATASET, repo_type="dataset")) == sorted(DATASET_FILES)
    refs = api.list_repo_refs(DATASET, repo_type="dataset")
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", api.dataset_info(DATASET).sha)]


@pytest.mark.slow  # runs a subprocess
def test_hf_endpoint_environment_variable_is_enough(server: HubServer, tmp_path: Path) -> None:
    script = (
        "from huggingface_hub import hf_hub_download; "
        f"print(hf_hub_download({DATASET!r}, 'data/a.bin', repo_type='dataset', token=False,"
        f" cache_dir={str(tmp_path)!r}))"
    )
    environment = {**os.environ, "HF_ENDPOINT": server.url, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).read_bytes() == DATASET_FILES["data/a.bin"]
    assert file_gets(server, "/data/a.bin")


# ---------------------------------------------------------------------------------------------- listings


def test_list_repo_tree_reports_lfs_like_the_hub(api: HfApi) -> None:
    entries = {e.path: e for e in api.list_repo_tree(DATASET, repo_type="dataset", recursive=True)}
    assert set(entries) == set(DATASET_FILES) | {"data", "sub", "sub/nested"}
    for name in ("data/a.bin", "data/b.tar"):
        data = DATASET_FILES[name]
        entry = entries[name]
        assert entry.size == len(data)
        assert entry.lfs.sha256 == sha256(data)
        assert entry.lfs.size == len(data)
        pointer = lfs_pointer(sha256(data), len(data))
        assert entry.lfs.pointer_size == len(pointer)
        assert entry.blob_id == git_blob_sha1(pointer)  # git stores the pointer, as on the hub
    assert entries["README.md"].lfs is None
    assert entries["README.md"].blob_id == git_blob_sha1(DATASET_FILES["README.md"])
    top = {e.path: type(e).__name__ for e in api.list_repo_tree(DATASET, repo_type="dataset")}
    assert top == {".gitattributes": "RepoFile", "README.md": "RepoFile", "data": "RepoFolder", "sub": "RepoFolder"}
    inside = [e.path for e in api.list_repo_tree(DATASET, path_in_repo="sub/nested", repo_type="dataset")]
    assert inside == ["sub/nested/notes.txt"]
    expanded = next(iter(api.list_repo_tree(DATASET, repo_type="dataset", expand=True)))
    assert expanded.last_commit.oid == api.dataset_info(DATASET).sha


def test_tree_pagination_follows_link_header(server: HubServer, api: HfApi) -> None:
    server.tree_page_size = 2
    paths = [e.path for e in api.list_repo_tree(DATASET, repo_type="dataset", recursive=True)]
    assert len(paths) == len(set(paths)) == len(DATASET_FILES) + 3
    tree_calls = [r for r in server.requests if "/tree/" in r["path"]]
    assert len(tree_calls) == 4
    assert all("cursor" in r["query"] for r in tree_calls[1:])


def test_get_paths_info_returns_existing_paths_only(api: HfApi) -> None:
    infos = api.get_paths_info(DATASET, ["data/a.bin", "sub", "missing.txt", "README.md"], repo_type="dataset")
    by_path = {i.path: i for i in infos}
    assert set(by_path) == {"data/a.bin", "sub", "README.md"}
    assert by_path["data/a.bin"].lfs.sha256 == sha256(DATASET_FILES["data/a.bin"])
    assert type(by_path["sub"]).__name__ == "RepoFolder"


def test_dataset_info_sha_is_deterministic_and_content_based(root: Path, tmp_path: Path, api: HfApi) -> None:
    info = api.dataset_info(DATASET, revision="main", files_metadata=True)
    assert re.fullmatch(r"[0-9a-f]{40}", info.sha)
    assert api.dataset_info(DATASET, revision=info.sha).sha == info.sha
    siblings = {s.rfilename: s for s in info.siblings}
    assert siblings["data/a.bin"].lfs.sha256 == sha256(DATASET_FILES["data/a.bin"])
    assert siblings["README.md"].size == len(DATASET_FILES["README.md"])
    # A copy (new mtimes, new server) has the same commit; changing one byte changes it.
    copy_root = tmp_path / "copy"
    write_files(copy_root / "hub" / "datasets" / DATASET, DATASET_FILES)
    with HubServer(copy_root) as other:
        other_api = HfApi(endpoint=other.url, token=False)
        assert other_api.dataset_info(DATASET).sha == info.sha
        (copy_root / "hub" / "datasets" / DATASET / "README.md").write_bytes(b"changed\n")
        assert other_api.dataset_info(DATASET).sha != info.sha


def test_file_hashes_are_cached_by_path_mtime_and_size(tmp_path: Path) -> None:
    write_files(tmp_path / "hub" / "datasets" / DATASET, DATASET_FILES)
    with HubServer(tmp_path) as hub:
        hub_api = HfApi(endpoint=hub.url, token=False)
        hub_api.dataset_info(DATASET)
        first = hub.hash_computations
        assert first == len(DATASET_FILES)
        hub_api.list_repo_tree(DATASET, repo_type="dataset", recursive=True)
        hub_api.dataset_info(DATASET)
        assert hub.hash_computations == first
        os.utime(tmp_path / "hub" / "datasets" / DATASET / "data" / "a.bin", ns=(1, 1))
        hub_api.dataset_info(DATASET)
        assert hub.hash_computations == first + 1


# ---------------------------------------------------------------------------------------------- errors


def test_pinned_commit_works_and_bad_revision_or_path_raise(server: HubServer, api: HfApi, tmp_path: Path) -> None:
    commit = api.dataset_info(DATASET).sha
    path = download(server, "README.md", revision=commit, cache_dir=tmp_path / "cache")
    assert commit in path.parts and path.read_bytes() == DATASET_FILES["README.md"]
    with pytest.raises(RevisionNotFoundError):
        download(server, "README.md", revision="v9.9", cache_dir=tmp_path / "cache")
    with pytest.raises(RevisionNotFoundError):
        download(server, "README.md", revision="0" * 40, local_dir=tmp_path / "out")
    with pytest.raises(RevisionNotFoundError):
        api.dataset_info(DATASET, revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        list(api.list_repo_tree(DATASET, repo_type="dataset", revision="no-such-branch"))
    with pytest.raises(EntryNotFoundError):
        download(server, "data/missing.bin", cache_dir=tmp_path / "cache")
    with pytest.raises(EntryNotFoundError):
        download(server, "data", local_dir=tmp_path / "out")  # a folder is not a file
    with pytest.raises(RepositoryNotFoundError):
        download(server, "README.md", repo_id="synth/absent", cache_dir=tmp_path / "cache")
    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("synth/absent")


def test_token_is_required_accepted_and_never_logged(root: Path, tmp_path: Path, monkeypatch) -> None:
    token = "hf_local_TestToken_0123456789"
    with HubServer(root, token=token) as hub:
        with pytest.raises(GatedRepoError):
            download(hub, "README.md", cache_dir=tmp_path / "c1")
        with pytest.raises(HfHubHTTPError) as wrong:
            download(hub, "README.md", cache_dir=tmp_path / "c1", token="hf_wrong")
        assert wrong.value.response.status_code == 401
        with pytest.raises(GatedRepoError):
            HfApi(endpoint=hub.url, token=False).dataset_info(DATASET)
        accepted = download(hub, "data/a.bin", token=token, local_dir=tmp_path / "ok")
        assert accepted.read_bytes() == DATASET_FILES["data/a.bin"]
        monkeypatch.setenv("HF_TOKEN", token)  # the client's own way of finding the token
        assert HfApi(endpoint=hub.url).dataset_info(DATASET).sha
        from_environment = download(hub, "README.md", token=None, cache_dir=tmp_path / "c2")
        assert from_environment.read_bytes() == DATASET_FILES["README.md"]
        log = hub.requests
    assert token not in repr(log)
    assert {(r["auth"]["scheme"], r["auth"]["matches_token"]) for r in log} == {
        (None, False),
        ("Bearer", False),
        ("Bearer", True),
    }
    assert {r["status"] for r in log if r["auth"]["matches_token"]} == {200}


# ---------------------------------------------------------------------------------------------- faults


def test_corrupt_download_is_not_caught_by_the_client(root: Path, tmp_path: Path) -> None:
    data = DATASET_FILES["data/a.bin"]
    with HubServer(root, corrupt_downloads={"data/a.bin": 1}) as hub:
        hub_api = HfApi(endpoint=hub.url, token=False)
        out = tmp_path / "out"
        path = download(hub, "data/a.bin", local_dir=out)
        corrupted = path.read_bytes()
        assert len(corrupted) == len(data) and corrupted != data  # hf_hub_download does not check sha256
        expected = {e.path: e.lfs.sha256 for e in hub_api.get_paths_info(DATASET, ["data/a.bin"], repo_type="dataset")}
        assert expected["data/a.bin"] == sha256(data) != sha256(corrupted)  # metadata stays true
        # The client trusts its own metadata: a plain second call returns the corrupted file untouched...
        assert download(hub, "data/a.bin", local_dir=out).read_bytes() == corrupted
        verification = hub_api.verify_repo_checksums(DATASET, repo_type="dataset", local_dir=out)
        assert [m["path"] for m in verification.mismatches] == ["data/a.bin"]
        # ...only force_download fetches it again, and the fault was for the first GET only.
        assert download(hub, "data/a.bin", local_dir=out, force_download=True).read_bytes() == data
        assert len(file_gets(hub, "/data/a.bin")) == 2


def test_broken_connection_resumes_with_range_in_the_same_process(tmp_path: Path) -> None:
    """The only resume in huggingface_hub 2.4.0: http_get retries a broken stream with Range: bytes=N-,
    where N counts whole 10 MiB chunks already written, so the file must be bigger than one chunk."""
    big = random_bytes(5, CLIENT_CHUNK + MIB)
    write_files(tmp_path / "hub" / "datasets" / DATASET, {".gitattributes": LFS_ATTRIBUTES.encode(), "big.bin": big})
    with HubServer(tmp_path, interrupt_downloads={"big.bin": CLIENT_CHUNK + MIB // 2}) as hub:
        path = download(hub, "big.bin", local_dir=tmp_path / "out")
        gets = file_gets(hub, "/big.bin")
    assert sha256(path.read_bytes()) == sha256(big)
    first, second = gets
    assert first["range"] is None and first["aborted"] and first["bytes_sent"] == CLIENT_CHUNK + MIB // 2
    assert second["range"] == f"bytes={CLIENT_CHUNK}-"
    assert second["status"] == 206
    assert second["bytes_sent"] == len(big) - CLIENT_CHUNK < len(big)


KILLED_DOWNLOAD_SCRIPT = "\n".join(
    [
        "import sys",
        "from huggingface_hub import hf_hub_download",
        'target = {"cache_dir": sys.argv[2]} if sys.argv[1] == "cache" else {"local_dir": sys.argv[2]}',
        f'hf_hub_download({DATASET!r}, "data/a.bin", repo_type="dataset", token=False, **target)',
    ]
)


def start_download_process(server_url: str, mode: str, target: Path) -> subprocess.Popen:
    environment = {**os.environ, "HF_ENDPOINT": server_url, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", KILLED_DOWNLOAD_SCRIPT, mode, str(target)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow  # runs a subprocess
def test_killed_download_leaves_an_incomplete_file_that_is_never_resumed(root: Path, tmp_path: Path) -> None:
    """Kill a throttled hf_hub_download mid-body. 2.4.0 writes to a per-process `<stem>.<8 hex>.incomplete`
    and never looks for it again, so the next download starts from byte 0 (no Range header)."""
    data = DATASET_FILES["data/a.bin"]
    etag = sha256(data)
    cache, local = tmp_path / "cache", tmp_path / "local"
    with HubServer(root, throttle_bytes_per_s=200_000) as hub:
        processes = [start_download_process(hub.url, "cache", cache), start_download_process(hub.url, "local", local)]
        try:
            wait_until(lambda: sum(r["bytes_sent"] > 50_000 for r in file_gets(hub, "/data/a.bin")) == 2)
        finally:
            for process in processes:
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
        wait_until(lambda: all(r["aborted"] for r in file_gets(hub, "/data/a.bin")))
        # Where the client left its partial files (SIGKILL skips its cleanup):
        cache_leftovers = list((cache / "datasets--synth--tiny" / "blobs").glob("*.incomplete"))
        metadata_name = base64.urlsafe_b64encode(hashlib.sha1(b"a.bin.metadata").digest()).decode()
        local_leftovers = list((local / ".cache" / "huggingface" / "download" / "data").glob("*.incomplete"))
        assert len(cache_leftovers) == len(local_leftovers) == 1
        # Empty: the client buffers 10 MiB (DOWNLOAD_CHUNK_SIZE) before each write to disk.
        assert cache_leftovers[0].stat().st_size == local_leftovers[0].stat().st_size == 0
        assert re.fullmatch(rf"{etag}\.[0-9a-f]{{8}}\.incomplete", cache_leftovers[0].name)
        assert re.fullmatch(rf"{re.escape(metadata_name)}\.{etag}\.[0-9a-f]{{8}}\.incomplete", local_leftovers[0].name)
        # The second download (this process) ignores them: full GET from byte 0.
        hub.throttle_bytes_per_s = None
        hub.clear_requests()
        assert download(hub, "data/a.bin", cache_dir=cache).read_bytes() == data
        assert download(hub, "data/a.bin", local_dir=local).read_bytes() == data
        second = file_gets(hub, "/data/a.bin")
    assert [(r["range"], r["status"], r["bytes_sent"]) for r in second] == [(None, 200, len(data))] * 2
    assert cache_leftovers[0].exists() and local_leftovers[0].exists()  # never cleaned up either


def test_client_disconnect_mid_body_is_quiet(root: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with HubServer(root, throttle_bytes_per_s=100_000) as hub:
        host, port = hub.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as connection:
            connection.sendall(b"GET /static/files/blob.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert connection.recv(4096)
        wait_until(lambda: file_gets(hub, "/blob.bin")[0]["aborted"])
        hub.throttle_bytes_per_s = None
        assert requests.get(f"{hub.url}/static/files/blob.bin").content == STATIC_FILES["files/blob.bin"]
    assert "Traceback" not in capfd.readouterr().err


# ---------------------------------------------------------------------------------------------- static files


def test_static_files_support_head_get_range_and_etag(root: Path, tmp_path: Path) -> None:
    data = STATIC_FILES["files/blob.bin"]
    with HubServer(root, corrupt_downloads={"files/blob.bin": 1}) as hub:
        url = f"{hub.url}/static/files/blob.bin"
        head = requests.head(url)
        assert head.status_code == 200
        assert head.headers["Content-Length"] == str(len(data))
        assert head.headers["ETag"] == f'"{sha256(data)}"'
        assert head.headers["Accept-Ranges"] == "bytes"
        first = requests.get(url).content
        assert len(first) == len(data) and first != data  # corrupted once
        assert requests.get(url).content == data
        part = requests.get(url, headers={"Range": "bytes=1000-"})
        assert part.status_code == 206 and part.content == data[1000:]
        assert part.headers["Content-Range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
        assert requests.get(url, headers={"Range": "bytes=-10"}).content == data[-10:]
        unsatisfiable = requests.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert unsatisfiable.status_code == 416
        assert unsatisfiable.headers["Content-Range"] == f"bytes */{len(data)}"
        assert requests.get(f"{hub.url}/static/files/none.bin").status_code == 404
        host, port = hub.url.removeprefix("http://").split(":")
        raw = http.client.HTTPConnection(host, int(port), timeout=5)
        raw.request("GET", f"/static/%2e%2e/hub/datasets/{DATASET}/README.md")
        assert raw.getresponse().status == 404  # no escaping the static folder
        raw.close()
        log = [r for r in hub.requests if r["path"] == "/static/files/blob.bin" and r["method"] == "GET"]
    assert [r["range"] for r in log] == [None, None, "bytes=1000-", "bytes=-10", f"bytes={len(data)}-"]
    assert [r["bytes_sent"] for r in log] == [len(data), len(data), len(data) - 1000, 10, 0]


# ---------------------------------------------------------------------------------------------- CLI


@pytest.mark.slow  # runs a subprocess
def test_cli_prints_url_logs_requests_and_stops_on_sigterm(root: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sa2va_st.testing", "serve", "--root", str(root), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert requests.get(f"{url}/api/datasets/{DATASET}").json()["id"] == DATASET
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert f"GET /api/datasets/{DATASET} 200" in stderr
