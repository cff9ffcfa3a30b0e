"""Clean and corrupt inputs: tokenised, checked to align position by position.

Every method compares the clean and corrupt run at the same (position, unit), so both
batches must have one length: prompts of different token lengths are an error here (group
them by template, e.g. `interp.tasks.ioi.generate(n, template=...)`), never padded silently.
"""

from __future__ import annotations

from typing import Sequence

import torch

from interp.devices import model_device

Prompts = Sequence[str] | torch.Tensor
"""A list of prompts (each tokenised with the model's BOS) or token ids (B, T)."""


def tokens_of(model, prompts: Prompts, field: str) -> torch.Tensor:
    """(B, T) token ids of `prompts`; every prompt must have the same token length."""
    if isinstance(prompts, torch.Tensor):
        if prompts.ndim != 2 or prompts.dtype not in (torch.int64, torch.int32) or prompts.shape[0] == 0:
            raise ValueError(f"{field}: token ids must be a non-empty integer tensor (B, T); got "
                             f"{prompts.dtype} {tuple(prompts.shape)}")
        return prompts.long().to(model_device(model))
    if isinstance(prompts, str) or len(prompts) == 0:
        raise ValueError(f"{field}: expected a non-empty list of prompts or a (B, T) token tensor, got {prompts!r:.80}")
    rows = [model.to_tokens(p)[0] for p in prompts]
    lengths = [len(r) for r in rows]
    if len(set(lengths)) > 1:
        i = next(i for i, n in enumerate(lengths) if n != lengths[0])
        raise ValueError(f"{field}[{i}] tokenises to {lengths[i]} tokens but {field}[0] to {lengths[0]}: positions "
                         "must align, so give prompts of one template (e.g. interp.tasks.ioi.generate(n, "
                         "template=...)) or group them by token length")
    return torch.stack(rows)


def aligned_pair(model, clean: Prompts, corrupt: Prompts) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean, corrupt) token ids, both (B, T); raises ValueError if they do not align."""
    c, k = tokens_of(model, clean, "clean"), tokens_of(model, corrupt, "corrupt")
    if c.shape != k.shape:
        raise ValueError(f"clean tokens {tuple(c.shape)} and corrupt tokens {tuple(k.shape)} differ in shape: "
                         "each clean prompt needs a corrupt partner of the same token length")
    return c, k
