"""Batched greedy decoding without a KV cache: every step re-runs the whole sequence,
so forward hooks (steering, ablations) apply to prompt and generated tokens alike."""

from __future__ import annotations

import torch

from interp.batching import equal_length_batches
from interp.devices import model_device


@torch.no_grad()
def greedy(model, prompts: list[str], max_new_tokens: int, batch_size: int = 64) -> list[str]:
    """Greedy continuations of `prompts` (BOS prepended), decoded, in prompt order.

    Prompts are grouped by token length, so no padding ever enters a forward pass.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be positive")
    tokens = [model.to_tokens(prompt, prepend_bos=True)[0] for prompt in prompts]
    replies: list[str] = [""] * len(prompts)
    for batch in equal_length_batches(tokens, batch_size):
        toks = batch.tokens.to(model_device(model))  # (B, T)
        n_prompt = toks.shape[1]
        for _ in range(max_new_tokens):
            next_tok = model(toks)[:, -1, :].argmax(-1)  # (B,)
            toks = torch.cat([toks, next_tok[:, None]], dim=1)
        for i, row in zip(batch.indices, toks[:, n_prompt:]):
            replies[i] = model.tokenizer.decode(row.tolist())
    return replies
