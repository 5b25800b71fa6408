"""The schedule upstream runs (training.schedule): length in optimizer steps, warmup, cosine to 0."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import yaml

from sa2va_st.config import validate_config
from sa2va_st.training.schedule import Schedule

REPO = Path(__file__).resolve().parent.parent
TRAINING = validate_config(
    yaml.safe_load((REPO / "config.yaml").read_text()), REPO / "workflow" / "schemas" / "config.schema.yaml"
)["training"]


def test_the_default_is_upstreams_recipe():
    assert TRAINING["lr"] == 4e-5 and TRAINING["betas"] == [0.9, 0.999] and TRAINING["weight_decay"] == 0.05
    assert TRAINING["epochs"] == 10 and TRAINING["warmup_epochs"] == 0.5 and TRAINING["warmup_start_factor"] == 1e-5
    assert TRAINING["batch_size"] == 2 and TRAINING["gradient_accumulation"] == 4
    assert TRAINING["max_grad_norm"] == 1.0 and TRAINING["max_length"] == 8192
    assert TRAINING["save_total_limit"] == 2
    # upstream saves every 1000 iterations, i.e. micro-batches: 250 optimizer steps at accumulation 4
    assert TRAINING["save_steps"] * TRAINING["gradient_accumulation"] == 1000


def test_lr_at_step_0_the_end_of_warmup_and_the_last_step():
    micro_batches_per_pass = 1000  # a mix of 16,000 samples on 8 GPUs x batch 2
    schedule = Schedule.from_training(TRAINING, micro_batches_per_pass)
    # 10 epochs x 8 passes x 1000 micro-batches / 4 per step
    assert schedule.total_steps == 20_000 and schedule.warmup_steps == 1000  # half an upstream epoch
    assert schedule.lr_at(0) == pytest.approx(4e-5 * 1e-5)
    assert schedule.lr_at(500) == pytest.approx(4e-5 * (1e-5 + (1 - 1e-5) * 0.5))  # linear
    assert schedule.lr_at(1000) == pytest.approx(4e-5)  # the peak, at the end of warmup
    middle = 1000 + 19_000 // 2
    assert schedule.lr_at(middle) == pytest.approx(2e-5)  # cosine: half way down
    last = schedule.lr_at(schedule.total_steps - 1)
    assert 0 < last < 1e-12 and last == pytest.approx(4e-5 * (1 + math.cos(math.pi * 18_999 / 19_000)) / 2)
    assert schedule.lr_at(schedule.total_steps) == 0.0
    rates = [schedule.lr_at(s) for s in range(0, schedule.total_steps, 97)]
    peak = rates.index(max(rates))
    assert rates[:peak] == sorted(rates[:peak]) and rates[peak:] == sorted(rates[peak:], reverse=True)


def test_the_mapping_reproduces_upstreams_steps_and_samples_on_8_gpus():
    """Upstream: each of 8 ranks walks the whole mix per epoch in micro-batches of 2, accumulation 4."""
    mix = 64_000
    upstream_steps = TRAINING["epochs"] * mix / (2 * 4)
    upstream_samples = TRAINING["epochs"] * 8 * mix
    micro_batches_per_pass = mix // (8 * 2)  # ours: a pass shards the mix over 8 GPUs
    schedule = Schedule.from_training(TRAINING, micro_batches_per_pass)
    assert schedule.total_steps == upstream_steps
    assert schedule.total_steps * 8 * 2 * 4 == upstream_samples


def test_a_short_run_still_warms_up_and_bad_lengths_are_refused():
    tiny = copy.deepcopy(TRAINING) | {"epochs": 1, "passes_per_epoch": 1, "gradient_accumulation": 1}
    schedule = Schedule.from_training(tiny | {"warmup_epochs": 0.0}, 3)
    assert schedule.warmup_steps == 1 and schedule.lr_at(1) == pytest.approx(4e-5)
    with pytest.raises(ValueError, match="at least one optimizer step"):
        Schedule.from_training(tiny | {"gradient_accumulation": 8}, 3)
