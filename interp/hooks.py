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


def probe(model, names: list[str]) -> dict[str, int]:
    """{hook: width of its activation's last dimension} for `names`, in the order a forward pass
    reaches them (a two-token probe of token id 0, no gradient). Raises ValueError naming a
    hook the model lacks."""
    import torch

    missing = [n for n in names if n not in model.hook_dict]
    if missing:
        raise ValueError(f"hook {missing[0]!r} is not a hook of the model (model.hook_dict has "
                         f"{len(model.hook_dict)} hooks, e.g. blocks.0.hook_resid_pre)")
    seen: dict[str, int] = {}

    def record(act, hook):
        seen.setdefault(hook.name, act.shape[-1])

    device = next(model.parameters()).device
    with torch.no_grad():
        model.run_with_hooks(torch.zeros(1, 2, dtype=torch.long, device=device), return_type=None,
                             fwd_hooks=named_all([(n, record) for n in names]))
    return seen


def check_pair(model, hook: str, target_hook: str, what: str = "target_hook") -> None:
    """A transcoder's input `hook` and `target_hook` exist and the target comes later in the
    forward pass (ValueError naming `what` otherwise)."""
    if target_hook == hook:
        raise ValueError(f"{what}={target_hook!r} is the input hook: a transcoder predicts another hook "
                         "(e.g. blocks.L.ln2.hook_normalized -> blocks.L.hook_mlp_out)")
    order = list(probe(model, [hook, target_hook]))
    if order.index(target_hook) < order.index(hook):
        raise ValueError(f"{what}={target_hook!r} comes before the input hook {hook!r} in the forward pass: a "
                         "transcoder predicts a later activation from an earlier one (e.g. blocks.L.ln2."
                         "hook_normalized -> blocks.L.hook_mlp_out)")


_WRITES_TO = {"hook_mlp_out": "resid_post", "hook_attn_out": "resid_mid"}
"""Block outputs and the residual hook that adding to them adds to (TransformerLens blocks:
resid_mid = resid_pre + attn_out, resid_post = resid_mid + mlp_out)."""


def residual_equivalent(name: str) -> tuple[int, str] | None:
    """(layer, residual site) where adding a vector equals adding it at hook `name`: a residual
    hook itself, `blocks.L.hook_mlp_out` -> (L, "resid_post"), `blocks.L.hook_attn_out` ->
    (L, "resid_mid") (what a transcoder's latent writes, steered in the residual stream); None
    for any other hook."""
    found = resid_site(name)
    if found is not None:
        return found
    parsed = parse(name)
    if parsed is not None and parsed[1] in _WRITES_TO:
        return parsed[0], _WRITES_TO[parsed[1]]
    return None
