"""The task-grouped batch sampler: purity, determinism, resume, ranks, repeats (datasets.sampler)."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader, Dataset

from sa2va_st.catalog import IMAGE_GROUNDING, TEMPORAL_GROUNDING, VIDEO_GROUNDING, upstream_repeats
from sa2va_st.datasets.sampler import DatasetSpec, SamplerError, TaskGroupedBatchSampler
from sa2va_st.errors import Sa2vaError

UPSTREAM_REPEATS = upstream_repeats()

MIX = [
    ("refcoco", IMAGE_GROUNDING, 53),
    ("refcoco+", IMAGE_GROUNDING, 41),
    ("refcocog", IMAGE_GROUNDING, 37),
    ("mevis", VIDEO_GROUNDING, 11),
    ("rvos", VIDEO_GROUNDING, 9),
    ("revos", VIDEO_GROUNDING, 7),
    ("charades", TEMPORAL_GROUNDING, 13),
    ("didemo", TEMPORAL_GROUNDING, 5),
]


def ranks(world_size: int, batch_size: int = 2, seed: int = 0, datasets=MIX, repeats=UPSTREAM_REPEATS):
    return [
        TaskGroupedBatchSampler(
            datasets, batch_size=batch_size, world_size=world_size, rank=r, seed=seed, repeats=repeats
        )
        for r in range(world_size)
    ]


def global_batches(samplers) -> list[list[int]]:
    """Concatenate the ranks' batches step by step (what the whole job sees per step)."""
    per_rank = [list(s) for s in samplers]
    assert len({len(p) for p in per_rank}) == 1, "ranks disagree on the number of batches"
    return [sum(step, []) for step in zip(*per_rank)]


@pytest.mark.parametrize("world_size", [1, 4])
def test_every_global_batch_holds_one_task(world_size):
    samplers = ranks(world_size)
    s0 = samplers[0]
    for epoch in range(3):
        for s in samplers:
            s.set_epoch(epoch)
        batches = global_batches(samplers)
        assert len(batches) == s0.batches_per_epoch == len(s0)
        tasks_seen = set()
        for batch in batches:
            assert len(batch) == world_size * 2
            tasks = {s0.task_of(i) for i in batch}
            assert len(tasks) == 1, tasks
            tasks_seen |= tasks
        assert tasks_seen == {IMAGE_GROUNDING, VIDEO_GROUNDING, TEMPORAL_GROUNDING}


@pytest.mark.parametrize("world_size", [1, 4])
def test_ranks_are_disjoint_slices_of_the_global_batch(world_size):
    samplers = ranks(world_size, batch_size=3)
    plan = samplers[0].global_batches(0)
    per_rank = [list(s) for s in samplers]
    for step, row in enumerate(plan):
        parts = [per_rank[r][step] for r in range(world_size)]
        assert all(len(p) == 3 for p in parts)
        assert sum(parts, []) == row.tolist()  # union (in order) = the global batch
    # without repeats a sample occurs once per epoch, so the ranks' sets are disjoint
    plain = ranks(world_size, batch_size=3, repeats=None)
    sets = [set(sum(list(s), [])) for s in plain]
    for a in range(world_size):
        for b in range(a + 1, world_size):
            assert not sets[a] & sets[b]


def test_deterministic_for_seed_and_epoch_and_different_across_epochs():
    a, b = ranks(1)[0], ranks(1)[0]
    a.set_epoch(5)
    b.set_epoch(5)
    assert list(a) == list(b)
    assert list(a) == list(a)  # iterating twice gives the same epoch
    b.set_epoch(6)
    assert list(a) != list(b)
    c = ranks(1, seed=1)[0]
    c.set_epoch(5)
    assert list(a) != list(c)


def test_same_global_batches_for_same_global_batch_size():
    """8 processes x 1 and 2 processes x 4 see the same global batches (elastic resume is safe)."""
    eight = global_batches(ranks(8, batch_size=1))
    two = global_batches(ranks(2, batch_size=4))
    assert eight == two
    assert ranks(8, batch_size=1)[0].fingerprint() == ranks(2, batch_size=4)[1].fingerprint()


