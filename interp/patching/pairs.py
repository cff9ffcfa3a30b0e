"""Clean/corrupt prompt pairs of any task, and the inputs every patching method takes.

A pair set is a JSON Lines file, one pair per line:

    {"clean": "When Mary and John went to the store, John gave a drink to",
     "corrupt": "When Mary and John went to the store, Mary gave a drink to",
     "answer": " Mary", "wrong": " John"}

The metric is the logit difference answer − wrong at the last position, normalised so the
clean run scores 1 and the corrupt run 0 (`NormalisedLogitDiff`). `answer` and `wrong` must
each be one token for the model's tokenizer; clean and corrupt must tokenise to one length.
`PatchInputs` is what `score` and the IOI protocol run on.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from interp.errors import ConfigError
from interp.patching.inputs import aligned_pair
from interp.patching.metric import NormalisedLogitDiff
from interp.patching.nodes import DEFAULT_COMPONENTS

PAIR_FIELDS = ("clean", "corrupt", "answer", "wrong")


@dataclass(frozen=True)
class PromptPair:
    """A clean prompt, its corrupt partner, and the answer the clean one should get over `wrong`."""

    clean: str
    corrupt: str
    answer: str
    wrong: str


@dataclass
class PatchInputs:
    """Aligned clean/corrupt token ids (B, T) and the metric normalised on this model."""

    clean: torch.Tensor
    corrupt: torch.Tensor
    metric: NormalisedLogitDiff
    accuracy: float
    """Fraction of clean prompts whose answer's logit beats the wrong one's."""
    pairs: list = field(repr=False)


def read_pairs(path: str | Path) -> list[PromptPair]:
    """The pairs of a JSON Lines file (see the module doc); errors name the line and field."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the pair set ({e})") from e
    pairs = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{i}: not a JSON object ({e})") from e
        if not isinstance(row, dict):
            raise ConfigError(f"{path}:{i}: expected an object with {', '.join(PAIR_FIELDS)}")
        bad = [f for f in PAIR_FIELDS if not isinstance(row.get(f), str) or not row[f]]
        if bad:
            raise ConfigError(f"{path}:{i}: field {bad[0]!r} must be a non-empty string (got {row.get(bad[0])!r}); "
                              f"each line needs {', '.join(PAIR_FIELDS)}")
        pairs.append(PromptPair(*(row[f] for f in PAIR_FIELDS)))
    if not pairs:
        raise ConfigError(f"{path}: no pairs (one JSON object per line with {', '.join(PAIR_FIELDS)})")
    return pairs


def single_token(model, text: str, field: str) -> int:
    """The id of `text` as one token of `model`'s tokenizer (no BOS); a ConfigError otherwise."""
    ids = model.to_tokens(text, prepend_bos=False)[0].tolist()
    if len(ids) != 1:
        raise ConfigError(f"{field}={text!r} is {len(ids)} tokens for this model's tokenizer "
                          f"({model.to_str_tokens(text, prepend_bos=False)}); the metric reads one token's logit")
    return ids[0]


def pair_inputs(model, pairs: Sequence[PromptPair]) -> PatchInputs:
    """`pairs` tokenised and aligned, with the metric calibrated on `model`."""
    clean, corrupt = aligned_pair(model, [p.clean for p in pairs], [p.corrupt for p in pairs])
    answer = torch.tensor([single_token(model, p.answer, f"pairs[{i}].answer") for i, p in enumerate(pairs)])
    wrong = torch.tensor([single_token(model, p.wrong, f"pairs[{i}].wrong") for i, p in enumerate(pairs)])
    return inputs_for(model, clean, corrupt, answer, wrong, list(pairs))


@torch.no_grad()
def inputs_for(model, clean: torch.Tensor, corrupt: torch.Tensor, answer: torch.Tensor, wrong: torch.Tensor,
               pairs: list) -> PatchInputs:
    """`PatchInputs` from aligned token ids and (B,) answer / wrong token ids."""
    metric = NormalisedLogitDiff.calibrate(model, clean, corrupt, answer, wrong)
    logits = model(clean)
    last = logits[:, -1, :]
    wins = last.gather(1, answer.to(last.device)[:, None]) > last.gather(1, wrong.to(last.device)[:, None])
    return PatchInputs(clean, corrupt, metric, wins.float().mean().item(), pairs)


def score(model, method: str, inputs: PatchInputs, components=DEFAULT_COMPONENTS, steps: int = 10) -> pd.DataFrame:
    """Node scores of one `method` (a key of `interp.patching.METHODS`: 'ap', 'atp', 'relp', 'ig' with
    `steps` interpolation steps) on `inputs`: the tidy frame every method returns."""
    from interp.patching import METHODS

    if method not in METHODS:
        raise ConfigError(f"method={method!r}; allowed: {', '.join(METHODS)}")
    fn = METHODS[method]
    kwargs = {"steps": steps} if "steps" in inspect.signature(fn).parameters else {}  # path methods (IG)
    return fn(model, inputs.clean, inputs.corrupt, inputs.metric, components=tuple(components), **kwargs)
