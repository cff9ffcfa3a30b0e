"""Train a steering controller on harmful vs benign prompts [paper: "Guiding Giants" §3].

Inputs are the residual stream of the read layers at the controller's read position (with
"max", every prompt token: the loss then sees the token with the largest s), computed with
one cached forward pass over the training prompts and kept in memory (the prompt sets are a
few hundred chat prompts; no activation store is needed).

Loss per batch [paper code]: BCE-with-logits on the raw scale s (harmful = 1, benign = 0);
on harmful batches plus 0.1 · (mean|σ(u) − 0.5| + 0.01 · mean σ(u)). AdamW, lr 5e-5,
batch 8, 10 epochs, gradient clipping at 1.0; the epoch with the lowest mean loss is kept.
[ours] Harmful and benign batches alternate within an epoch (the reference code runs all
harmful batches, then all benign ones).

Train on *plain* harmful requests only (`interp.tasks.refusal.generate(n, "harmful")`):
jailbreak-wrapped requests are what the controller must generalise to, never its input.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from interp.config import check_fields, check_positive, from_dict, read_toml, to_dict
from interp.errors import ConfigError
from interp.steering import readout
from interp.steering.controller import ControllerConfig, SteeringController
from interp.steering.directions import Direction
from interp.tasks.chat import ChatFormat, chat_format


@dataclass(frozen=True)
class ControllerTrainConfig:
    """Optimisation of a controller [paper defaults]."""

    lr: float = 5e-5
    """AdamW learning rate."""
    batch_size: int = 8
    """Prompts per batch (each batch is all harmful or all benign)."""
    epochs: int = 10
    """Passes over the training prompts; the best epoch (lowest mean loss) is kept."""
    grad_clip: float = 1.0
    """Gradient-norm clip (0 = none)."""
    reg_coef: float = 0.1
    """Weight of the layer-weight regulariser on harmful batches."""
    reg_mean_coef: float = 0.01
    """Weight of mean σ(u) inside the regulariser."""
    seed: int = 0
    """Seed of the batch order."""

    def __post_init__(self):
        check_fields(self)
        check_positive(self, "lr", "batch_size", "epochs")
        for name in ("grad_clip", "reg_coef", "reg_mean_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0")


@dataclass
class ControllerTrainResult:
    controller: SteeringController
    """The controller at its best epoch, in eval mode."""
    history: pd.DataFrame
    """One row per epoch: epoch, loss, loss_harmful, loss_benign, regulariser."""


def controller_loss(controller: SteeringController, x_BI: torch.Tensor, harmful: bool,
                    config: ControllerTrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(total loss, regulariser) of one all-harmful or all-benign batch."""
    out = controller(x_BI)
    target = torch.full_like(out.scale, 1.0 if harmful else 0.0)
    bce = F.binary_cross_entropy_with_logits(out.scale, target)
    if not harmful:
        return bce, bce.new_zeros(())
    w = torch.sigmoid(out.layer_logits)
    reg = config.reg_coef * ((w - 0.5).abs().mean() + config.reg_mean_coef * w.mean())
    return bce + reg, reg


def train_controller(model, direction: Direction, harmful_prompts: Sequence[str], benign_prompts: Sequence[str],
                     config: ControllerConfig | None = None, train: ControllerTrainConfig = ControllerTrainConfig()) -> ControllerTrainResult:
    """Train a controller for `model` that steers along `direction`.

    `config`: the controller's shape, α and mode (default: `ControllerConfig` for this
    model: read the last 4 layers, hidden 1024, α 4.0, mode "paper").
    """
    harmful_prompts = readout.check_prompts(harmful_prompts, "harmful_prompts")
    benign_prompts = readout.check_prompts(benign_prompts, "benign_prompts")
    config = config or ControllerConfig(d_model=model.cfg.d_model, n_layers=model.cfg.n_layers)
    controller = SteeringController(config, direction)
    x_harm = controller.inputs(model, harmful_prompts)  # (Nh, I)
    x_ben = controller.inputs(model, benign_prompts)  # (Nb, I)
    return fit(controller, x_harm, x_ben, train)


def fit(controller: SteeringController, x_harm_NI: torch.Tensor, x_ben_NI: torch.Tensor,
        train: ControllerTrainConfig = ControllerTrainConfig()) -> ControllerTrainResult:
    """Train `controller` in place on cached read-outs (harmful, benign); keep the best epoch."""
    opt = torch.optim.AdamW(controller.parameters(), lr=train.lr)
    gen = torch.Generator().manual_seed(train.seed)
    rows, best_loss, best_state, best_epoch = [], float("inf"), None, 0
    controller.train()
    for epoch in range(1, train.epochs + 1):
        batches = _batches(x_harm_NI, True, train.batch_size, gen) + _batches(x_ben_NI, False, train.batch_size, gen)
        order = _interleave(batches)
        sums = {True: [0.0, 0], False: [0.0, 0]}
        reg_sum = 0.0
        for x_BI, harmful in order:
            loss, reg = controller_loss(controller, x_BI, harmful, train)
            opt.zero_grad()
            loss.backward()
            if train.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(controller.parameters(), train.grad_clip)
            opt.step()
            sums[harmful][0] += loss.item()
            sums[harmful][1] += 1
            reg_sum += reg.item()
        mean_loss = (sums[True][0] + sums[False][0]) / (sums[True][1] + sums[False][1])
        rows.append({"epoch": epoch, "loss": mean_loss, "loss_harmful": sums[True][0] / sums[True][1],
                     "loss_benign": sums[False][0] / sums[False][1], "regulariser": reg_sum / sums[True][1]})
        if mean_loss < best_loss:
            best_loss, best_state, best_epoch = mean_loss, copy.deepcopy(controller.state_dict()), epoch
    controller.load_state_dict(best_state)
    controller.eval()
    controller.summary = {"best_epoch": best_epoch, "best_loss": best_loss, "n_harmful": len(x_harm_NI),
                          "n_benign": len(x_ben_NI), "train": to_dict(train)}
    return ControllerTrainResult(controller, pd.DataFrame(rows))