@pytest.mark.parametrize("world_size", [1, 4])
def test_resume_mid_epoch_yields_exactly_the_remaining_batches(world_size):
    full = ranks(world_size)
    for s in full:
        s.set_epoch(2)
    expected = [list(s) for s in full]
    k = 7
    # what a checkpoint after k consumed batches records, restored into fresh samplers
    state = full[0].state_dict(k)
    assert state["epoch"] == 2 and state["start_batch"] == k
    resumed = ranks(world_size)
    for s in resumed:
        s.load_state_dict(state)
        assert len(s) == s.batches_per_epoch - k
    for r, s in enumerate(resumed):
        assert list(s) == expected[r][k:]
    # set_epoch does the same directly
    s = ranks(world_size)[0]
    s.set_epoch(2, start_batch=k)
    assert list(s) == expected[0][k:]


def test_resume_needs_no_data_and_no_iteration():
    class Exploding(Dataset):
        def __len__(self):
            return 10**9

        def __getitem__(self, i):  # pragma: no cover - must not be called while skipping
            raise AssertionError("resume touched the data")

    s = ranks(1)[0]
    s.set_epoch(0, start_batch=s.batches_per_epoch)
    assert len(s) == 0 and list(s) == []
    assert list(DataLoader(Exploding(), batch_sampler=s)) == []


def test_state_rolls_over_and_position():
    s = ranks(1)[0]
    s.set_epoch(3)
    assert s.state_dict(s.batches_per_epoch)["epoch"] == 4
    assert s.state_dict(s.batches_per_epoch)["start_batch"] == 0
    assert s.position(0) == (0, 0)
    assert s.position(2 * s.batches_per_epoch + 5) == (2, 5)
    with pytest.raises(SamplerError):
        s.state_dict(s.batches_per_epoch + 1)
    with pytest.raises(SamplerError):
        s.set_epoch(0, start_batch=s.batches_per_epoch + 1)


def test_load_state_refuses_other_settings():
    state = ranks(1)[0].state_dict(3)
    for other in (
        ranks(1, batch_size=3)[0],
        ranks(1, seed=9)[0],
        ranks(1, repeats=None)[0],
        ranks(1, datasets=MIX[:-1], repeats={k: v for k, v in UPSTREAM_REPEATS.items() if k != "didemo"})[0],
    ):
        with pytest.raises(SamplerError) as info:
            other.load_state_dict(state)
        assert isinstance(info.value, Sa2vaError) and info.value.fix
    with pytest.raises(SamplerError):
        ranks(1)[0].load_state_dict({"epoch": 1})


@pytest.mark.parametrize("world_size", [1, 4])
def test_repeats_give_the_expected_counts(world_size):
    samplers = ranks(world_size)
    s0 = samplers[0]
    seen = collections.Counter()
    for batch in global_batches(samplers):
        for i in batch:
            seen[s0.split_index(i)[0]] += 1
    expected = {name: length * UPSTREAM_REPEATS[name] for name, _, length in MIX}
    assert s0.samples_per_dataset() == expected
    g = s0.global_batch_size
    for task in s0.tasks:
        names = [n for n, t, _ in MIX if t == task]
        total = sum(expected[n] for n in names)
        # the tail rule: drop the last, incomplete global batch of each task
        assert sum(seen[n] for n in names) == total - total % g == s0.batches_per_task[task] * g
        assert s0.dropped_per_task()[task] == total % g < g
        for n in names:
            assert expected[n] - (total % g) <= seen[n] <= expected[n]
    # each index at most `repeat` times
    counts = collections.Counter(i for b in global_batches(ranks(world_size)) for i in b)
    for i, c in counts.items():
        assert c <= UPSTREAM_REPEATS[s0.split_index(i)[0]]


def test_upstream_repeats_mevis_listed_once_with_eight():
    assert UPSTREAM_REPEATS["mevis"] == 8
    with pytest.raises(SamplerError, match="more than once"):
        TaskGroupedBatchSampler(
            [("mevis", VIDEO_GROUNDING, 5, 4), ("mevis", VIDEO_GROUNDING, 5, 4)], batch_size=1, world_size=1, rank=0
        )


