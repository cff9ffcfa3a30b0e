"""Apply steering with TransformerLens hooks: steering plans (`Steering` here,
`ControllerSteering` in controller.py), the `steer` context manager, and the
`SteeringTrace` it records.

    spec = Steering(direction=d, layers=[2], coefficients=4.0, positions="generated")
    with steer(model, spec) as trace:
        replies = interp.generation.greedy(model, prompts, max_new_tokens=8)
    trace.to_frame()   # one row per (forward pass, layer, patched position)

A plan is an immutable value: it declares the layers it patches (`patch_layers`, at its
`site`), its `direction`, which positions it patches (`position_weights`), the read-outs
its coefficients need (`reads`: none for fixed steering; "clean_prompt", an unsteered pass
over the prompt at some hooks; or "current", this forward's own activations at some hooks),
and a pure function of those read-outs, `patch_coefficients(info) -> (B, L)`. Everything
that changes while the model runs (where each forward sits in its prompt, the read-outs,
the coefficients, the trace) belongs to the session of one `steer` context, so one plan can
steer nested contexts, or several models in several threads, at once.

Positions are absolute token positions t (BOS = 0) relative to the prompt length P:

| positions     | patched t                  | note                                            |
|---------------|----------------------------|-------------------------------------------------|
| "last_prompt" | t = P − 1                  | the position that predicts the first reply token |
| "prompt"      | t < P                      |                                                 |
| "generated"   | t ≥ P − 1                  | every position predicting a reply token (the 1st too) |
| "last"        | the last t of each forward | what HF `generate` hooks with apply_pos = −1 do  |
| "all"         | every t                    |                                                 |
| (3, 5, ...)   | those t                    |                                                 |

How the prompt length is known [ours]: the session sees every forward pass where it enters
block 0 (`blocks.0.hook_resid_pre`: the embedded tokens, or the embeddings that
`HookedTransformer.generate` passes with `start_at_layer=0`; generate calls `self.forward`
directly, so module pre-hooks would miss it, and this hook point does not), and reads the
KV-cache offset from block 0's attention scores (`blocks.0.attn.hook_attn_scores`: key
positions − query positions). A forward whose input extends the previous forward's input
(same batch, same prefix, more positions), or that continues a KV cache, is a generation
step of the same prompt; any other forward starts a new prompt whose length is its number
of positions. This is exactly right for `interp.generation.greedy` (which re-runs the whole
sequence each step, one length group after another) and for `model.generate` on
equal-length prompts, with or without a KV cache. Pass `prompt_length=` to `steer` to fix P
instead (e.g. to treat the tail of a prose text as "generated").

Only a patch at `blocks.0.hook_resid_pre` (site "resid_pre", layer 0) runs before block 0's
attention shows the cache: there a one-position forward of the same batch right after
another is taken for a KV-cache step. Where that guess is wrong (a one-token prompt right
after a forward of the same batch size, or a cache step of several positions) and the patch
would differ, `steer` raises instead of patching the wrong positions. In nested contexts, an inner
context sees block 0's input as an outer context's patch there (if any) left it.

A plan's "clean_prompt" pass is a forward of its own, run from block 0 on the prompt's
block-0 input; no `steer` context patches it or counts it, while hooks that other code
added (ablations, caches) see it as any forward.

The hooks are installed with TransformerLens's `model.hooks()` context manager, so they are
removed when the context exits, even on exceptions, and hooks that other code added stay
untouched. Hooks belong to the model, not to a thread: steer one model from one thread at
a time (a plan can be shared by any number of models and threads).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import pandas as pd
import torch

from interp.hooks import block_hook, named_all, resid, run_from_embeddings
from interp.steering import readout
from interp.steering.directions import Direction, check_width

POSITIONS = ("last_prompt", "prompt", "generated", "last", "all")
READ_SOURCES = ("clean_prompt", "current")
ENTRY_HOOK = resid(0, "resid_pre")
"""Where every forward pass that runs block 0 is first seen (its (B, T, d_model) input)."""
OFFSET_HOOK = block_hook(0, "attn.hook_attn_scores")
"""(B, heads, query positions, key positions): the KV-cache offset is keys − queries."""


@dataclass(frozen=True)
class ReadOuts:
    """The activations a plan's coefficients are a function of."""

    hooks: tuple[str, ...]
    """TransformerLens hook names to read."""
    source: str = "current"
    """"clean_prompt": an unsteered pass over the prompt positions t < P, once per prompt
    (once per forward without a KV cache when `steer` fixes P); "current": this forward's
    own activations (every position it holds) as they reach the hook, before the plan's
    patch there. A "current" hook must come before the plan's first patch in the forward."""

    def __post_init__(self):
        object.__setattr__(self, "hooks", tuple(self.hooks))
        if not self.hooks:
            raise ValueError("ReadOuts.hooks is empty; give at least one hook name (or no ReadOuts)")
        if self.source not in READ_SOURCES:
            raise ValueError(f"ReadOuts.source={self.source!r} is not allowed; use one of {', '.join(READ_SOURCES)}")


