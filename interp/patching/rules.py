"""LRP rules as TransformerLens forward hooks (RelP, [paper] Rezaei Jafari et al. 2025).

Each rule keeps the forward value bit for bit and replaces one local Jacobian in the
backward pass. The straight-through form `value.detach() + s - s.detach()` gives the
forward `value` exactly (s - s is exactly 0) and the gradient of the surrogate `s`.

| rule       | where                                 | backward                                      |
|------------|---------------------------------------|-----------------------------------------------|
| `ln`       | every `*.hook_scale` (LayerNorm, RMS) | the normalisation scale is a constant         |
| `identity` | every MLP's nonlinearity f (GELU...)  | g_x = g_y * f(x) / x                          |
| `half`     | gated MLP product f(x) * b            | each factor gets 1/2 of its normal gradient   |
| `ah`       | every `attn.hook_pattern`             | the attention pattern is a constant           |

Both MLP rules are applied at the MLP's `hook_post`; where each MLP class has x and b (its
hooks differ per class, MoE experts included) is the table `MLP_KINDS`, and a class missing
from it is an error.

[paper] The default is LN + identity + half; AH is implemented but off (as in FarnoushRJ/RelP).
[ours] At a pre-activation of exactly 0 the identity rule's coefficient f(x)/x is taken as 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from interp.hooks import block_hook

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


# --- where the rules act, per TransformerLens MLP class -------------------------------------
#
# Every TransformerLens MLP computes post = f(x) (ungated) or post = f(x) * g(b) (+ a constant),
# with x and b each behind a hook; the hooks' names differ per class. TransformerLens 3.9:
#
#   MLP, GatedMLP, GatedMLP4Bit   x: hook_pre   b: hook_pre_linear (gated)   f: act_fn
#   MoEGatedMLP (Mixtral expert)  x: hook_gate  b: hook_pre                  f: act_fn
#   GptOssExpert                  x: hook_gate  b: hook_pre                  f: GLU of clamp(x), g: clamp(b) + 1
#   MLPBridge, GatedMLPBridge     the same hooks as MLP / GatedMLP (TransformerBridge's compatibility
#                                 aliases); f: the wrapped Hugging Face module's activation
#
# MoE and GptOssMoE are containers: the rules act on each of their experts. [ours] The router's
# weighting of the expert outputs keeps its plain gradient (the paper defines no rule for it).


@dataclass(frozen=True)
class MLPKind:
    """Where one MLP class computes post = f(x) (ungated) or f(x) * g(b) (gated)."""

    act_input: str
    """Hook (relative to the module) on x, the input of the elementwise nonlinearity f."""
    linear: str | None
    """Hook on b, the linear branch of the gate product; None: ungated, `hook_post` is f(x)."""
    act: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]
    """f(x) as the class computes it (module, x)."""
    linear_factor: Callable[[torch.Tensor], torch.Tensor] | None = None
    """g(b), the gate product's other factor; None: b itself."""
    post: str = "hook_post"
    """Hook on post, where the rules are applied."""


@dataclass(frozen=True)
class ExpertsKind:
    """A mixture-of-experts container: the rules act on every module of `module.<experts>`."""

    experts: str = "experts"


def _act_fn(module, x):
    return module.act_fn(x)


def _hf_act_fn(module, x):
    """The activation of the Hugging Face MLP a TransformerBridge component wraps."""
    hf = module.original_component
    act = getattr(hf, "act_fn", None) or getattr(hf, "act", None)
    if act is None:
        raise ValueError(f"{type(hf).__qualname__} has no act_fn / act: the RelP identity rule needs its activation")
    return act(x)


def _gpt_oss_glu(module, x):
    from transformer_lens.components.mlps.gpt_oss_moe import GPT_OSS_ALPHA, GPT_OSS_LIMIT

    x = x.clamp(max=GPT_OSS_LIMIT)
    return x * torch.sigmoid(x * GPT_OSS_ALPHA)


def _gpt_oss_up(b):
    from transformer_lens.components.mlps.gpt_oss_moe import GPT_OSS_LIMIT

    return b.clamp(min=-GPT_OSS_LIMIT, max=GPT_OSS_LIMIT) + 1


