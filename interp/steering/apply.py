"""Apply steering with TransformerLens hooks: the `Steering` spec, the `steer` context
manager, and the `SteeringTrace` it records.

    spec = Steering(direction=d, layers=[2], coefficients=4.0, positions="generated")
    with steer(model, spec) as trace:
        replies = interp.generation.greedy(model, prompts, max_new_tokens=8)
    trace.to_frame()   # one row per (forward pass, layer, patched position)

Positions are absolute token positions t (BOS = 0) relative to the prompt length P:

| positions     | patched t                  | note                                            |
|---------------|----------------------------|-------------------------------------------------|
| "last_prompt" | t = P − 1                  | the position that predicts the first reply token |
| "prompt"      | t < P                      |                                                 |
| "generated"   | t ≥ P − 1                  | every position predicting a reply token (the 1st too) |
| "last"        | the last t of each forward | what HF `generate` hooks with apply_pos = −1 do  |
| "all"         | every t                    |                                                 |
| (3, 5, ...)   | those t                    |                                                 |

How the prompt length is known [ours]: the context sees the input of every forward pass
(it wraps the model's `forward`). A forward whose input (tokens, or embeddings as
`HookedTransformer.generate` passes them) extends the previous forward's input (same batch,
same prefix, more positions), or that continues a KV cache, is a generation step of the same
prompt; any other forward starts a new prompt whose length is its number of positions. This is exactly right for
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

    def begin_forward(self, session: _Session, seq: torch.Tensor | None, new_prompt: bool) -> None:
        """Called before every forward pass the context sees, with its whole input so far
        ((B, T) tokens or (B, T, D) embeddings; None for a KV-cache continuation)."""

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

    def begin_forward(self, session: _Session, seq: torch.Tensor | None, new_prompt: bool) -> None:
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
        self.prev_seq: torch.Tensor | None = None  # input of the last forward without a KV cache
        self.prev_length = 0  # positions covered so far (with a KV cache: offset + new positions)
        self.prompt_length = 0
        self.weights_T: torch.Tensor | None = None
        self.direction_D = plan.direction.vector

    # --- before every forward pass: which positions does it hold? ---------------------------
    def before_forward(self, args, kwargs) -> None:
        if self.inner:
            return
        seq = args[0] if args else kwargs.get("input")
        if isinstance(seq, (str, list)):
            seq = self.model.to_tokens(seq)
        if not isinstance(seq, torch.Tensor) or seq.ndim not in (2, 3):
            raise ValueError("steer: the model was called with input that is neither (batch, pos) tokens nor "
                             "(batch, pos, d_model) embeddings; steering needs to know the positions")
        B, T = seq.shape[:2]
        cache = kwargs.get("past_kv_cache")
        offset = self.model.get_pos_offset(cache, B) if cache is not None else 0
        prev = self.prev_seq
        if offset > 0:
            if prev is None or prev.shape[0] != B or self.prev_length != offset:
                raise ValueError("steer: a forward pass continued a KV cache that started outside the steer context")
            new_prompt = False
        else:
            new_prompt = not (prev is not None and prev.shape[0] == B and T > prev.shape[1]
                              and prev.shape[2:] == seq.shape[2:] and torch.equal(seq[:, :prev.shape[1]], prev))
        if self.fixed_prompt_length is not None:
            self.prompt_length = self.fixed_prompt_length
        elif new_prompt:
            self.prompt_length = T
        if offset == 0:
            self.prev_seq = seq
        self.prev_length = offset + T
        t_T = torch.arange(offset, offset + T, device=seq.device)
        self.weights_T = self.plan.position_weights(t_T, self.prompt_length, offset + T - 1)
        self.positions_T = t_T
        self.forward_index = self.trace.n_forwards
        self.trace.n_forwards += 1
        self.trace.prompt_lengths.append(self.prompt_length)
        self.plan.begin_forward(self, seq if offset == 0 else None, new_prompt)

    def clean_run(self, seq: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
        """Activations at `names` of an unsteered forward pass over `seq`: (B, T) tokens or the
        (B, T, d_model) residual stream entering block 0 (for controllers' read-outs)."""
        kwargs = {"start_at_layer": 0} if seq.is_floating_point() else {}
        self.inner = True
        try:
            with torch.no_grad():
                _, cache = self.model.run_with_cache(seq, names_filter=names, **kwargs)
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
    # Wrap the instance's `forward` (not a module pre-hook): HookedTransformer.generate calls
    # self.forward directly, with embeddings and a KV cache, bypassing module hooks.
    previous = model.__dict__.get("forward")
    wrapped = model.forward

    def forward(*args, **kwargs):
        session.before_forward(args, kwargs)
        return wrapped(*args, **kwargs)

    model.forward = forward
    try:
        hooks = list(spec.read_hooks(session))
        hooks += [(readout.hook_name(layer, spec.site), session.patch_hook(layer)) for layer in layers]
        for name, fn in hooks:
            point = model.hook_dict[name]
            point.add_hook(fn, dir="fwd")
            added.append((point, point.fwd_hooks[-1]))
        yield session.trace
    finally:
        if previous is None:
            del model.forward
        else:
            model.forward = previous
        for point, handle in added:
            handle.hook.remove()
            if handle in point.fwd_hooks:
                point.fwd_hooks.remove(handle)


def generate(model, spec: SteeringPlan, prompts: Sequence[str], max_new_tokens: int = 8,
             prompt_length: int | None = None) -> tuple[pd.DataFrame, SteeringTrace]:
    """Greedy replies to `prompts` without and with steering, side by side.

    Returns (frame with columns prompt, unsteered, steered, changed; the trace of the steered run).
    """
    from interp.generation import greedy
    from interp.steering.readout import check_prompts

    prompts = check_prompts(prompts)
    plain = greedy(model, prompts, max_new_tokens)
    with steer(model, spec, prompt_length=prompt_length) as trace:
        steered = greedy(model, prompts, max_new_tokens)
    frame = pd.DataFrame({"prompt": prompts, "unsteered": plain, "steered": steered})
    frame["changed"] = frame["unsteered"] != frame["steered"]
    return frame, trace
