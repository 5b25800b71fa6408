"""Shard assignment and video listing (features.sharding)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sa2va_st.features import FeatureError
from sa2va_st.features.sharding import VideoSource, list_videos, select_shard, shard_of


def sources(ids) -> list[VideoSource]:
    return [VideoSource(vid, Path(f"/videos/{vid}.mp4")) for vid in ids]


def test_assignment_is_pinned():
    """The hash must never change: a changed assignment would orphan every finished shard."""
    assert shard_of("AO8RW", 8) == 0
    assert shard_of("X4QD9", 8) == 4
    assert shard_of("83351462@N01_1196892970_d89a4ca304", 8) == 5
    assert shard_of("AO8RW", 1_000_003) == 505805


def test_shards_are_disjoint_and_complete():
    videos = sources(f"V{k:04d}" for k in range(300))
    shards = [select_shard(videos, i, 7) for i in range(7)]
    owned = [v.vid for shard in shards for v in shard]
    assert sorted(owned) == sorted(v.vid for v in videos)
    assert len(owned) == len(set(owned))
    assert all(len(shard) > 20 for shard in shards)  # spread out
    assert shards[3] == [v for v in videos if v in shards[3]]  # listing order kept


def test_adding_videos_moves_nothing():
    before = sources(f"V{k}" for k in range(100))
    after = sources([f"NEW{k}" for k in range(50)] + [v.vid for v in before])
    for i in range(5):
        old = {v.vid for v in select_shard(before, i, 5)}
        new = {v.vid for v in select_shard(after, i, 5)}
        assert old <= new


@settings(max_examples=200, deadline=None)
@given(vid=st.text(min_size=0, max_size=40), shards=st.integers(min_value=1, max_value=1000))
def test_shard_in_range_and_deterministic(vid, shards):
    assert 0 <= shard_of(vid, shards) < shards
    assert shard_of(vid, shards) == shard_of(str(vid), shards)
    assert shard_of(vid, 1) == 0


def test_bad_shard_numbers():
    with pytest.raises(FeatureError):
        select_shard([], 3, 3)
    with pytest.raises(FeatureError):
        select_shard([], -1, 3)
    with pytest.raises(ValueError):
        shard_of("x", 0)


def test_list_videos_takes_the_common_containers_and_logs_what_it_skips(tmp_path, caplog):
    names = ["b.mp4", "a.MKV", "c.webm", "d.avi", "e.mov", "g.m4v", "h.M4V", "notes.txt", ".hidden.mp4", "f.mp4.part"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.mp4").mkdir()
    with caplog.at_level("WARNING", logger="sa2va_st.features.sharding"):
        found = list_videos(tmp_path)
    assert [v.vid for v in found] == ["a", "b", "c", "d", "e", "g", "h"]
    assert found[0].path == tmp_path / "a.MKV"
    (message,) = [r.getMessage() for r in caplog.records]
    assert "skipped 3 entries" in message
    assert all(name in message for name in ("notes.txt", "f.mp4.part", "sub.mp4/"))


def test_list_videos_refuses_duplicate_ids_and_missing_folders(tmp_path):
    (tmp_path / "x.mp4").write_bytes(b"")
    (tmp_path / "x.webm").write_bytes(b"")
    with pytest.raises(FeatureError, match="share the id"):
        list_videos(tmp_path)
    with pytest.raises(FeatureError, match="not found"):
        list_videos(tmp_path / "absent")
