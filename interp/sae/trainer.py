"""Train one SAE or a sweep of SAEs on an activation store, never re-running the model.

Every SAE of a sweep sees the same minibatches: the store is read once. Adam with linear
warm-up and final linear decay; the decoder constraint after every backward (gradient
projection) and step (renormalisation); dead latents tracked in tokens. Under torchrun
(torch.distributed initialised) each rank reads its own block of the store and gradients are
averaged over ranks before each step, as DistributedDataParallel does. Checkpoints are
written atomically every `checkpoint_every` steps; `resume=True` continues from the last one
and ends with the same weights as an uninterrupted run. A NaN/Inf loss stops training with
`NonFiniteLoss` naming the step; the last good checkpoint stays on disk.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from interp.config import to_dict
from interp.sae import checkpoint
from interp.sae.config import SAEConfig, SAETrainConfig
from interp.sae.init import initialize_from_data
from interp.sae.module import SparseAutoencoder
from interp.sae.objective import training_loss
from interp.sae.stats import LatentStats, fired_counts


class NonFiniteLoss(RuntimeError):
    """A loss became NaN or Inf; the message names the step and the SAE."""


@dataclass
class SAETrainResult:
    saes: list[SparseAutoencoder]
    """The trained SAEs, in the order of the configs."""
    stats: list[LatentStats]
    """Their latent statistics at the end (dead tracking, densities)."""
    steps: int
    """Optimizer steps run in total (including those before a resume)."""
    tokens: int
    """Training tokens seen by each SAE (summed over ranks)."""
    history: list[dict] = field(default_factory=list)
    """Logged steps: {"step", "tokens", "sae": i, loss parts..., "l0", "dead_fraction"} (this run only)."""


def _ranks() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _check_inputs(store, configs: list[SAEConfig], train_cfg: SAETrainConfig, hook: str | None, world: int) -> None:
    if store.n_tokens == 0:
        raise ValueError(f"the activation store {store.path} is empty (0 tokens): nothing to train on")
    d = store.d_model(hook)
    for i, cfg in enumerate(configs):
        if cfg.d_in != d:
            raise ValueError(f"SAE {i} ({cfg.variant}): d_in={cfg.d_in} but the store's activations have "
                             f"d_model={d} at hook {hook or store.hooks[0]!r}")
        if cfg.variant == "gradient" and not store.has_grads:
            raise ValueError(f"SAE {i} is a gradient SAE, which needs dL/dx: {store.path} holds no gradients "
                             "(cache it with grads=True / --grads)")
    if train_cfg.batch_size % world:
        raise ValueError(f"SAETrainConfig.batch_size={train_cfg.batch_size} must be divisible by the world size {world}")
    n_tokens = train_cfg.n_tokens or store.n_tokens
    if n_tokens < train_cfg.batch_size or store.n_tokens < train_cfg.batch_size:
        raise ValueError(f"the store has {store.n_tokens} tokens and the run asks for {n_tokens}: both must be "
                         f">= SAETrainConfig.batch_size={train_cfg.batch_size}")


def _batches(store, train_cfg: SAETrainConfig, hook, start_step: int, total_steps: int, with_grads: bool):
    """The minibatches of steps start_step..total_steps-1, identical to an uninterrupted run's."""
    rank, world = _ranks()
    local = train_cfg.batch_size // world
    per_epoch = (store.n_tokens * (rank + 1) // world - store.n_tokens * rank // world) // local
    epochs = math.ceil(total_steps / per_epoch)
    it = store.batches(local, hook=hook, shuffle=True, seed=train_cfg.seed, rank=rank, world_size=world,
                       with_grads=with_grads, epochs=epochs, drop_last=True, skip=start_step)
    for step, batch in enumerate(it, start=start_step):
        if step >= total_steps:
            break
        yield step, batch


def adam(sae: SparseAutoencoder, train_cfg: SAETrainConfig) -> torch.optim.Adam:
    """The SAE's optimizer: Adam as one fused kernel per step rather than a loop over tensors
    (the update of a 16k-latent SAE is a tenth of a CPU training step otherwise)."""
    return torch.optim.Adam(sae.parameters(), lr=train_cfg.lr_for(sae.cfg), eps=train_cfg.adam_eps,
                            betas=(train_cfg.adam_beta1, train_cfg.adam_beta2), fused=True)


def build_saes(store, configs: list[SAEConfig], train_cfg: SAETrainConfig, hook: str | None) -> list[SparseAutoencoder]:
    """Fresh SAEs with data-dependent init (input scale, geometric-median b_dec) from the first
    `init_tokens` tokens of the store (the same sample on every rank)."""
    sample = next(iter(store.batches(min(train_cfg.init_tokens, store.n_tokens), hook=hook, shuffle=True,
                                      seed=train_cfg.seed + 1))).acts
    saes = []
    for cfg in configs:
        sae = SparseAutoencoder(cfg, backend=train_cfg.backend)
        initialize_from_data(sae, sample)
        saes.append(sae)
    return saes


def train(store, configs: SAEConfig | list[SAEConfig], train_cfg: SAETrainConfig = SAETrainConfig(), *,
          hook: str | None = None, checkpoint_dir: str | Path | None = None, resume: bool = False,
          progress: bool = True, log_every: int | None = None) -> SAETrainResult:
    """Train the SAEs of `configs` on `store` (an `interp.cache.Store`) from one read of the data.

    `hook`: which hook of a multi-hook store. `checkpoint_dir`: where checkpoints go (every
    `train_cfg.checkpoint_every` steps and at the end). `resume`: continue from the checkpoint
    there. Returns a `SAETrainResult`; raises `NonFiniteLoss` on a NaN/Inf loss.
    """
    configs = [configs] if isinstance(configs, SAEConfig) else list(configs)
    if not configs:
        raise ValueError("configs is empty: give at least one SAEConfig")
    rank, world = _ranks()
    _check_inputs(store, configs, train_cfg, hook, world)
    n_tokens = train_cfg.n_tokens or store.n_tokens
    total_steps = n_tokens // train_cfg.batch_size
    with_grads = any(c.variant == "gradient" for c in configs)

    saes = build_saes(store, configs, train_cfg, hook)
    optimizers = [adam(s, train_cfg) for s in saes]
    stats = [LatentStats.new(c.n_latents) for c in configs]
    start_step = 0
    if resume:
        if checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")
        if checkpoint.read_meta(checkpoint_dir) is not None:
            ckpt, stats = checkpoint.load(checkpoint_dir, saes, optimizers)
            start_step = ckpt.step

    log_every = log_every or max(1, total_steps // 50)
    history: list[dict] = []
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if train_cfg.dtype == torch.bfloat16
                else contextlib.nullcontext())
    meta = {"train": to_dict(train_cfg), "total_steps": total_steps, "store": str(store.path), "hook": hook}
    bar = tqdm(total=total_steps, initial=start_step, desc=f"train {len(saes)} SAE(s)", unit="step",
               disable=not progress or rank != 0)
    step = start_step
    for step, batch in _batches(store, train_cfg, hook, start_step, total_steps, with_grads):
        for i, (sae, opt, st) in enumerate(zip(saes, optimizers, stats)):
            for group in opt.param_groups:
                group["lr"] = train_cfg.lr_for(sae.cfg) * train_cfg.lr_factor(step, total_steps)
            grads = batch.grads if sae.cfg.variant == "gradient" else None
            with autocast:
                out = training_loss(sae, batch.acts, grads, st)
            if not torch.isfinite(out.loss):
                bar.close()
                raise NonFiniteLoss(
                    f"step {step}: SAE {i} ({sae.cfg.variant}) loss is {float(out.loss.detach())} "
                    f"({', '.join(f'{k}={float(v.detach()):.4g}' for k, v in out.parts.items())}); training stopped"
                    + (f", the last good checkpoint is in {checkpoint_dir}" if checkpoint_dir else ""))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            if world > 1:
                for p in sae.parameters():
                    dist.all_reduce(p.grad)
                    p.grad /= world
            sae.project_decoder_grad()
            opt.step()
            sae.normalize_decoder()
            sae.variant.after_step(sae, out.code, st)
            fired = fired_counts(out.code, sae.cfg.n_latents, sae.cfg.fire_threshold)
            if world > 1:
                dist.all_reduce(fired)
                dist.all_reduce(sae.threshold)
                sae.threshold /= world
            st.observe(fired, train_cfg.batch_size, sae.cfg.density_momentum)
            if step % log_every == 0 or step == total_steps - 1:
                history.append({"step": step, "tokens": (step + 1) * train_cfg.batch_size, "sae": i,
                                **{k: float(v.detach()) for k, v in out.parts.items()}, "loss": float(out.loss.detach()),
                                "dead_fraction": float(st.dead_mask(sae.cfg.dead_tokens).float().mean())})
        bar.update(1)
        done = step + 1
        if checkpoint_dir is not None and rank == 0 and train_cfg.checkpoint_every \
                and done % train_cfg.checkpoint_every == 0 and done < total_steps:
            checkpoint.save(checkpoint_dir, done, saes, optimizers, stats, meta)
    bar.close()
    if checkpoint_dir is not None and rank == 0:
        checkpoint.save(checkpoint_dir, total_steps, saes, optimizers, stats, meta)
    for sae in saes:
        sae.eval()
    return SAETrainResult(saes, stats, total_steps, total_steps * train_cfg.batch_size, history)
