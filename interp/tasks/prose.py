"""Held-out prose: the language-modelling capability every intervention must keep.

The paragraphs are held out from the zoo's training corpus by construction
(`interp.zoo.corpus.heldout_prose`: no training paragraph, and no run of 30 bytes shared with
one); the metric, `prose_ce`, is the mean next-token cross-entropy over them.
"""

from __future__ import annotations

import torch

from interp.tasks.base import check_count


@torch.no_grad()
def prose_ce(model, n: int) -> float:
    """Mean next-token cross-entropy (nats/token) over the first `n` held-out prose paragraphs
    (`interp.zoo.corpus.heldout_prose`), each cut to the model's context (BOS prepended; active
    hooks apply)."""
    # The corpus builds its documents from the tasks, so it is imported here, not at the top.
    from interp.zoo import corpus

    check_count(n)
    paragraphs = corpus.heldout_prose()
    if n > len(paragraphs):
        raise ValueError(f"n={n} is not allowed: the held-out prose has {len(paragraphs)} paragraphs")
    total, count = 0.0, 0
    for text in paragraphs[:n]:
        toks = model.to_tokens(text)[:, : model.cfg.n_ctx]
        loss = model(toks, return_type="loss", loss_per_token=True)  # (1, T-1)
        total, count = total + loss.sum().item(), count + loss.numel()
    return total / count
