"""LRP rules as TransformerLens forward hooks (RelP, [paper] Rezaei Jafari et al. 2025).

Each rule keeps the forward value bit for bit and replaces one local Jacobian in the
backward pass. The straight-through form `value.detach() + s - s.detach()` gives the
forward `value` exactly (s - s is exactly 0) and the gradient of the surrogate `s`.

| rule       | where                                 | backward                                      |
|------------|---------------------------------------|-----------------------------------------------|
| `ln`       | every `*.hook_scale` (LayerNorm, RMS) | the normalisation scale is a constant         |
| `identity` | every MLP `hook_post` (GELU, SiLU...) | g_x = g_y * f(x) / x                          |
| `half`     | gated MLP `hook_post` (a * b)         | each factor gets 1/2 of its normal gradient   |
| `ah`       | every `attn.hook_pattern`             | the attention pattern is a constant           |

[paper] The default is LN + identity + half; AH is implemented but off (as in FarnoushRJ/RelP).
[ours] At a pre-activation of exactly 0 the identity rule's coefficient f(x)/x is taken as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Hook = tuple[str, Callable]


@dataclass(frozen=True)
class Rules:
    """Which LRP rules replace their local Jacobian in the backward pass."""

    ln: bool = True
    """LayerNorm / RMSNorm: the scale is treated as constant [paper default: on]."""
    identity: bool = True
    """Elementwise activations: g_x = g_y * f(x)/x [paper default: on]."""
    half: bool = True
    """Gated-MLP product a*b: each factor gets half its gradient [paper default: on]."""
    ah: bool = False
    """Attention softmax: pattern treated as constant [paper default: off]."""

    def __post_init__(self):
        for name in ("ln", "identity", "half", "ah"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Rules.{name}={getattr(self, name)!r} must be a bool")

    @classmethod
    def none(cls) -> "Rules":
        """Plain gradients: RelP with these rules is AtP."""
        return cls(ln=False, identity=False, half=False, ah=False)

    @property
    def any(self) -> bool:
        return self.ln or self.identity or self.half or self.ah


def straight_through(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """Forward: `value` exactly. Backward: the gradient of `surrogate`."""
    return value.detach() + (surrogate - surrogate.detach())


def identity_coefficient(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """f(x)/x elementwise, 0 where x == 0 exactly."""
    nonzero = x != 0
    return torch.where(nonzero, y / torch.where(nonzero, x, torch.ones_like(x)), torch.zeros_like(x))


def _detach(t: torch.Tensor, hook) -> torch.Tensor:
    return t.detach()


def _mlps(model) -> list[tuple[str, torch.nn.Module]]:
    """(module name, module) of every MLP with TransformerLens hook_pre / hook_post (experts included)."""
    out = []
    for name, module in model.named_modules():
        if hasattr(module, "act_fn") and hasattr(module, "hook_pre") and hasattr(module, "hook_post"):
            if getattr(module, "hook_mid", None) is not None:
                raise ValueError(f"{name}: act_fn {model.cfg.act_fn!r} has an inner LayerNorm (hook_mid); the "
                                 "identity/half rules are defined for elementwise activations only")
            out.append((name, module))
    return out


def rule_hooks(model, rules: Rules) -> tuple[list[Hook], list[Hook]]:
    """(transform hooks, observer hooks) implementing `rules` on `model`.

    Transform hooks must run before any other hook on the same point; observer hooks (they
    record the MLP inputs the rules need) after every other hook on theirs.
    """
    transforms: list[Hook] = []
    observers: list[Hook] = []
    if rules.ln:
        transforms += [(n, _detach) for n in model.hook_dict if n.endswith("hook_scale")]
    if rules.ah:
        transforms += [(n, _detach) for n in model.hook_dict if n.endswith("attn.hook_pattern")]
    if rules.identity or rules.half:
        for name, mlp in _mlps(model):
            gated = hasattr(mlp, "hook_pre_linear")
            if not rules.identity and not gated:
                continue
            seen: dict[str, torch.Tensor] = {}
            observers.append((f"{name}.hook_pre", _recorder(seen, "pre")))
            if gated:
                observers.append((f"{name}.hook_pre_linear", _recorder(seen, "linear")))
            transforms.append((f"{name}.hook_post", _mlp_rule(mlp.act_fn, seen, gated, rules)))
    return transforms, observers


def _recorder(seen: dict, key: str) -> Callable:
    def hook(t, hook):
        seen[key] = t
        return t
    return hook


def _mlp_rule(act_fn, seen: dict, gated: bool, rules: Rules) -> Callable:
    def hook(post, hook):
        x = seen.pop("pre")
        if not gated:
            return straight_through(post, x * identity_coefficient(x, post).detach())
        b = seen.pop("linear")
        a = act_fn(x)
        a_s = x * identity_coefficient(x, a).detach() if rules.identity else a
        s = 0.5 * a_s * b.detach() + 0.5 * a.detach() * b if rules.half else a_s * b
        return straight_through(post, s)
    return hook
