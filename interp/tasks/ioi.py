"""Indirect-object identification (IOI).

"When Mary and John went to the store, John gave a drink to" -> " Mary".
The indirect object (IO) is the name mentioned once; the subject (S) is repeated.
The corrupt prompt of each pair replaces the second subject mention with the IO
name, which swaps which name is the right answer while keeping every position.
Train and held-out splits share neither names nor templates.

For a model other than the zoo, pass it (or its tokenizer) as `tokenizer=`: the names,
places and objects are then those its tokenizer keeps as one token (`interp.tasks.tokens`),
so that the answer is read off one position and every prompt of a template has the same
token length. The zoo tokenizer keeps every word, so its prompts are those of the plain lists.

The metric, `ioi_scores`, is the accuracy (logit(IO) > logit(S)) and the mean logit
difference at the last prompt position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from interp.batching import equal_length_batches
from interp.devices import model_device
from interp.errors import ConfigError
from interp.tasks.base import check_count, check_split, rng_for
from interp.tasks.tokens import describe, tokenizer_of, whole_words, word_token
from interp.tasks.vocab import HELDOUT_NAMES, OBJECTS, PLACES, TRAIN_NAMES

# A template is an opening clause, a motion and a giving clause: 7 x 7 x 9 = 441 of them.
# Held out: one opening per (motion, giving) pair, so every held-out template is an unseen
# combination of parts that training shows in other combinations (and every pair of parts
# is seen in training). Eight fixed templates did not generalise: a model trained on them
# failed on new wordings (0.59 accuracy on held-out templates, 1.00 on train).
OPENINGS = ("When", "After", "While", "Before", "Once", "As", "Because")
MOTIONS = ("went to the {place}", "were at the {place}", "arrived at the {place}",
           "visited the {place}", "left the {place}", "were inside the {place}",
           "stopped at the {place}")
GIVINGS = ("gave a {obj} to", "handed the {obj} to", "showed the {obj} to", "passed the {obj} to",
           "threw the {obj} to", "sent a {obj} to", "offered the {obj} to", "lent a {obj} to",
           "brought the {obj} to")


def _template(i: int, j: int, k: int) -> str:
    return f"{OPENINGS[i]} {{A}} and {{B}} {MOTIONS[j]}, {{S}} {GIVINGS[k]}"


def _heldout(i: int, j: int, k: int) -> bool:
    return (i + 2 * j + 3 * k) % len(OPENINGS) == len(OPENINGS) - 1


_PARTS = [(i, j, k) for k in range(len(GIVINGS)) for j in range(len(MOTIONS)) for i in range(len(OPENINGS))]
TRAIN_TEMPLATES = tuple(_template(*c) for c in _PARTS if not _heldout(*c))
HELDOUT_TEMPLATES = tuple(_template(*c) for c in _PARTS if _heldout(*c))
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


def names(split: str, tokenizer=None) -> tuple[str, ...]:
    """The names of `split`; with `tokenizer` (a model or tokenizer), only those it keeps as
    one token (at least 2, or a `ConfigError`)."""
    check_split(split)
    return whole_words(tokenizer, TRAIN_NAMES if split == "train" else HELDOUT_NAMES, f"IOI {split} names", 2)


def generate(n: int, split: str = "train", seed: int = 0, template: str | None = None,
             names_split: str | None = None, tokenizer=None) -> list[IOIPrompt]:
    """`n` IOI pairs, deterministic in (split, seed, tokenizer's kept words); ABBA and BABA alternate.

    `template` fixes one template (every prompt then has the same token positions).
    `names_split` takes the names from another split than the templates (default: the same),
    to tell whether a model generalises to new wordings or to new names.
    `tokenizer`: the model (or its tokenizer) the prompts are for; names, places and objects
    are drawn from the words it keeps as one token. None: the plain word lists (the zoo's).
    """
    check_count(n)
    pool = templates(split)
    if template is not None and template not in pool:
        raise ValueError(f"template={template!r} is not a {split} template; allowed: {pool}")
    name_pool = names(split if names_split is None else names_split, tokenizer)
    places = whole_words(tokenizer, PLACES, "IOI places", 1)
    objects = whole_words(tokenizer, OBJECTS, "IOI objects", 1)
    rng = rng_for("ioi", split, seed)
    out = []
    for i in range(n):
        tpl = template or rng.choice(pool)
        io, s = rng.sample(name_pool, 2)
        order = ORDERS[i % 2]
        a, b = (io, s) if order == "ABBA" else (s, io)
        fill = dict(A=a, B=b, place=rng.choice(places), obj=rng.choice(objects))
        out.append(IOIPrompt(
            prompt=tpl.format(S=s, **fill), corrupt=tpl.format(S=io, **fill),
            io=io, s=s, template=tpl, order=order,
        ))
    return out


def logit_diff(logits: torch.Tensor, io_ids: torch.Tensor, s_ids: torch.Tensor) -> torch.Tensor:
    """logit(IO) - logit(S) at the last position. logits: (B, T, V); ids: (B,) -> (B,)."""
    last = logits[:, -1, :]  # (B, V)
    return last.gather(1, io_ids[:, None])[:, 0] - last.gather(1, s_ids[:, None])[:, 0]


def answer_ids(model, prompts: Sequence[IOIPrompt]) -> tuple[torch.Tensor, torch.Tensor]:
    """(IO ids, S ids), each (B,) int64 on the CPU: the single token of each prompt's two names
    as they follow "to" (`interp.tasks.tokens.word_token`). A name the model's tokenizer
    splits is a `ConfigError`: generate the prompts with `tokenizer=model`."""
    tok = tokenizer_of(model)
    ids = {}
    for name in {n for p in prompts for n in (p.io, p.s)}:
        ids[name] = word_token(tok, name)
        if ids[name] is None:
            raise ConfigError(f"IOI name {name!r} is several tokens for tokenizer {describe(tok)}: its logit "
                              "cannot be read off one position; generate the prompts with "
                              "interp.tasks.ioi.generate(..., tokenizer=model)")
    return torch.tensor([ids[p.io] for p in prompts]), torch.tensor([ids[p.s] for p in prompts])


class IOIScores(NamedTuple):
    accuracy: float
    """Fraction of prompts with logit(IO) > logit(S) at the last position."""
    logit_diff: float
    """Mean over prompts of logit(IO) - logit(S) at the last position (nats)."""


@torch.no_grad()
def ioi_scores(model, prompts: Sequence[IOIPrompt], batch_size: int = 64) -> IOIScores:
    """Accuracy and mean logit difference of `model` on `prompts` (BOS prepended; active hooks apply).

    One template per forward pass: the zoo's committed IOI figures were measured so, and an
    MoE model's logits move in the last bits with the batch's other prompts.
    """
    if not prompts:
        raise ValueError("prompts is empty: IOI scores need at least one prompt")
    io, s = answer_ids(model, prompts)
    tokens = [model.to_tokens(p.prompt)[0] for p in prompts]
    diff_N = torch.empty(len(prompts))
    for batch in equal_length_batches(tokens, batch_size, keys=[p.template for p in prompts]):
        logits = model(batch.tokens.to(model_device(model)))
        idx = torch.tensor(batch.indices)
        diff_N[idx] = logit_diff(logits, io[idx].to(logits.device), s[idx].to(logits.device)).float().cpu()
    return IOIScores((diff_N > 0).float().mean().item(), diff_N.mean().item())