def _batches(x_NI: torch.Tensor, harmful: bool, batch_size: int, gen: torch.Generator):
    perm = torch.randperm(len(x_NI), generator=gen)
    return [(x_NI[perm[i:i + batch_size]], harmful) for i in range(0, len(x_NI), batch_size)]


def _interleave(batches):
    harm = [b for b in batches if b[1]]
    ben = [b for b in batches if not b[1]]
    out = []
    for i in range(max(len(harm), len(ben))):
        out += harm[i:i + 1] + ben[i:i + 1]
    return out


def refusal_prompts(n: int, seed: int = 0, chat: ChatFormat | None = None) -> tuple[list[str], list[str]]:
    """(harmful, benign) training prompts of the refusal task in `chat`'s format (default the
    zoo's): plain harmful requests only, never jailbreak-wrapped ones."""
    from interp.tasks import refusal

    return ([p.prompt for p in refusal.generate(n, "harmful", "train", seed, chat=chat)],
            [p.prompt for p in refusal.generate(n, "benign", "train", seed, chat=chat)])


def train_refusal_controller(model, n: int = 400, direction: Direction | None = None, direction_layer: int = 2,
                             config: ControllerConfig | None = None, train: ControllerTrainConfig = ControllerTrainConfig(),
                             seed: int = 0) -> ControllerTrainResult:
    """A controller for the zoo's refusal task, trained on `n` plain harmful and `n` benign
    training prompts. `direction`: default the harmful − benign mean difference of the
    residual stream at the last prompt token of block `direction_layer` (resid_post),
    measured on the same training prompts. `config`: default `ControllerConfig.for_zoo`."""
    harmful, benign = refusal_prompts(n, seed, chat_format(model))
    config = config or ControllerConfig.for_zoo(model.cfg.d_model, model.cfg.n_layers, seed=seed)
    if direction is None:
        direction = Direction.mean_difference(model, harmful, benign, layer=direction_layer,
                                              name=f"refusal mean difference L{direction_layer}")
    return train_controller(model, direction, harmful, benign, config, train)


@dataclass(frozen=True)
class RefusalRecipe:
    """`interp steer train`: a refusal controller for a model, trained on `n` plain harmful and
    `n` benign training prompts of the refusal task. As TOML: these top-level keys, a
    `[controller]` table (`ControllerConfig` fields except d_model and n_layers, over
    `ControllerConfig.for_zoo`) and a `[train]` table (`ControllerTrainConfig` fields)."""

    model: str = "zoo-dense"
    """Model name or directory (`interp.load_model`)."""
    n: int = 400
    """Training prompts per class (harmful, benign)."""
    direction_layer: int = 2
    """Block whose resid_post gives the default direction (harmful − benign mean difference)."""
    seed: int = 0
    """Seed of the training prompts, the controller's initialisation and the batch order."""
    controller: dict = field(default_factory=dict)
    """ControllerConfig fields over the zoo's settings (`ControllerConfig.for_zoo`)."""
    train: ControllerTrainConfig = field(default_factory=ControllerTrainConfig)
    """How the controller is optimised (its seed is `seed`)."""

    def __post_init__(self):
        check_fields(self)
        if self.n < 1:
            raise ConfigError(f"RefusalRecipe.n={self.n} is not allowed: a positive integer")
        own = {"d_model", "n_layers", "seed"} & set(self.controller)
        if own:
            raise ConfigError(f"RefusalRecipe.controller: {sorted(own)} come from the model and the recipe's seed, "
                              "not from [controller]")
        # Check the fields now, before a model is loaded: any depth holds the given read layers
        # (their range is checked against the model in `controller_config`).
        layers = self.controller.get("read_layers", ())
        indices = [x for x in layers if isinstance(x, int)] if isinstance(layers, (list, tuple)) else []
        probe = max(max(indices, default=0) + 1, 1)
        from_dict(ControllerConfig, self.controller, "RefusalRecipe.controller", d_model=1, n_layers=probe)

    @classmethod
    def from_toml(cls, path: str | Path) -> RefusalRecipe:
        return from_dict(cls, read_toml(path), str(path))

    def controller_config(self, model) -> ControllerConfig:
        """The controller's config for `model` (its width and depth)."""
        return ControllerConfig.for_zoo(model.cfg.d_model, model.cfg.n_layers, seed=self.seed, **self.controller)

    def train_config(self) -> ControllerTrainConfig:
        return replace(self.train, seed=self.seed)


def train_from_recipe(recipe: RefusalRecipe, model=None, direction: Direction | None = None) -> ControllerTrainResult:
    """Train the controller `recipe` describes (on `model`, default `recipe.model` loaded)."""
    if model is None:
        from interp.models import load_model

        model = load_model(recipe.model)
    return train_refusal_controller(model, recipe.n, direction, recipe.direction_layer,
                                    recipe.controller_config(model), recipe.train_config(), recipe.seed)