class ReadInfo(NamedTuple):
    """What `patch_coefficients` is given."""

    acts: dict[str, torch.Tensor]
    """Hook name -> (B, T', d) activations read (see `ReadOuts.source`); empty without reads."""
    prompt_length: int
    """P of the forward pass the coefficients are for."""
    batch_size: int
    device: torch.device


class Coefficients(NamedTuple):
    """A plan's coefficients for one forward pass (or one prompt)."""

    values: torch.Tensor
    """(B, L) coefficient of the patch for each batch row and patch layer (`patch_layers` order)."""
    output: object = None
    """What the plan computed them from (a controller's `ControllerOutput`), or None; the
    session keeps the last one as `SteeringTrace.last_output`."""


class SteeringPlan(Protocol):
    """What `steer` needs from a plan: an immutable value that declares and computes; the
    session of each `steer` context keeps all state (see the module doc)."""

    direction: Direction
    site: str
    """Residual-stream site patched: "resid_pre", "resid_mid" or "resid_post"."""
    patch_layers: tuple[int, ...]
    reads: ReadOuts | None
    """The read-outs `patch_coefficients` needs (None: none)."""

    def check(self, model) -> None:
        """Raise ValueError if the plan cannot steer `model`."""

    def position_weights(self, t_T: torch.Tensor, prompt_length: int, last: int) -> torch.Tensor:
        """(T,) float multiplier of the patch at absolute positions t_T (0 where not steered)."""

    def patch_coefficients(self, info: ReadInfo) -> Coefficients:
        """The coefficients, a pure function of the read-outs in `info`."""


