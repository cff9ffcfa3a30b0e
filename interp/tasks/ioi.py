"""Indirect-object identification (IOI).

"When Mary and John went to the store, John gave a drink to" -> " Mary".
The indirect object (IO) is the name mentioned once; the subject (S) is repeated.
The corrupt prompt of each pair replaces the second subject mention with the IO
name, which swaps which name is the right answer while keeping every position.
Train and held-out splits share neither names nor templates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from interp.tasks.base import check_count, check_split, rng_for
from interp.tasks.vocab import HELDOUT_NAMES, OBJECTS, PLACES, TRAIN_NAMES

TRAIN_TEMPLATES = (
    "When {A} and {B} went to the {place}, {S} gave a {obj} to",
    "After {A} and {B} went to the {place}, {S} gave the {obj} to",
    "While {A} and {B} were at the {place}, {S} handed a {obj} to",
    "When {A} and {B} arrived at the {place}, {S} showed the {obj} to",
    "{A} and {B} walked to the {place}. There {S} passed the {obj} to",
    "Then {A} and {B} went to the {place}, and {S} threw the {obj} to",
    "Yesterday {A} and {B} met at the {place}, and {S} sent a {obj} to",
    "As {A} and {B} left the {place}, {S} offered the {obj} to",
)
HELDOUT_TEMPLATES = (
    "Before {A} and {B} visited the {place}, {S} lent a {obj} to",
    "Once {A} and {B} were inside the {place}, {S} brought the {obj} to",
    "Later {A} and {B} stopped at the {place}, and {S} gave a {obj} to",
)
ORDERS = ("ABBA", "BABA")


@dataclass(frozen=True)
class IOIPrompt:
    """One clean/corrupt pair. `answer` is the correct continuation of `prompt`."""

    prompt: str
    corrupt: str
    io: str
    s: str
    template: str
    order: str

    @property
    def answer(self) -> str:
        return " " + self.io

    @property
    def text(self) -> str:
        return f"{self.prompt}{self.answer}."


def templates(split: str) -> tuple[str, ...]:
    check_split(split)
    return TRAIN_TEMPLATES if split == "train" else HELDOUT_TEMPLATES


def names(split: str) -> tuple[str, ...]:
    check_split(split)
    return tuple(TRAIN_NAMES if split == "train" else HELDOUT_NAMES)


def generate(n: int, split: str = "train", seed: int = 0, template: str | None = None) -> list[IOIPrompt]:
    """`n` IOI pairs, deterministic in (split, seed); ABBA and BABA alternate.

    `template` fixes one template (every prompt then has the same token positions).
    """
    check_count(n)
    pool = templates(split)
    if template is not None and template not in pool:
        raise ValueError(f"template={template!r} is not a {split} template; allowed: {pool}")
    rng = rng_for("ioi", split, seed)
    name_pool = names(split)
    out = []
    for i in range(n):
        tpl = template or rng.choice(pool)
        io, s = rng.sample(name_pool, 2)
        order = ORDERS[i % 2]
        a, b = (io, s) if order == "ABBA" else (s, io)
        fill = dict(A=a, B=b, place=rng.choice(PLACES), obj=rng.choice(OBJECTS))
        out.append(IOIPrompt(
            prompt=tpl.format(S=s, **fill), corrupt=tpl.format(S=io, **fill),
            io=io, s=s, template=tpl, order=order,
        ))
    return out


def logit_diff(logits: torch.Tensor, io_ids: torch.Tensor, s_ids: torch.Tensor) -> torch.Tensor:
    """logit(IO) - logit(S) at the last position. logits: (B, T, V); ids: (B,) -> (B,)."""
    last = logits[:, -1, :]  # (B, V)
    return last.gather(1, io_ids[:, None])[:, 0] - last.gather(1, s_ids[:, None])[:, 0]
