"""Run the model with edits at sites: the one place that installs hooks for every method.

An *edit* is a function act -> act applied to a site's activation (patch, capture,
interpolate, mean-ablate). Ordinary sites are edited at their hook; an SAE site is spliced
in at its hook: its latents f (B, T, n) are computed, edited to f', and the hook returns
x + dec(f') - dec(f). A transcoder site reads its input hook and is spliced in the same way
at its target: y + dec(f') - dec(f), f the latents of the input (b_dec and the skip path cancel). With no edit this is x exactly; otherwise it is dec(f') + the error
term of this run (the error term is never patched nor ablated [ours]). Gradients reach f'
through dec and flow upstream through the identity (the encoder is not differentiated).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

from interp.patching.nodes import Site
from interp.patching.rules import Rules, rule_hooks

Edit = Callable[[torch.Tensor], torch.Tensor]


def sae_latents(site: Site, x: torch.Tensor) -> torch.Tensor:
    """(B, T, n) dense latent activations of the site's SAE on x (B, T, d), no gradient."""
    from interp.sae.module import code_to_dense

    sae = site.sae.sae
    B, T, d = x.shape
    with torch.no_grad():
        f = code_to_dense(sae.encode(x.reshape(B * T, d)), sae.cfg.n_latents)
    return f.view(B, T, -1).to(x.dtype)


def sae_decode(site: Site, f: torch.Tensor, stats) -> torch.Tensor:
    """(B, T, d_out) decoder output of dense latents f (B, T, n) in raw units, differentiable in
    f; `stats`: the SAE's `input_stats` of the activations f encodes (None unless it normalises
    per token)."""
    sae = site.sae.sae
    return sae.from_sae_space(f @ sae.W_dec + sae.b_dec, stats).to(f.dtype)


def _site_hooks(site: Site, edit: Edit) -> list[tuple[str, Callable]]:
    """The (hook name, function) pairs that apply `edit` at `site`."""
    if site.component == "sae":
        def splice(x, hook):
            f = sae_latents(site, x)
            f_edit = edit(f)
            if f_edit is f:
                return x
            stats = site.sae.sae.input_stats(x.detach().float())
            return x + (sae_decode(site, f_edit, stats) - sae_decode(site, f, stats))
        return [(site.hook, splice)]
    if site.component == "tc":  # read the input, splice the latents in at the target
        held = {}

        def read(x, hook):
            held["x"] = x
        def splice_target(y, hook):
            f = sae_latents(site, held.pop("x"))
            f_edit = edit(f)
            if f_edit is f:
                return y
            return y + (sae_decode(site, f_edit, None) - sae_decode(site, f, None))
        return [(site.sae.hook, read), (site.hook, splice_target)]
    return [(site.hook, lambda act, hook: edit(act))]


def run(model, tokens: torch.Tensor, edits: Mapping[Site, Edit] | None = None, rules: Rules | None = None) -> torch.Tensor:
    """Logits (B, T, V) of `model` on `tokens` with `edits` at their sites and `rules` in the backward."""
    transforms, observers = rule_hooks(model, rules) if rules is not None and rules.any else ([], [])
    hooks = transforms + [h for s, e in (edits or {}).items() for h in _site_hooks(s, e)] + observers
    with model.hooks(fwd_hooks=hooks):
        return model(tokens)


@torch.no_grad()
def capture(model, tokens: torch.Tensor, sites: Sequence[Site]) -> tuple[dict[Site, torch.Tensor], torch.Tensor]:
    """({site: activation}, logits) of one forward; an SAE site's activation is its latents (B, T, n)."""
    acts: dict[Site, torch.Tensor] = {}

    def keep(site):
        def edit(act):
            acts[site] = act.detach().clone()
            return act
        return edit

    logits = run(model, tokens, {s: keep(s) for s in sites})
    return acts, logits


def repeat_batch(tokens: torch.Tensor, times: int) -> torch.Tensor:
    """(times * B, T): the batch repeated, chunk j = rows j*B .. (j+1)*B - 1."""
    return tokens.repeat(times, 1)