def test_fractional_repeat_draws_a_subset():
    s = TaskGroupedBatchSampler([DatasetSpec("a", "t", 10, 1.5)], batch_size=1, world_size=1, rank=0)
    c = collections.Counter(i for b in s for i in b)
    assert sum(c.values()) == 15 and set(c) == set(range(10)) and max(c.values()) == 2


def test_index_space_and_dataloader():
    s = ranks(1)[0]
    assert s.offsets[:3] == (0, 53, 94)
    assert s.split_index(0) == ("refcoco", 0)
    assert s.split_index(53) == ("refcoco+", 0)
    assert s.split_index(s.total_length - 1) == ("didemo", 4)
    with pytest.raises(SamplerError):
        s.split_index(s.total_length)

    class Ids(Dataset):
        def __len__(self):
            return s.total_length

        def __getitem__(self, i):
            return i

    loader = DataLoader(Ids(), batch_sampler=s)
    assert len(loader) == s.batches_per_epoch
    out = [b.tolist() for b in loader]
    assert out == list(s)
    assert all(isinstance(b, torch.Tensor) for b in DataLoader(Ids(), batch_sampler=s))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(batch_size=0),
        dict(world_size=0),
        dict(world_size=2, rank=2),
        dict(batch_size=1000),
        dict(repeats={"nope": 2}),
    ],
)
def test_rejects_bad_settings(kwargs):
    args = dict(batch_size=2, world_size=1, rank=0) | kwargs
    with pytest.raises(SamplerError):
        TaskGroupedBatchSampler(MIX, **args)


def test_rejects_bad_datasets():
    for bad in (
        [],
        [("a", "t", -1)],
        [("a", "t", 5, -1.0)],
        [("", "t", 5)],
        [("a", "t")],
        [("a", "t", 5, float("nan"))],
    ):
        with pytest.raises(SamplerError):
            TaskGroupedBatchSampler(bad, batch_size=1, world_size=1, rank=0)