@dataclass(frozen=True, eq=False)
class Steering:
    """Add coefficient_l · w(t) · d̂ to the residual stream at `site` of each layer in `layers`.

    `coefficients`: one number for every layer, or one per layer (same order as `layers`).
    `positions`: one of POSITIONS or a sequence of absolute positions (see the module doc).
    `decay`: a schedule over the reply: the patch at position t ≥ P − 1 is multiplied by
    decay^(t − P + 1) (1.0 = constant; prompt positions always get weight 1).
    A constant plan: it reads nothing.
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

    # --- SteeringPlan ---------------------------------------------------------------------
    @property
    def patch_layers(self) -> tuple[int, ...]:
        return self.layers

    @property
    def reads(self) -> None:
        return None

    def check(self, model) -> None:
        check_width(self.direction, model.cfg.d_model)
        readout.check_layers(model, self.layers)

    def position_weights(self, t_T: torch.Tensor, prompt_length: int, last: int) -> torch.Tensor:
        return schedule_weights(self.positions, t_T, prompt_length, last, self.decay)

    def patch_coefficients(self, info: ReadInfo) -> Coefficients:
        return Coefficients(torch.tensor(self.coefficients, device=info.device).expand(info.batch_size, -1))


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
        self.last_output = None
        """The plan's `Coefficients.output` last computed (a controller's `ControllerOutput`
        for the batch: once per prompt in paper mode, every forward in reference mode)."""

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


# Models running a plan's clean pass on this thread: every session leaves those forwards alone.
_clean = threading.local()


def _in_clean_pass(model) -> bool:
    return id(model) in getattr(_clean, "models", ())


@dataclass
class _Forward:
    """One forward pass as its session sees it."""

    index: int
    input_BTD: torch.Tensor
    before: tuple  # the session's (prev_input, covered, prompt_length, prompt_coefs) before this forward
    offset: int = 0
    positions_T: torch.Tensor | None = None
    weights_T: torch.Tensor | None = None
    resolved: bool = False  # block 0's attention has shown the KV-cache offset
    early_patch: bool = False  # a patch ran before that (at ENTRY_HOOK)
    patched: set[int] = field(default_factory=set)  # patch layers (indices) seen in this forward


class _Session:
    """The state of one `steer` context: where each forward sits in its prompt, the read-outs
    and coefficients, the trace. Its methods are the hooks it installs."""

    def __init__(self, model, plan: SteeringPlan, prompt_length: int | None, record: bool):
        self.model = model
        self.plan = plan
        self.layers = tuple(plan.patch_layers)
        self.reads = plan.reads
        self.direction_D = plan.direction.vector
        self.fixed_prompt_length = prompt_length
        self.record = record
        self.trace = SteeringTrace()
        self.prev_input: torch.Tensor | None = None  # block-0 input of the last forward without a KV cache
        self.covered = 0  # positions covered so far (with a KV cache: offset + new positions)
        self.prompt_length = 0
        self.prompt_coefs: Coefficients | None = None  # from the current prompt's clean pass
        self.fwd: _Forward | None = None
        self.captured: dict[str, torch.Tensor] = {}  # "current" read-outs of this forward
        self.coefs: Coefficients | None = None  # this forward's, computed at its first patch

    def hooks(self) -> list[tuple[str, Callable]]:
        hooks = [(ENTRY_HOOK, self.enter), (OFFSET_HOOK, self.resolve_offset)]
        if self.reads is not None and self.reads.source == "current":
            hooks += [(name, self.capture) for name in self.reads.hooks]
        hooks += [(resid(layer, self.plan.site), self.patch_hook(j)) for j, layer in enumerate(self.layers)]
        return hooks

    # --- where does this forward sit? -------------------------------------------------------
    def enter(self, x_BTD: torch.Tensor, hook):
        if _in_clean_pass(self.model):
            return None
        B, T = x_BTD.shape[:2]
        prev = self.prev_input
        extends = (prev is not None and prev.shape[0] == B and T > prev.shape[1]
                   and torch.equal(x_BTD[:, :prev.shape[1]], prev))
        # a KV-cache step looks like a short input here; block 0's attention tells (resolve_offset)
        cache_step = not extends and prev is not None and prev.shape[0] == B and T == 1
        self.fwd = _Forward(self.trace.n_forwards, x_BTD.detach(),
                            (self.prev_input, self.covered, self.prompt_length, self.prompt_coefs))
        self.trace.n_forwards += 1
        self.trace.prompt_lengths.append(0)
        self.captured = {}
        self._place(self.covered if cache_step else 0, new_prompt=not (extends or cache_step))
        if self.reads is not None and self.reads.source == "clean_prompt" and self.fwd.offset == 0:
            self._prompt_coefficients()  # now, before block 0's hooks see this forward
        return None

    def resolve_offset(self, scores_BHQK: torch.Tensor, hook):
        fwd = self.fwd
        if _in_clean_pass(self.model) or fwd is None or fwd.resolved:
            return None
        fwd.resolved = True
        offset = scores_BHQK.shape[-1] - scores_BHQK.shape[-2]
        prev, covered = fwd.before[:2]
        if offset > 0 and (prev is None or prev.shape[0] != fwd.input_BTD.shape[0] or covered != offset):
            raise ValueError("steer: a forward pass continued a KV cache that started outside the steer context")
        if offset == fwd.offset:
            return None
        weights_T, guessed = fwd.weights_T, fwd.offset
        self._place(offset, new_prompt=offset == 0)
        if fwd.early_patch and (self.reads is not None or not torch.equal(weights_T, fwd.weights_T)):
            raise ValueError(
                f"steer: the patch at {ENTRY_HOOK} runs before block 0's attention shows the KV cache; it took "
                f"forward {fwd.index} for {'a KV-cache step' if offset == 0 else 'a new prompt'} and "
                "would have patched other positions. Steer site resid_pre at layers >= 1, or resid_mid / "
                "resid_post, or pass the prompt and the cache steps in separate steer contexts")
        for r in self.trace.records:  # the early patch hit the right positions under the wrong offset
            if r.forward == fwd.index:
                r.positions_K = r.positions_K + (offset - guessed)
                r.prompt_length = self.prompt_length
        return None

    def _place(self, offset: int, new_prompt: bool) -> None:
        """Position this forward `offset` positions into its prompt (the state before it restored first)."""
        fwd = self.fwd
        self.prev_input, self.covered, self.prompt_length, self.prompt_coefs = fwd.before
        T = fwd.input_BTD.shape[1]
        if self.fixed_prompt_length is not None:
            self.prompt_length = self.fixed_prompt_length
        elif new_prompt:
            self.prompt_length = T
        if new_prompt or (self.fixed_prompt_length is not None and offset == 0):
            self.prompt_coefs = None  # the clean pass reads this forward's prompt
        if offset == 0:
            self.prev_input = fwd.input_BTD
        self.covered = offset + T
        fwd.offset = offset
        fwd.positions_T = torch.arange(offset, offset + T, device=fwd.input_BTD.device)
        fwd.weights_T = self.plan.position_weights(fwd.positions_T, self.prompt_length, offset + T - 1)
        self.trace.prompt_lengths[fwd.index] = self.prompt_length
        self.coefs = None

    # --- read-outs and coefficients -----------------------------------------------------------
    def capture(self, act: torch.Tensor, hook):
        if not _in_clean_pass(self.model) and self.fwd is not None:
            self.captured[hook.name] = act.detach()
        return None

    def _prompt_coefficients(self) -> Coefficients:
        if self.prompt_coefs is None:
            x_BTD = self.fwd.input_BTD[:, :min(self.prompt_length, self.fwd.input_BTD.shape[1])]
            models = getattr(_clean, "models", set())
            _clean.models = models | {id(self.model)}
            try:
                with torch.no_grad():
                    _, cache = run_from_embeddings(self.model, x_BTD, list(self.reads.hooks))
            finally:
                _clean.models = models
            self.prompt_coefs = self._evaluate({n: cache[n] for n in self.reads.hooks})
        return self.prompt_coefs

    def _coefficients(self) -> Coefficients:
        if self.coefs is None:
            if self.reads is None:
                self.coefs = self._evaluate({})
            elif self.reads.source == "clean_prompt":
                self.coefs = self._prompt_coefficients()
            else:
                missing = [n for n in self.reads.hooks if n not in self.captured]
                if missing:
                    raise ValueError(f"steer: the plan reads {missing}, which this forward reaches after the plan's "
                                     f"first patch (or not at all); read hooks must come before the patch")
                self.coefs = self._evaluate(self.captured)
            if self.coefs.output is not None:
                self.trace.last_output = self.coefs.output
        return self.coefs

    def _evaluate(self, acts: dict[str, torch.Tensor]) -> Coefficients:
        B = self.fwd.input_BTD.shape[0]
        out = self.plan.patch_coefficients(ReadInfo(acts, self.prompt_length, B, self.fwd.input_BTD.device))
        if tuple(out.values.shape) != (B, len(self.layers)):
            raise ValueError(f"{type(self.plan).__name__}.patch_coefficients gave shape {tuple(out.values.shape)}; "
                             f"expected (batch, patch layers) = {(B, len(self.layers))}")
        return out

    # --- the patch hook ---------------------------------------------------------------------
    def patch_hook(self, j: int):
        layer = self.layers[j]

        def hook(act_BTD: torch.Tensor, hook):
            fwd = self.fwd
            if _in_clean_pass(self.model) or fwd is None:
                return None
            if j in fwd.patched or act_BTD.shape[:2] != fwd.input_BTD.shape[:2]:
                raise ValueError("steer: a forward pass did not enter block 0 (start_at_layer > 0?); steering "
                                 "needs to see every forward at " + ENTRY_HOOK)
            fwd.patched.add(j)
            fwd.early_patch |= not fwd.resolved  # also when it patches nothing: that too was a guess
            if not bool(fwd.weights_T.any()):
                return None
            coef_B = self._coefficients().values[:, j].to(act_BTD.device, act_BTD.dtype)
            w_T = fwd.weights_T.to(act_BTD.device, act_BTD.dtype)
            d_D = self.direction_D.to(act_BTD.device, act_BTD.dtype)
            delta_BTD = coef_B[:, None, None] * w_T[None, :, None] * d_D[None, None, :]
            if self.record:
                idx_K = w_T.nonzero()[:, 0]
                self.trace.records.append(_Record(
                    fwd.index, layer, hook.name, self.prompt_length, fwd.positions_T[idx_K].cpu(),
                    coef_B.detach().float().cpu(), delta_BTD[:, idx_K].detach().float().norm(dim=-1).cpu()))
            return act_BTD + delta_BTD
        return hook


@contextmanager
def steer(model, spec: SteeringPlan, prompt_length: int | None = None, record: bool = True):
    """Steer `model` inside the context; yields the `SteeringTrace` that records every patch.

    `spec`: a steering plan: a `Steering` (fixed direction and coefficients) or an
    `interp.steering.ControllerSteering`. `prompt_length`: fix the prompt length P instead of
    inferring it from the forward passes (see the module doc). `record=False` keeps no patch
    records (for long evaluations). The hooks are removed on exit, also when the body raises.
    """
    spec.check(model)
    if prompt_length is not None and (isinstance(prompt_length, bool) or not isinstance(prompt_length, int)
                                      or prompt_length < 1):
        raise ValueError(f"prompt_length={prompt_length!r} must be a positive int (or None to infer it)")
    session = _Session(model, spec, prompt_length, record)
    hooks = session.hooks()
    missing = [name for name, _ in hooks if name not in model.hook_dict]
    if missing:
        raise ValueError(f"steer: the model has no hook point {missing[0]!r}; steering needs a HookedTransformer's "
                         f"{ENTRY_HOOK} and {OFFSET_HOOK}")
    with model.hooks(fwd_hooks=named_all(hooks)):
        yield session.trace


def generate_steered(model, spec: SteeringPlan, prompts: Sequence[str], max_new_tokens: int = 8,
                     prompt_length: int | None = None) -> tuple[list[str], SteeringTrace]:
    """Greedy replies to `prompts` (`interp.generation.greedy`) under steering with `spec`,
    in prompt order, and the trace of that run."""
    from interp.generation import greedy

    prompts = readout.check_prompts(prompts)
    with steer(model, spec, prompt_length=prompt_length) as trace:
        replies = greedy(model, prompts, max_new_tokens)
    return replies, trace


def generate(model, spec: SteeringPlan, prompts: Sequence[str], max_new_tokens: int = 8,
             prompt_length: int | None = None) -> tuple[pd.DataFrame, SteeringTrace]:
    """Greedy replies to `prompts` without and with steering, side by side.

    Returns (frame with columns prompt, unsteered, steered, changed; the trace of the steered run).
    """
    from interp.generation import greedy

    prompts = readout.check_prompts(prompts)
    plain = greedy(model, prompts, max_new_tokens)
    steered, trace = generate_steered(model, spec, prompts, max_new_tokens, prompt_length)
    frame = pd.DataFrame({"prompt": prompts, "unsteered": plain, "steered": steered})
    frame["changed"] = frame["unsteered"] != frame["steered"]
    return frame, trace
