"""Routing statistics of a `RoutingCapture`, as DataFrames.

* `expert_table`: per (class, layer, expert) selection counts and summed router weights.
* `layer_table`: per layer load balance and routing entropy.
* `coactivation`: per layer, how often two experts are selected for the same token.
* `token_table`: token -> selected experts and their weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import torch

from interp.moe.capture import RoutingCapture


def _check_labels(capture: RoutingCapture, labels: Sequence | None) -> list:
    if labels is None:
        return ["all"] * len(capture)
    labels = list(labels)
    if len(labels) != len(capture):
        raise ValueError(f"labels has {len(labels)} entries but the capture has {len(capture)} prompts")
    return labels


def expert_table(capture: RoutingCapture, labels: Sequence | None = None) -> pd.DataFrame:
    """One row per (class, layer, expert) over all prompt tokens of that class.

    Columns: class, layer, expert, tokens (tokens of the class), count (tokens routed to
    the expert), rate (count / tokens), weight_sum (summed router probability),
    weight_mean, routed_weight_sum (summed weight the expert actually got).
    `labels`: one class label per prompt (default: a single class "all").
    """
    labels = _check_labels(capture, labels)
    rows = []
    for label in dict.fromkeys(labels):
        members = [i for i, c in enumerate(labels) if c == label]
        count = sum(capture.selected(i).sum(1) for i in members).numpy()  # (L, E)
        prob = sum(capture.probs[i].sum(1) for i in members).numpy()
        weight = sum(capture.weights[i].sum(1) for i in members).numpy()
        n_tokens = sum(capture.tokens[i].numel() for i in members)
        for layer in range(capture.n_layers):
            for e in range(capture.n_experts):
                rows.append(dict(**{"class": label}, layer=layer, expert=e, tokens=n_tokens,
                                 count=int(count[layer, e]), rate=count[layer, e] / n_tokens,
                                 weight_sum=float(prob[layer, e]), weight_mean=float(prob[layer, e]) / n_tokens,
                                 routed_weight_sum=float(weight[layer, e])))
    return pd.DataFrame(rows)


def layer_table(capture: RoutingCapture) -> pd.DataFrame:
    """One row per layer: load balance and routing entropy over every captured token.

    Columns: layer; min_share / max_share (smallest / largest fraction of routed token
    slots an expert gets; 1/E each when balanced); cv (coefficient of variation of the
    shares); switch_balance (E * sum_e share_e * mean router prob_e, Switch Transformer's
    auxiliary loss: 1 when balanced); usage_entropy (entropy of the shares / log E, 1 =
    balanced); token_entropy (mean entropy of a token's router distribution / log E);
    unused (experts no token selected).
    """
    selected = torch.cat([capture.selected(i) for i in range(len(capture))], dim=1).float()  # (L, N, E)
    probs = torch.cat(capture.probs, dim=1)  # (L, N, E)
    e = capture.n_experts
    rows = []
    for layer in range(capture.n_layers):
        share = selected[layer].sum(0) / selected[layer].sum()  # (E,)
        p = probs[layer]
        usage_entropy = -(share * share.clamp_min(1e-12).log()).sum().item() / math.log(e)
        token_entropy = -(p * p.clamp_min(1e-12).log()).sum(-1).mean().item() / math.log(e)
        rows.append(dict(layer=layer, min_share=share.min().item(), max_share=share.max().item(),
                         cv=(share.std(unbiased=False) / share.mean()).item(),
                         switch_balance=e * (share * p.mean(0)).sum().item(),
                         usage_entropy=usage_entropy, token_entropy=token_entropy,
                         unused=int((share == 0).sum())))
    return pd.DataFrame(rows)


def coactivation(capture: RoutingCapture, layer: int) -> pd.DataFrame:
    """(E, E) DataFrame: entry [a, b] counts tokens routed to both a and b in `layer`;
    the diagonal counts tokens routed to each expert."""
    if not 0 <= layer < capture.n_layers:
        raise ValueError(f"layer={layer} is out of range; allowed 0..{capture.n_layers - 1}")
    sel = torch.cat([capture.selected(i)[layer] for i in range(len(capture))]).float()  # (N, E)
    matrix = (sel.T @ sel).long().numpy()
    index = pd.Index(range(capture.n_experts), name="expert")
    return pd.DataFrame(matrix, index=index, columns=index.rename("with"))


def token_table(capture: RoutingCapture, tokenizer=None) -> pd.DataFrame:
    """One row per (prompt, position, layer): the token and the experts it was routed to.

    Columns: prompt (index), position, token (id), text (decoded, when `tokenizer` is
    given), layer, experts (tuple, by decreasing weight), weights (tuple).
    """
    rows = []
    for i in range(len(capture)):
        w = capture.weights[i]  # (L, T, E)
        for pos, tok in enumerate(capture.tokens[i].tolist()):
            text = tokenizer.decode([tok]) if tokenizer is not None else None
            for layer in range(capture.n_layers):
                row_w = w[layer, pos]
                experts = [int(e) for e in torch.argsort(row_w, descending=True, stable=True) if row_w[e] != 0]
                rows.append(dict(prompt=i, position=pos, token=tok, text=text, layer=layer,
                                 experts=tuple(experts), weights=tuple(float(row_w[e]) for e in experts)))
    df = pd.DataFrame(rows)
    return df if tokenizer is not None else df.drop(columns="text")