def test_defaults_without_torch_distributed():
    s = TaskGroupedBatchSampler(MIX, batch_size=2)
    assert (s.world_size, s.rank) == (1, 0)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["img", "vid", "tmp"]), st.integers(0, 40), st.sampled_from([0, 0.5, 1, 2, 4])),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([1, 2, 4]),
    st.integers(1, 4),
    st.integers(0, 3),
    st.integers(0, 2**31 - 1),
)
def test_properties_over_random_mixes(entries, world_size, batch_size, epoch, seed):
    datasets = [DatasetSpec(f"d{k}", task, length, rep) for k, (task, length, rep) in enumerate(entries)]
    g = world_size * batch_size
    per_task = collections.Counter()
    for d in datasets:
        per_task[d.task] += int(d.length * d.repeat)
    if all(c < g for c in per_task.values()):
        with pytest.raises(SamplerError):
            TaskGroupedBatchSampler(datasets, batch_size=batch_size, world_size=world_size, rank=0)
        return
    samplers = [
        TaskGroupedBatchSampler(datasets, batch_size=batch_size, world_size=world_size, rank=r, seed=seed)
        for r in range(world_size)
    ]
    for s in samplers:
        s.set_epoch(epoch)
    s0 = samplers[0]
    batches = global_batches(samplers)
    assert len(batches) == sum(c // g for c in per_task.values()) == s0.batches_per_epoch
    seen = collections.Counter()
    for batch in batches:
        assert len(batch) == g
        assert len({s0.task_of(i) for i in batch}) == 1
        for i in batch:
            seen[s0.split_index(i)[0]] += 1
            assert 0 <= i < s0.total_length
    for task, count in per_task.items():
        names = [d.name for d in datasets if d.task == task]
        assert sum(seen[n] for n in names) == count - count % g
    for d in datasets:
        assert seen[d.name] <= int(d.length * d.repeat)
    # resume from a random point
    k = int(np.random.default_rng(seed).integers(0, len(batches) + 1))
    for s in samplers:
        s.set_epoch(epoch, start_batch=k)
    assert global_batches(samplers) == batches[k:]


# ----------------------------------------------------------------------------- accumulation and length grouping


def step_slices(world_size: int, accumulation: int, batch_size: int = 2, **kwargs) -> list[list[list[int]]]:
    """Per optimizer step, its micro-batches in global slice order (micro-step k, rank r → slice k * world + r)."""
    samplers = [
        TaskGroupedBatchSampler(
            MIX, batch_size=batch_size, accumulation=accumulation, world_size=world_size, rank=r, **kwargs
        )
        for r in range(world_size)
    ]
    per_rank = [list(s) for s in samplers]
    assert len({len(p) for p in per_rank}) == 1
    assert len(per_rank[0]) == samplers[0].batches_per_epoch * accumulation == len(samplers[0])
    steps = []
    for step in range(samplers[0].batches_per_epoch):
        slices = []
        for k in range(accumulation):
            slices += [per_rank[r][step * accumulation + k] for r in range(world_size)]
        steps.append(slices)
    return steps


def test_a_step_has_the_same_micro_batches_on_2_ranks_x_2_and_1_rank_x_4():
    """The split of an optimizer step into ranks and accumulation changes which process runs a slice,
    never which samples a slice holds: a 2-rank run resumes on 1 rank with the same gradients."""
    two = step_slices(2, 2)
    one = step_slices(1, 4)
    assert two == one
    for slices in one:
        flat = sum(slices, [])
        assert len(flat) == 8 and len({TaskGroupedBatchSampler(MIX, batch_size=8).task_of(i) for i in flat}) == 1
    assert (
        TaskGroupedBatchSampler(MIX, batch_size=2, accumulation=4).fingerprint()
        == TaskGroupedBatchSampler(MIX, batch_size=2, accumulation=2, world_size=2, rank=1).fingerprint()
    )


def test_resume_with_accumulation_skips_whole_steps():
    s = TaskGroupedBatchSampler(MIX, batch_size=2, accumulation=3)
    s.set_epoch(1)
    full = list(s)
    s.set_epoch(1, start_batch=4)
    assert len(s) == (s.batches_per_epoch - 4) * 3
    assert list(s) == full[4 * 3 :]


def padding_fraction(batches: list[list[int]], lengths: np.ndarray) -> float:
    padded = sum(len(b) * lengths[b].max() for b in batches)
    return 1.0 - sum(lengths[b].sum() for b in batches) / padded


def test_length_grouping_keeps_the_samples_and_cuts_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 400, size=sum(n for _, _, n in MIX)).astype(float)
    plain = TaskGroupedBatchSampler(MIX, batch_size=2, seed=3)
    grouped = TaskGroupedBatchSampler(MIX, batch_size=2, seed=3, lengths=lengths, group_window=8)
    for epoch in range(3):
        plain.set_epoch(epoch)
        grouped.set_epoch(epoch)
        a, b = list(plain), list(grouped)
        assert sorted(sum(a, [])) == sorted(sum(b, []))  # the same samples; only their grouping changes
        assert all(len({grouped.task_of(i) for i in batch}) == 1 for batch in b)
        assert padding_fraction(b, lengths) <= 0.5 * padding_fraction(a, lengths)
    assert plain.fingerprint() != grouped.fingerprint()
    other = TaskGroupedBatchSampler(MIX, batch_size=2, seed=3, lengths=lengths[::-1].copy(), group_window=8)
    assert other.fingerprint() != grouped.fingerprint()  # the lengths define the order too


def test_length_grouping_batches_still_change_every_epoch():
    lengths = np.arange(sum(n for _, _, n in MIX), dtype=float)
    s = TaskGroupedBatchSampler(MIX, batch_size=2, lengths=lengths, group_window=4)
    s.set_epoch(0)
    first = list(s)
    s.set_epoch(1)
    assert list(s) != first


def test_lengths_must_cover_the_index_space():
    with pytest.raises(SamplerError, match="lengths"):
        TaskGroupedBatchSampler(MIX, batch_size=2, lengths=[1.0, 2.0])
