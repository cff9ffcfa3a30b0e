"""Weighted activation steering controllers ("Guiding Giants", Hegazy et al., arXiv 2505.20309).

A small MLP reads the residual stream at the last prompt position of the read layers
(default: the last 4), concatenated (n_read · d_model), and outputs a global scale s
(raw, no sigmoid) and one logit u_l per layer [paper]:

    Linear(n_read·d → hidden) → ReLU → Linear(hidden → 1 + n_layers)
    patch at layer l:  h_l[t] ← h_l[t] + s · σ(u_l) · α · d̂      (s capped: `scale_cap` [ours])

Read positions (`ControllerConfig.read_position`): "last" prompt token [paper]; "mean" of
the prompt tokens after BOS [ours]; "max" [ours]: the MLP scores every prompt token after
BOS and the token with the largest s gives (s, u), in training as in use. A jailbreak
wrapper leaves the wrapped request's own tokens in place, and "max" finds them there: on
the zoo only "max" carries harmfulness through held-out wrappers (`results/steering.md`).

`ControllerSteering` is the steering plan that applies it with `interp.steering.steer`: an
immutable value whose coefficients are `SteeringController.coefficients` of the controller's
output on the read-outs it declares (`reads`); the `steer` session runs those read-outs and
keeps the output of the last forward as `SteeringTrace.last_output`. Two modes:
* "paper": a clean (unsteered) pass over the prompt gives s and u once per prompt; then
  every layer is patched at every position that predicts a reply token (positions
  "generated": t ≥ P − 1), so the first generated token is steered.
* "reference": what the public code does: in every forward pass the controller reads the
  current last position, and only the residual stream right after the last read layer
  (`blocks.{max(read_layers)}.hook_resid_post`) is patched, at that last position. With
  read_position "mean" it averages the positions of the current forward pass, so use it with
  full-sequence generation (`interp.generation.greedy`), not with a KV cache.

Layer l's residual stream is `blocks.{l}.hook_resid_post` (a decoder layer's output, as the
paper's hidden states). α is a config field: the paper's 4.0 is for models whose residual
stream is far larger than the zoo's; `results/steering.md` reports the α measured on the zoo.
On disk: `controller.safetensors` (MLP weights and d̂) + `controller.json` (config, direction
metadata, training summary).
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from torch import nn

from interp.artifacts import read_artifact, write_artifact
from interp.config import check_fields, check_positive, from_dict, to_dict
from interp.hooks import resid
from interp.steering import readout
from interp.steering.apply import Coefficients, ReadInfo, ReadOuts, schedule_weights
from interp.steering.directions import Direction, check_width

Mode = Literal["paper", "reference"]
ReadPosition = Literal["last", "mean", "max"]
MODES = typing.get_args(Mode)
READ_POSITIONS = typing.get_args(ReadPosition)
WEIGHTS_FILE = "controller.safetensors"
CONFIG_FILE = "controller.json"
SITE = "resid_post"


@dataclass(frozen=True)
class ControllerConfig:
    """Shape and use of a controller; validated on construction."""

    d_model: int
    """Width of the residual stream read and patched."""
    n_layers: int
    """Layers of the model: one weight logit u_l each."""
    read_layers: tuple[int, ...] = ()
    """Layers whose residual stream (last prompt position) is the input; () = the last 4."""
    hidden: int = 1024
    """Width of the MLP's hidden layer [paper: 1024]."""
    alpha: float = 4.0
    """Patch scale α [paper: 4.0]; the patch is s · σ(u_l) · α · d̂."""
    scale_cap: float | None = None
    """[ours] Use min(s, scale_cap) in the patch (None: raw s [paper]). Every prompt scored
    above the cap gets the same push, so α can be set for the weakest flagged prompts
    without over-steering the prompts the controller is most sure of."""
    mode: Mode = "paper"
    """"paper" or "reference" (see the module doc); `ControllerSteering` can override it."""
    read_position: ReadPosition = "last"
    """Where the read layers are read: "last" prompt token [paper], "mean" over the prompt
    tokens after BOS, or "max": the prompt token whose s is largest [ours, see the module doc]."""
    seed: int = 0
    """Seed of the weight initialisation."""

    def __post_init__(self):
        check_fields(self)
        check_positive(self, "d_model", "n_layers", "hidden")
        read = self.read_layers or tuple(range(max(0, self.n_layers - 4), self.n_layers))
        for layer in read:
            if not 0 <= layer < self.n_layers:
                raise ValueError(f"read_layers contains {layer!r}: a layer index must be an int "
                                 f"in [0, {self.n_layers})")
        if len(set(read)) != len(read):
            raise ValueError(f"read_layers={list(read)} repeats a layer")
        object.__setattr__(self, "read_layers", tuple(sorted(read)))
        if not (self.alpha > 0 and float(self.alpha) != float("inf")):
            raise ValueError(f"alpha={self.alpha} must be a positive finite number")
        if self.scale_cap is not None and not (self.scale_cap > 0 and float(self.scale_cap) != float("inf")):
            raise ValueError(f"scale_cap={self.scale_cap} must be None or a positive finite number")

    @classmethod
    def for_zoo(cls, d_model: int, n_layers: int, **fields) -> ControllerConfig:
        """The zoo's controller: `ZOO_SETTINGS` over the paper's defaults, then `fields`.
        What `interp steer train` and `train_refusal_controller` use by default."""
        return cls(d_model, n_layers, **{**ZOO_SETTINGS, **fields})

    @property
    def input_dim(self) -> int:
        return len(self.read_layers) * self.d_model


