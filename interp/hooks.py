"""Hook names: the one place that builds and parses them.

interp speaks TransformerLens's hook names (`blocks.3.hook_resid_pre`, `blocks.3.mlp.hook_post`,
`blocks.3.attn.hook_z`). `HookedTransformer` and `TransformerBridge` (compatibility mode) accept
the same names, with one difference this module hides: a Bridge hook point reached through an
alias reports its own name (`blocks.3.hook_in` for `blocks.3.hook_resid_pre`). `named` wraps a
hook function so it always sees the name it was installed under.
"""

from __future__ import annotations

import re
from typing import Callable

HookFn = Callable  # (activation, hook) -> activation | None

_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
EMBED_HOOKS = ("hook_embed", "hook_pos_embed", "hook_tokens")
"""Hooks before block 0."""


def block_hook(layer: int, point: str) -> str:
    """`blocks.{layer}.{point}`: e.g. block_hook(3, "mlp.hook_post")."""
    return f"blocks.{layer}.{point}"


def resid(layer: int, site: str) -> str:
    """The residual stream hook `site` ("resid_pre", "resid_mid", "resid_post") of block `layer`."""
    return block_hook(layer, f"hook_{site}")


def parse(name: str) -> tuple[int, str] | None:
    """(layer, point within the block) of a per-block hook name, None for any other hook."""
    m = _BLOCK.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


def layer_of(name: str) -> int | None:
    """The block index of a per-block hook name; -1 for the embedding hooks; None otherwise."""
    parsed = parse(name)
    if parsed is not None:
        return parsed[0]
    return -1 if name in EMBED_HOOKS else None


def resid_site(name: str) -> tuple[int, str] | None:
    """(layer, site) if `name` is a residual stream hook (`blocks.L.hook_resid_*`), else None."""
    parsed = parse(name)
    if parsed is None or not parsed[1].startswith("hook_resid_"):
        return None
    return parsed[0], parsed[1].removeprefix("hook_")


class _Named:
    """A hook point as seen by a hook function: `.name` is the name the hook was installed
    under; everything else is the real hook point's."""

    __slots__ = ("_hook", "name")

    def __init__(self, hook, name: str):
        self._hook = hook
        self.name = name

    def __getattr__(self, attr):
        return getattr(self._hook, attr)


def named(name: str, fn: HookFn) -> tuple[str, HookFn]:
    """(name, fn') where fn' calls `fn(activation, hook)` with `hook.name == name`."""

    def hook_fn(act, hook):
        return fn(act, hook if hook.name == name else _Named(hook, name))

    return name, hook_fn


def named_all(hooks: list[tuple[str, HookFn]]) -> list[tuple[str, HookFn]]:
    """`named` applied to every (name, fn) pair."""
    return [named(n, f) for n, f in hooks]


def stop_layer(model, names: list[str]) -> int | None:
    """The layer a forward pass may stop at (exclusive) and still reach every hook in `names`;
    None when one of them needs the full pass (e.g. `ln_final.hook_normalized`)."""
    layers = [layer_of(n) for n in names]
    if any(layer is None for layer in layers) or not layers:
        return None
    stop = max(layers) + 1
    return stop if stop < model.cfg.n_layers else None


def run_from_embeddings(model, x_BTD, names: list[str]):
    """`run_with_cache` of `model` from block 0's residual input `x_BTD` (B, T, d_model), caching
    `names`: what `HookedTransformer`'s `start_at_layer=0` does. A `TransformerBridge` runs the
    Hugging Face forward, which starts from token ids, so there the pass runs on placeholder
    ids and block 0's input is replaced by `x_BTD` (every later activation is a function of it)."""
    from transformer_lens import HookedTransformer

    if isinstance(model, HookedTransformer):
        return model.run_with_cache(x_BTD, start_at_layer=0, names_filter=list(names))
    import torch

    tokens_BT = torch.zeros(x_BTD.shape[:2], dtype=torch.long, device=x_BTD.device)
    with model.hooks(fwd_hooks=[(resid(0, "resid_pre"), lambda act, hook: x_BTD)]):
        return model.run_with_cache(tokens_BT, names_filter=list(names))
