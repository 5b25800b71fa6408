"""How big the synthetic world is: the base world, or the base world plus plain extra samples.

Definitions:

- the **base world** (`WorldScale()`): every special case the tests rely on (flawed lines, a rotated video,
  variable frame rate, objects leaving the frame, no-target expressions, ...) in a few dozen samples;
- `train` (≥ 1): the training splits hold `train` times the base world's samples;
- `held_out` (≥ 1): the evaluation splits (val/test, valid_u, ...) hold `held_out` times theirs.

Extra samples are made by the same code as the base ones, so they are ordinary: the base world's special
cases stay exactly where they are, counted once. The demo uses a larger world than the tests, because a
model that sees a few dozen images memorises them instead of learning to ground (docs/training.md, "The demo").
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_FACTOR = 1000  # far beyond anything a CPU can train on; catches a typo before hours of generation


@dataclass(frozen=True)
class WorldScale:
    train: int = 1
    held_out: int = 1

    def __post_init__(self) -> None:
        for name in ("train", "held_out"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_FACTOR:
                raise ValueError(f"WorldScale.{name} must be an integer in [1, {MAX_FACTOR}], got {value!r}")

    def as_dict(self) -> dict[str, int]:
        return {"train": self.train, "held_out": self.held_out}

    def split_factor(self, split: str) -> int:
        """The factor of one split: `train` for training splits, `held_out` for every other one."""
        return self.train if split == "train" else self.held_out


BASE_WORLD = WorldScale()  # what the tests use
