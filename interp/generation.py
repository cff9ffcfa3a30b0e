"""Batched greedy decoding without a KV cache: every step re-runs the whole sequence,
so forward hooks (steering, ablations) apply to prompt and generated tokens alike.

A row stops at the tokenizer's end-of-sequence token: its reply ends with that token's text
and nothing after it. The rows of a batch keep running together until every row has stopped
(a finished row's later tokens are dropped), so each forward extends the previous one with
the same rows: a `steer` session keeps counting generation steps of the same prompts, and
every row's reply is what it would be alone.
"""

from __future__ import annotations

import torch

from interp.batching import equal_length_batches
from interp.devices import model_device


def eos_token_id(model) -> int | None:
    """The id of the end-of-sequence token of `model`'s tokenizer, or None where it has none."""
    tokenizer = getattr(model, "tokenizer", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    return eos if isinstance(eos, int) else None


@torch.no_grad()
def greedy_tokens(model, prompts: list[str], max_new_tokens: int, batch_size: int = 64,
                  stop_at_eos: bool = True) -> list[list[int]]:
    """Greedy reply token ids of `prompts` (BOS prepended), in prompt order.

    Each list holds at most `max_new_tokens` ids; with `stop_at_eos` (and a tokenizer that
    has an EOS token) a list that reached EOS ends with it. Prompts are grouped by token
    length, so no padding ever enters a forward pass.
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens!r} must be a positive integer")
    eos = eos_token_id(model) if stop_at_eos else None
    tokens = [model.to_tokens(prompt, prepend_bos=True)[0] for prompt in prompts]
    replies: list[list[int]] = [[] for _ in prompts]
    for batch in equal_length_batches(tokens, batch_size):
        toks_BT = batch.tokens.to(model_device(model))
        n_prompt = toks_BT.shape[1]
        done_B = torch.zeros(toks_BT.shape[0], dtype=torch.bool, device=toks_BT.device)
        for _ in range(max_new_tokens):
            next_B = model(toks_BT)[:, -1, :].argmax(-1)
            toks_BT = torch.cat([toks_BT, next_B[:, None]], dim=1)
            if eos is not None:
                done_B |= next_B == eos
                if bool(done_B.all()):
                    break
        for i, row in zip(batch.indices, toks_BT[:, n_prompt:].tolist()):
            replies[i] = row[:row.index(eos) + 1] if eos is not None and eos in row else row
    return replies


def greedy(model, prompts: list[str], max_new_tokens: int, batch_size: int = 64,
           stop_at_eos: bool = True) -> list[str]:
    """Greedy continuations of `prompts` (BOS prepended), decoded, in prompt order.

    With `stop_at_eos` (the default) a reply that reached the tokenizer's EOS token ends with
    that token's text (e.g. `<|endoftext|>`) and never runs past it; `stop_at_eos=False`
    always generates `max_new_tokens` tokens.
    """
    ids = greedy_tokens(model, prompts, max_new_tokens, batch_size, stop_at_eos)
    return [model.tokenizer.decode(row) for row in ids]