def _mlp_kinds() -> dict[type, MLPKind | ExpertsKind]:
    from transformer_lens.components.mlps.gated_mlp import GatedMLP
    from transformer_lens.components.mlps.gated_mlp_4bit import GatedMLP4Bit
    from transformer_lens.components.mlps.gpt_oss_moe import GptOssExpert, GptOssMoE
    from transformer_lens.components.mlps.mlp import MLP
    from transformer_lens.components.mlps.moe import MoE, MoEGatedMLP
    from transformer_lens.model_bridge.generalized_components.gated_mlp import GatedMLPBridge
    from transformer_lens.model_bridge.generalized_components.mlp import MLPBridge

    gated = MLPKind(act_input="hook_pre", linear="hook_pre_linear", act=_act_fn)
    return {
        MLP: MLPKind(act_input="hook_pre", linear=None, act=_act_fn),
        GatedMLP: gated,
        GatedMLP4Bit: gated,
        MoE: ExpertsKind(),
        MoEGatedMLP: MLPKind(act_input="hook_gate", linear="hook_pre", act=_act_fn),
        GptOssMoE: ExpertsKind(),
        GptOssExpert: MLPKind(act_input="hook_gate", linear="hook_pre", act=_gpt_oss_glu, linear_factor=_gpt_oss_up),
        MLPBridge: MLPKind(act_input="hook_pre", linear=None, act=_hf_act_fn),
        GatedMLPBridge: MLPKind(act_input="hook_pre", linear="hook_pre_linear", act=_hf_act_fn),
    }


MLP_KINDS: dict[type, MLPKind | ExpertsKind] = _mlp_kinds()
"""TransformerLens MLP class -> where the rules act in it (exact class: a subclass may compute
something else, so it must be added here)."""


def mlp_kind(module: torch.nn.Module, name: str) -> MLPKind | ExpertsKind:
    """The table's entry for `module` (named `name` in the model); an unknown class is an error."""
    kind = MLP_KINDS.get(type(module))
    if kind is None:
        known = ", ".join(sorted(c.__name__ for c in MLP_KINDS))
        raise ValueError(f"{name}: MLP class {type(module).__qualname__} has no entry in the RelP rule table "
                         f"(interp.patching.rules.MLP_KINDS; known: {known}); add where its nonlinearity's input, "
                         "gate product and linear branch are, or turn the identity and half rules off")
    if getattr(module, "hook_mid", None) is not None:
        raise ValueError(f"{name}: act_fn {module.cfg.act_fn!r} has an inner LayerNorm (hook_mid); the "
                         "identity/half rules are defined for elementwise activations only")
    return kind


def _mlps(model) -> list[tuple[str, torch.nn.Module, MLPKind]]:
    """(module name, module, kind) of every MLP the rules act on, experts included, in block order."""
    if model.cfg.attn_only:
        return []
    out = []
    pending = [(block_hook(i, "mlp"), block.mlp) for i, block in enumerate(model.blocks)]
    while pending:
        name, module = pending.pop(0)
        kind = mlp_kind(module, name)
        if isinstance(kind, ExpertsKind):
            experts = getattr(module, kind.experts)
            pending[:0] = [(f"{name}.{kind.experts}.{j}", e) for j, e in enumerate(experts)]
        else:
            out.append((name, module, kind))
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
        for name, mlp, kind in _mlps(model):
            gated = kind.linear is not None
            if not rules.identity and not gated:
                continue
            seen: dict[str, torch.Tensor] = {}
            observers.append((f"{name}.{kind.act_input}", _recorder(seen, "pre")))
            if gated:
                observers.append((f"{name}.{kind.linear}", _recorder(seen, "linear")))
            transforms.append((f"{name}.{kind.post}", _mlp_rule(mlp, kind, seen, rules)))
    return transforms, observers


def _recorder(seen: dict, key: str) -> Callable:
    def hook(t, hook):
        seen[key] = t
        return t
    return hook


def _mlp_rule(mlp, kind: MLPKind, seen: dict, rules: Rules) -> Callable:
    def hook(post, hook):
        x = seen.pop("pre")
        if kind.linear is None:  # post = f(x)
            return straight_through(post, x * identity_coefficient(x, post).detach())
        b = seen.pop("linear")
        gb = b if kind.linear_factor is None else kind.linear_factor(b)
        a = kind.act(mlp, x)
        a_s = x * identity_coefficient(x, a).detach() if rules.identity else a
        s = 0.5 * a_s * gb.detach() + 0.5 * a.detach() * gb if rules.half else a_s * gb
        return straight_through(post, s)
    return hook
