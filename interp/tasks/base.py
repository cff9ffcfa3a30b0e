"""What every behaviour task shares: splits, seeded generation, and the prompt record."""

from __future__ import annotations

import random
from dataclasses import dataclass

SPLITS = ("train", "heldout")


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not a split; allowed: {', '.join(SPLITS)}")


def check_count(n: int, field: str = "n") -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"{field}={n!r} must be a positive integer")


def rng_for(task: str, split: str, seed: int) -> random.Random:
    """An RNG stream private to (task, split, seed), so tasks never share randomness."""
    return random.Random(f"{task}/{split}/{seed}")


@dataclass(frozen=True)
class Completion:
    """A prompt and the text the model is expected to continue it with."""

    prompt: str
    answer: str

    @property
    def text(self) -> str:
        return self.prompt + self.answer
