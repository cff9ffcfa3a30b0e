"""Batched greedy decoding without a KV cache: every step re-runs the whole sequence,
so forward hooks (steering, ablations) apply to prompt and generated tokens alike."""

from __future__ import annotations

from collections import defaultdict

import torch


@torch.no_grad()
def greedy(model, prompts: list[str], max_new_tokens: int, batch_size: int = 64) -> list[str]:
    """Greedy continuations of `prompts` (BOS prepended), decoded, in prompt order.

    Prompts are grouped by token length, so no padding ever enters a forward pass.
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} must be positive")
    by_length: dict[int, list[tuple[int, torch.Tensor]]] = defaultdict(list)
    for i, prompt in enumerate(prompts):
        toks = model.to_tokens(prompt, prepend_bos=True)[0]
        by_length[len(toks)].append((i, toks))
    replies: list[str] = [""] * len(prompts)
    device = model.cfg.device
    for group in by_length.values():
        for start in range(0, len(group), batch_size):
            chunk = group[start:start + batch_size]
            toks = torch.stack([t for _, t in chunk]).to(device)  # (B, T)
            n_prompt = toks.shape[1]
            for _ in range(max_new_tokens):
                next_tok = model(toks)[:, -1, :].argmax(-1)  # (B,)
                toks = torch.cat([toks, next_tok[:, None]], dim=1)
            for (i, _), row in zip(chunk, toks[:, n_prompt:]):
                replies[i] = model.tokenizer.decode(row.tolist())
    return replies
