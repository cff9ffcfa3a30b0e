"""Behaviour experts by fTRI [paper: MoTE's "functional Token Resonance Imaging"; details ours].

Prompts are grouped by the model's own response class (`refused`: its greedy reply,
judged by `interp.tasks.refusal.is_refusal`). For each prompt and (layer, expert) we
take the fraction of its tokens routed to the expert (`statistic="count"`) or its
mean router probability (`statistic="weight"`), over all prompt tokens or only the last
`last` ones; an expert's score is the mean over the positive class minus the mean over
the other class. The top-N experts by score are the behaviour experts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from interp.generation import greedy
from interp.moe.capture import RoutingCapture
from interp.moe.routing import Expert
from interp.tasks import refusal
from interp.tasks.chat import chat_format

STATISTICS = ("count", "weight")


def replies(model, prompts: Sequence[str], max_new_tokens: int | None = None) -> pd.DataFrame:
    """The model's greedy replies, judged: columns prompt, reply, refused.

    Replies are judged by the model's chat format (`interp.tasks.chat_format`): its refusal
    openings. `max_new_tokens` defaults to the length of the refusal phrase, enough for the judge.
    Active hooks (ablations, forcing) apply.
    """
    chat = chat_format(model)
    if max_new_tokens is None:
        max_new_tokens = refusal.reply_tokens(model, chat)
    out = greedy(model, list(prompts), max_new_tokens=max_new_tokens)
    return pd.DataFrame(dict(prompt=list(prompts), reply=out, refused=[refusal.is_refusal(r, chat) for r in out]))


def refused(model, prompts: Sequence[str]) -> list[bool]:
    """Whether the model's greedy reply to each prompt is the refusal (the zoo's judge)."""
    return replies(model, prompts)["refused"].tolist()


def prompt_rates(capture: RoutingCapture, statistic: str = "count", last: int | None = None) -> np.ndarray:
    """(P, L, E): per prompt, the fraction of its tokens routed to each expert (`count`)
    or its mean router probability (`weight`), over the last `last` tokens (all if None)."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic={statistic!r} is not allowed; allowed: {', '.join(STATISTICS)}")
    if last is not None and (not isinstance(last, int) or last < 1):
        raise ValueError(f"last={last!r} must be a positive integer or None (all tokens)")
    window = slice(None) if last is None else slice(-last, None)
    per_prompt = [(capture.selected(i).float() if statistic == "count" else capture.probs[i])[:, window].mean(1)
                  for i in range(len(capture))]  # each (L, E)
    return np.stack([r.numpy() for r in per_prompt])


def score_experts(capture: RoutingCapture, positive: Sequence[bool], statistic: str = "count",
                  last: int | None = None) -> pd.DataFrame:
    """fTRI scores of every (layer, expert), best first.

    `positive[i]`: whether prompt i is in the behaviour class (e.g. refused). Columns:
    layer, expert, mean_positive, mean_negative, score (= mean_positive - mean_negative),
    rank (1 = most behaviour-correlated).
    """
    positive = np.asarray(list(positive), dtype=bool)
    if positive.shape != (len(capture),):
        raise ValueError(f"positive has {positive.size} entries but the capture has {len(capture)} prompts")
    if positive.all() or not positive.any():
        raise ValueError(f"positive: both classes need at least one prompt; got {int(positive.sum())} positive "
                         f"of {positive.size} (did the model refuse all or none of the prompts?)")
    rates = prompt_rates(capture, statistic, last)  # (P, L, E)
    pos, neg = rates[positive].mean(0), rates[~positive].mean(0)  # (L, E)
    layers, experts = np.meshgrid(np.arange(capture.n_layers), np.arange(capture.n_experts), indexing="ij")
    df = pd.DataFrame(dict(layer=layers.ravel(), expert=experts.ravel(), mean_positive=pos.ravel(),
                           mean_negative=neg.ravel(), score=(pos - neg).ravel()))
    df = df.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
    df["rank"] = np.arange(1, len(df) + 1)
    return df


def top_experts(scores: pd.DataFrame, n: int) -> list[Expert]:
    """The `n` best-scored (layer, expert) pairs of `score_experts`, best first."""
    if not isinstance(n, int) or not 1 <= n <= len(scores):
        raise ValueError(f"n={n!r} must be an integer in 1..{len(scores)}")
    head = scores.nsmallest(n, "rank")
    return [(int(layer), int(expert)) for layer, expert in zip(head["layer"], head["expert"])]


def score_matrix(scores: pd.DataFrame, value: str = "score") -> np.ndarray:
    """(L, E) array of one `score_experts` column, for heatmaps."""
    return scores.pivot(index="layer", columns="expert", values=value).sort_index().to_numpy()
