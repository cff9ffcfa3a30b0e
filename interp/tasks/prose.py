"""Held-out prose: the language-modelling capability every intervention must keep.

The paragraphs are the zoo corpus's held-out prose (`interp.zoo.corpus.prose`); the
metric, `prose_ce`, is the mean next-token cross-entropy over them.
"""

from __future__ import annotations

import torch

from interp.tasks.base import check_count


@torch.no_grad()
def prose_ce(model, n: int) -> float:
    """Mean next-token cross-entropy (nats/token) over the first `n` held-out prose paragraphs,
    each cut to the model's context (BOS prepended; active hooks apply)."""
    # The corpus builds its documents from the tasks, so it is imported here, not at the top.
    from interp.zoo import corpus

    check_count(n)
    total, count = 0.0, 0
    for text in corpus.prose("heldout")[:n]:
        toks = model.to_tokens(text)[:, : model.cfg.n_ctx]
        loss = model(toks, return_type="loss", loss_per_token=True)  # (1, T-1)
        total, count = total + loss.sum().item(), count + loss.numel()
    return total / count
