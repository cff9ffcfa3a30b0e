"""Apply steering with TransformerLens hooks: the `Steering` spec, the `steer` context
manager, and the `SteeringTrace` it records.

    spec = Steering(direction=d, layers=[2], coefficients=4.0, positions="generated")
    with steer(model, spec) as trace:
        replies = interp.generation.greedy(model, prompts, max_new_tokens=8)
    trace.to_frame()   # one row per (forward pass, layer, patched position)

Positions are absolute token positions t (BOS = 0) relative to the prompt length P:

| positions       | patched t                 | note                                              |
|-----------------|---------------------------|---------------------------------------------------|
| "last_prompt"   | t = P − 1                 | the position that predicts the first reply token   |
| "prompt"        | t < P                     |                                                   |
| "generated"     | t ≥ P − 1                 | every position that predicts a generated token: the first generated token is steered |
| "last"          | the last t of each forward| what HF `generate` hooks with apply_pos = −1 do    |
| "all"           | every t                   |                                                   |
| (3, 5, ...)     | those t                   |                                                   |

How the prompt length is known [ours]: the context watches the tokens of every forward pass
(a forward pre-hook on the model). A forward whose tokens extend the previous forward's
tokens (same batch, same prefix, more tokens; or a forward with a non-empty KV cache, as in
`HookedTransformer.generate`) is a generation step of the same prompt; any other forward
starts a new prompt whose length is its token count. This is exactly right for
`interp.generation.greedy` (which re-runs the whole sequence each step, one length group
after another) and for `model.generate` on equal-length prompts. Pass `prompt_length=` to
`steer` to fix P instead (e.g. to treat the tail of a prose text as "generated").

Hooks are added to the hook points directly and removed by handle when the context exits,
even on exceptions; hooks that other code added stay untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import pandas as pd
import torch

from interp.steering import readout
from interp.steering.directions import Direction, check_width

POSITIONS = ("last_prompt", "prompt", "generated", "last", "all")


class SteeringPlan(Protocol):
    """What `steer` needs from a spec (`Steering` here, `ControllerSteering` in controller.py)."""

    direction: Direction
    site: str

    def bind(self, model) -> tuple[int, ...]:
        """Validate against `model`; return the layers to patch."""

    def position_weights(self, t_T: torch.Tensor, prompt_length: int, last: int) -> torch.Tensor:
        """(T,) float multiplier of the patch at absolute positions t_T (0 where not steered)."""

    def read_hooks(self, session: _Session) -> list[tuple[str, object]]:
        """Extra read-only hooks (name, fn) to add before the patch hooks."""

    def begin_forward(self, session: _Session, tokens_BT: torch.Tensor, new_prompt: bool) -> None:
        """Called before every forward pass the context sees."""

    def row_coefficients(self, layer: int, act_BTD: torch.Tensor, session: _Session) -> torch.Tensor:
        """(B,) coefficient of the patch at `layer` for each batch row of this forward pass."""


@dataclass(frozen=True, eq=False)
class Steering:
    """Add coefficient_l · w(t) · d̂ to the residual stream at `site` of each layer in `layers`.

    `coefficients`: one number for every layer, or one per layer (same order as `layers`).
    `positions`: one of POSITIONS or a sequence of absolute positions (see the module doc).
    `decay`: a schedule over the reply: the patch at position t ≥ P − 1 is multiplied by
    decay^(t − P + 1) (1.0 = constant; prompt positions always get weight 1).
    """

    direction: Direction
    layers: Sequence[int]
    coefficients: float | Sequence[float] = 1.0
    positions: str | Sequence[int] = "all"
    site: str = "resid_post"
    decay: float = 1.0

    def __post_init__(self):
        if not isinstance(self.direction, Direction):
            raise ValueError(f"direction must be an interp.steering.Direction; got {type(self.direction).__name__}")
        layers = tuple(self.layers) if not isinstance(self.layers, int) else (self.layers,)
        if not layers:
            raise ValueError("layers is empty; give at least one block index")
        object.__setattr__(self, "layers", layers)
        coefs = self.coefficients
        if isinstance(coefs, (int, float)) and not isinstance(coefs, bool):
            coefs = (float(coefs),) * len(layers)
        coefs = tuple(float(c) for c in coefs)
        if len(coefs) != len(layers):
            raise ValueError(f"coefficients has {len(coefs)} values for {len(layers)} layers {list(layers)}; "
                             "give one number, or one per layer")
        if not all(torch.isfinite(torch.tensor(coefs))):
            raise ValueError(f"coefficients={list(coefs)} must be finite")
        object.__setattr__(self, "coefficients", coefs)
        object.__setattr__(self, "positions", check_positions(self.positions))
        readout.check_site(self.site)
        if not (0.0 < self.decay <= 1.0):
            raise ValueError(f"decay={self.decay} must be in (0, 1] (1.0 = the same coefficient at every position)")

    def coefficient(self, layer: int) -> float:
        return self.coefficients[self.layers.index(layer)]

    # --- SteeringPlan ---------------------------------------------------------------------
    def bind(self, model) -> tuple[int, ...]:
        check_width(self.direction, model.cfg.d_model)
        return readout.check_layers(model, self.layers)

    def position_weights(self, t_T: torch.Tensor, prompt_length: int, last: int) -> torch.Tensor:
        return schedule_weights(self.positions, t_T, prompt_length, last, self.decay)

    def read_hooks(self, session: _Session) -> list[tuple[str, object]]:
        return []

    def begin_forward(self, session: _Session, tokens_BT: torch.Tensor, new_prompt: bool) -> None:
        pass

    def row_coefficients(self, layer: int, act_BTD: torch.Tensor, session: _Session) -> torch.Tensor:
        return act_BTD.new_full((act_BTD.shape[0],), self.coefficient(layer))


def check_positions(positions: str | Sequence[int]) -> str | tuple[int, ...]:
    """A validated `positions` value: a name from POSITIONS or a tuple of non-negative ints."""
    if isinstance(positions, str):
        if positions not in POSITIONS:
            raise ValueError(f"positions={positions!r} is not allowed; use one of {', '.join(POSITIONS)} "
                             "or a list of absolute token positions")
        return positions
    positions = tuple(positions)
    if not positions or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0 for p in positions):
        raise ValueError(f"positions={list(positions)} must be a non-empty list of token positions >= 0 "
                         f"(or one of {', '.join(POSITIONS)})")
    return positions


def schedule_weights(positions: str | tuple[int, ...], t_T: torch.Tensor, prompt_length: int, last: int,
                     decay: float = 1.0) -> torch.Tensor:
    """(T,) float32 weights at absolute positions t_T: 1 (or the decay schedule) where steered, else 0."""
    P = prompt_length
    if positions == "last_prompt":
        mask = t_T == P - 1
    elif positions == "prompt":
        mask = t_T < P
    elif positions == "generated":
        mask = t_T >= P - 1
    elif positions == "last":
        mask = t_T == last
    elif positions == "all":
        mask = torch.ones_like(t_T, dtype=torch.bool)
    else:
        mask = torch.isin(t_T, torch.tensor(positions, device=t_T.device))
    w = mask.float()
    if decay != 1.0:
        w = w * decay ** (t_T - (P - 1)).clamp_min(0).float()
    return w


@dataclass
class _Record:
    forward: int
    layer: int
    hook: str
    prompt_length: int
    positions_K: torch.Tensor
    coefficient_B: torch.Tensor
    norm_BK: torch.Tensor


class SteeringTrace:
    """Where a `steer` context patched the model: filled while the context is open."""

    def __init__(self):
        self.records: list[_Record] = []
        self.n_forwards = 0
        self.prompt_lengths: list[int] = []
        """Prompt length P of every forward pass seen, in order."""

    def to_frame(self) -> pd.DataFrame:
        """One row per (forward pass, layer, patched position).

        Columns: forward (index of the forward pass in the context), layer, hook,
        prompt_length, position (absolute t), role ("prompt" t < P − 1, "last_prompt"
        t = P − 1, "generated" t ≥ P), n_rows (batch rows), coefficient_mean (mean over rows
        of the layer coefficient, before the position weight), delta_norm_mean and
        delta_norm_max (‖patch‖₂ over rows, in residual-stream units).
        """
        rows = []
        for r in self.records:
            for k, t in enumerate(r.positions_K.tolist()):
                role = "prompt" if t < r.prompt_length - 1 else ("last_prompt" if t == r.prompt_length - 1
                                                                  else "generated")
                norms = r.norm_BK[:, k]
                rows.append((r.forward, r.layer, r.hook, r.prompt_length, t, role, norms.numel(),
                             r.coefficient_B.mean().item(), norms.mean().item(), norms.max().item()))
        return pd.DataFrame(rows, columns=["forward", "layer", "hook", "prompt_length", "position", "role",
                                           "n_rows", "coefficient_mean", "delta_norm_mean", "delta_norm_max"])


class _Session:
    """The state of one `steer` context: prompt tracking, the hooks, the trace."""

    def __init__(self, model, plan: SteeringPlan, prompt_length: int | None, record: bool):
        self.model = model
        self.plan = plan
        self.fixed_prompt_length = prompt_length
        self.record = record
        self.trace = SteeringTrace()
        self.inner = False  # True while a plan runs a clean (unsteered) forward pass of its own
        self.prev_tokens: torch.Tensor | None = None
        self.prompt_length = 0
        self.weights_T: torch.Tensor | None = None
        self.direction_D = plan.direction.vector

    # --- the forward pre-hook: which positions does this forward pass hold? -----------------
    def pre_hook(self, module, args, kwargs):
        if self.inner:
            return None
        tokens = args[0] if args else kwargs.get("input")
        if isinstance(tokens, (str, list)):
            tokens = self.model.to_tokens(tokens)
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.is_floating_point():
            raise ValueError("steer: the model was called with input that is not a (batch, pos) token tensor; "
                             "steering needs token ids to know the prompt length")
        cache = kwargs.get("past_kv_cache")
        offset = self.model.get_pos_offset(cache, tokens.shape[0]) if cache is not None else 0
        prev = self.prev_tokens
        if offset > 0 and prev is not None and prev.shape == (tokens.shape[0], offset):
            new_prompt, full = False, torch.cat([prev, tokens], dim=1)
        elif (offset == 0 and prev is not None and prev.shape[0] == tokens.shape[0]
              and tokens.shape[1] > prev.shape[1] and torch.equal(tokens[:, :prev.shape[1]], prev)):
            new_prompt, full = False, tokens
        else:
            new_prompt, full = True, tokens if offset == 0 else None
        if full is None:
            raise ValueError("steer: a forward pass continued a KV cache that started outside the steer context")
        if self.fixed_prompt_length is not None:
            self.prompt_length = self.fixed_prompt_length
        elif new_prompt:
            self.prompt_length = full.shape[1]
        self.prev_tokens = full
        t_T = torch.arange(offset, offset + tokens.shape[1], device=tokens.device)
        self.weights_T = self.plan.position_weights(t_T, self.prompt_length, full.shape[1] - 1)
        self.positions_T = t_T
        self.forward_index = self.trace.n_forwards
        self.trace.n_forwards += 1
        self.trace.prompt_lengths.append(self.prompt_length)
        self.plan.begin_forward(self, full, new_prompt)
        return None

    def clean_run(self, tokens_BT: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
        """Activations at `names` of an unsteered forward pass (for controllers' read-outs)."""
        self.inner = True
        try:
            with torch.no_grad():
                _, cache = self.model.run_with_cache(tokens_BT, names_filter=names)
        finally:
            self.inner = False
        return {n: cache[n] for n in names}

    # --- the patch hook ---------------------------------------------------------------------
    def patch_hook(self, layer: int):
        def hook(act_BTD: torch.Tensor, hook):
            if self.inner or self.weights_T is None or not bool(self.weights_T.any()):
                return None
            coef_B = self.plan.row_coefficients(layer, act_BTD, self).to(act_BTD.dtype)
            w_T = self.weights_T.to(act_BTD.device, act_BTD.dtype)
            d_D = self.direction_D.to(act_BTD.device, act_BTD.dtype)
            delta_BTD = coef_B[:, None, None] * w_T[None, :, None] * d_D[None, None, :]
            if self.record:
                idx_K = w_T.nonzero()[:, 0]
                self.trace.records.append(_Record(
                    self.forward_index, layer, hook.name, self.prompt_length, self.positions_T[idx_K].cpu(),
                    coef_B.detach().float().cpu(), delta_BTD[:, idx_K].detach().float().norm(dim=-1).cpu()))
            return act_BTD + delta_BTD
        return hook


@contextmanager
def steer(model, spec: SteeringPlan, prompt_length: int | None = None, record: bool = True):
    """Steer `model` inside the context; yields the `SteeringTrace` that records every patch.

    `spec`: a `Steering` (fixed direction and coefficients) or an
    `interp.steering.ControllerSteering`. `prompt_length`: fix the prompt length P instead of
    inferring it from the token stream (see the module doc). `record=False` keeps no trace
    (for long evaluations). The hooks are removed on exit, also when the body raises.
    """
    layers = spec.bind(model)
    if prompt_length is not None and (isinstance(prompt_length, bool) or not isinstance(prompt_length, int)
                                      or prompt_length < 1):
        raise ValueError(f"prompt_length={prompt_length!r} must be a positive int (or None to infer it)")
    session = _Session(model, spec, prompt_length, record)
    added: list[tuple[object, object]] = []  # (hook point, LensHandle)
    pre_handle = model.register_forward_pre_hook(session.pre_hook, with_kwargs=True)
    try:
        hooks = list(spec.read_hooks(session))
        hooks += [(readout.hook_name(layer, spec.site), session.patch_hook(layer)) for layer in layers]
        for name, fn in hooks:
            point = model.hook_dict[name]
            point.add_hook(fn, dir="fwd")
            added.append((point, point.fwd_hooks[-1]))
        yield session.trace
    finally:
        pre_handle.remove()
        for point, handle in added:
            handle.hook.remove()
            if handle in point.fwd_hooks:
                point.fwd_hooks.remove(handle)