ZOO_SETTINGS = {"alpha": 2.0, "read_position": "max", "scale_cap": 4.0}
"""Where the zoo's controller differs from the paper's: the zoo's residual stream is small
(α 2, not 4), only the "max" read-out carries harmfulness through held-out jailbreak
wrappers, and a cap on s keeps the most confident prompts from being over-steered
(`results/steering.md` measures each choice)."""


class ControllerOutput(NamedTuple):
    scale: torch.Tensor
    """(B,) global scale s (raw: no sigmoid)."""
    layer_logits: torch.Tensor
    """(B, n_layers) per-layer logits u_l; the layer weight is σ(u_l)."""


class SteeringController(nn.Module):
    """The controller MLP and the direction d̂ it steers along."""

    def __init__(self, cfg: ControllerConfig, direction: Direction):
        super().__init__()
        check_width(direction, cfg.d_model)
        self.cfg = cfg
        self.direction = direction
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(cfg.seed)
        self.fc1 = nn.Linear(cfg.input_dim, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, 1 + cfg.n_layers)
        torch.random.set_rng_state(gen_state)
        self.summary: dict = {}
        """Training summary (epochs, best epoch, losses), saved with the weights."""

    def forward(self, x: torch.Tensor) -> ControllerOutput:
        """x: (B, n_read · d_model) concatenated read-outs, layers in `cfg.read_layers` order, or
        (B, T, n_read · d_model) for T positions each, of which the one with the largest s is used."""
        if x.ndim not in (2, 3) or x.shape[-1] != self.cfg.input_dim:
            raise ValueError(f"controller input must be (batch, {self.cfg.input_dim}) or (batch, positions, "
                             f"{self.cfg.input_dim}), {self.cfg.input_dim} = n_read · d_model; got {tuple(x.shape)}")
        out = self.fc2(torch.relu(self.fc1(x.to(self.fc1.weight.dtype))))  # (B, [T,] 1 + n_layers)
        if out.ndim == 3:
            best_B = out[:, :, 0].argmax(dim=1)
            out = out[torch.arange(len(out), device=out.device), best_B]
        return ControllerOutput(out[:, 0], out[:, 1:])

    def coefficients(self, out: ControllerOutput, alpha: float | None = None) -> torch.Tensor:
        """(B, n_layers) patch coefficients s · σ(u_l) · α (the patch is this times d̂), with s
        capped at `cfg.scale_cap` when set; `alpha` overrides `cfg.alpha`."""
        s = out.scale if self.cfg.scale_cap is None else out.scale.clamp(max=self.cfg.scale_cap)
        return s[:, None] * torch.sigmoid(out.layer_logits) * (self.cfg.alpha if alpha is None else alpha)

    def inputs(self, model, prompts: Sequence[str]) -> torch.Tensor:
        """Read-outs of `prompts` at `cfg.read_position` (one cached pass): (N, n_read · d_model),
        or for "max" (N, T, n_read · d_model), every token after BOS (see `readout.residuals`)."""
        self.check_model(model)
        if self.cfg.read_position == "max":
            return readout.residuals(model, prompts, self.cfg.read_layers, "all", SITE).flatten(2)
        return readout.residuals(model, prompts, self.cfg.read_layers, self.cfg.read_position, SITE).flatten(1)

    @torch.no_grad()
    def scores(self, model, prompts: Sequence[str]) -> torch.Tensor:
        """(N,) global scale s of each prompt: the controller's harmfulness score."""
        return self(self.inputs(model, prompts)).scale

    def check_model(self, model) -> None:
        if model.cfg.d_model != self.cfg.d_model or model.cfg.n_layers != self.cfg.n_layers:
            raise ValueError(f"the controller was built for d_model={self.cfg.d_model}, n_layers={self.cfg.n_layers}; "
                             f"the model has d_model={model.cfg.d_model}, n_layers={model.cfg.n_layers}")

    # --- disk -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write `path`/controller.safetensors + `path`/controller.json (atomic)."""
        tensors = {k: v.detach().float().contiguous().cpu() for k, v in self.state_dict().items()}
        tensors["direction"] = self.direction.vector.contiguous()
        d = self.direction
        meta = {"config": to_dict(self.cfg),
                "direction": {"method": d.method, "name": d.name, "layer": d.layer, "site": d.site,
                              "provenance": d.provenance},
                "summary": self.summary}
        return write_artifact(path, WEIGHTS_FILE, tensors, CONFIG_FILE, meta)

    @classmethod
    def load(cls, path: str | Path) -> SteeringController:
        """Read a controller written by `save`."""
        path = Path(path)
        tensors, meta = read_artifact(path, WEIGHTS_FILE, CONFIG_FILE, "a controller directory")
        try:
            cfg = from_dict(ControllerConfig, meta["config"], str(path / CONFIG_FILE))
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path / CONFIG_FILE}: not a controller config ({e!r})") from e
        dmeta = meta.get("direction", {})
        direction = Direction(tensors.pop("direction"), dmeta.get("method", "unknown"), dmeta.get("name", ""),
                              dmeta.get("layer"), dmeta.get("site"), dmeta.get("provenance", {}))
        controller = cls(cfg, direction)
        try:
            controller.load_state_dict(tensors, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{path / WEIGHTS_FILE} does not match {path / CONFIG_FILE}: {e}") from e
        controller.summary = meta.get("summary", {})
        return controller.eval()


@dataclass(frozen=True)
class ControllerSteering:
    """Steer with a trained controller: a steering plan for `interp.steering.steer`.

    `mode`/`alpha`: override the controller's config (None = keep it). An immutable value:
    the `steer` session keeps every per-forward state, and the controller's output for the
    batch of the last forward is `SteeringTrace.last_output`.
    """

    controller: SteeringController
    mode: str | None = None
    alpha: float | None = None

    def __post_init__(self):
        if not isinstance(self.controller, SteeringController):
            raise ValueError(f"controller must be a SteeringController; got {type(self.controller).__name__}")
        mode = self.controller.cfg.mode if self.mode is None else self.mode
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not a controller mode; allowed: {', '.join(MODES)}")
        alpha = self.controller.cfg.alpha if self.alpha is None else float(self.alpha)
        if not alpha > 0:
            raise ValueError(f"alpha={alpha} must be positive")
        object.__setattr__(self, "mode", mode)
        object.__setattr__(self, "alpha", alpha)

    # --- SteeringPlan ---------------------------------------------------------------------
    @property
    def direction(self) -> Direction:
        return self.controller.direction

    @property
    def site(self) -> str:
        return SITE

    @property
    def patch_layers(self) -> tuple[int, ...]:
        cfg = self.controller.cfg
        return tuple(range(cfg.n_layers)) if self.mode == "paper" else (max(cfg.read_layers),)

    @property
    def reads(self) -> ReadOuts:
        """Paper mode: a clean pass over the prompt; reference mode: the current forward."""
        return ReadOuts(tuple(resid(layer, SITE) for layer in self.controller.cfg.read_layers),
                        "clean_prompt" if self.mode == "paper" else "current")

    def check(self, model) -> None:
        self.controller.check_model(model)
        check_width(self.direction, model.cfg.d_model)

    def position_weights(self, t_T: torch.Tensor, prompt_length: int, last: int) -> torch.Tensor:
        return schedule_weights("generated" if self.mode == "paper" else "last", t_T, prompt_length, last)

    def patch_coefficients(self, info: ReadInfo) -> Coefficients:
        """s · σ(u_l) · α at the patch layers, from the read layers' activations in `info`
        (each read at `read_position` over all the positions it holds), and the output (s, u)."""
        read_position = self.controller.cfg.read_position
        x_BI = torch.cat([read_at(act, act.shape[1], read_position)
                          for act in (info.acts[name] for name in self.reads.hooks)], dim=-1)
        with torch.no_grad():
            out = self.controller(x_BI.float().to(self.controller.fc1.weight.device))
        coef_BL = self.controller.coefficients(out, self.alpha)[:, list(self.patch_layers)]
        return Coefficients(coef_BL.to(info.device), out)


def read_at(act_BTD: torch.Tensor, length: int, read_position: str) -> torch.Tensor:
    """Read-out of the first `length` positions: (B, D) the last one or the mean after BOS,
    or (B, T', D) every position after BOS for "max"."""
    if read_position == "max":
        return act_BTD[:, 1:length, :].detach() if length > 1 else act_BTD[:, :1, :].detach()
    if read_position == "last" or length < 2:
        return act_BTD[:, length - 1, :].detach()
    return act_BTD[:, 1:length, :].mean(dim=1).detach()
