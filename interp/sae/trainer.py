"""Train one SAE or a sweep of SAEs on an activation store, never re-running the model.

Every SAE of a sweep sees the same minibatches: the store is read once. Adam with linear
warm-up and final linear decay; the decoder constraint after every backward (gradient
projection) and step (renormalisation); dead latents tracked in tokens.

Device and precision: the SAEs, their Adam state, their statistics and the batches live on
`SAETrainConfig.device` (None: the batches' device, the CPU for an on-disk store). On CUDA the
store's host batches are pinned and copied on a side stream, the next one in flight while the
current step runs; `backend="auto"` then picks the Triton kernels. `dtype=bfloat16` autocasts
on the device's type; master weights and Adam state stay fp32. `device="meta"` is a shape-only
dry run (placement and shapes; the values are meaningless and the data-dependent
initialisation is skipped).

Under torchrun each rank reads its own block of the store and gradients are averaged over
ranks in buckets before each step, as DistributedDataParallel does (NCCL on CUDA, gloo on
CPU). Checkpoints are written atomically every `checkpoint_every` steps; `resume=True`
continues from the last one and ends with the same weights as an uninterrupted run. A NaN/Inf
loss stops training with `NonFiniteLoss` naming the step; the last good checkpoint stays on disk.

The loop body is a sequence of named steps, one function each, in the order they run:
`train_step` (per SAE: `set_lr`, `compute_loss`, `backward`, `all_reduce_grads`, `project`,
`optimizer_step`, `after_step`), then `log_row` and, per batch, `maybe_checkpoint`; after the
last step each variant calibrates its inference state (`Variant.calibrate`) on a sample of the store.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
from tqdm.auto import tqdm

from interp import devices
from interp.config import to_dict
from interp.sae import checkpoint
from interp.sae.config import SAEConfig, SAETrainConfig
from interp.sae.init import initialize_from_data
from interp.sae.module import SparseAutoencoder, check_fits, training_bytes
from interp.sae.objective import LossOutput, training_loss
from interp.sae.stats import LatentStats, fired_counts

BUCKET_BYTES = 25 * 2**20
"""Gradients are all-reduced in flat buckets of about this size (DistributedDataParallel's default)."""


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


# --- processes and devices ----------------------------------------------------------------------
def _ranks() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def training_device(train_cfg: SAETrainConfig) -> torch.device:
    """The device training runs on: `train_cfg.device` (checked), or the batches' (cpu). Under
    torchrun a bare "cuda" means this rank's GPU, cuda:LOCAL_RANK."""
    if train_cfg.device is None:
        return torch.device("cpu")
    device = devices.resolve_device(train_cfg.device, "SAETrainConfig.device")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    return device


_GROUPS: dict[str, object] = {}


def _process_group(device: torch.device):
    """The process group gradients are reduced in, joining torchrun's if needed: NCCL for CUDA
    tensors, gloo otherwise. The default group is used when its backend fits (the cache writer
    may already have joined with gloo; CUDA gradients then get an NCCL group of their own)."""
    if not dist.is_available():
        return None
    want = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return None
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=want)
    if dist.get_world_size() == 1 or dist.get_backend() == want:
        return None  # None: the default group
    if want not in _GROUPS:
        _GROUPS[want] = dist.new_group(backend=want)
    return _GROUPS[want]


def _move(batch, device: torch.device, pin: bool):
    """`batch` with its acts and grads on `device` (index and tokens stay on the host)."""
    def send(t):
        if t is None:
            return None
        if pin:
            t = t.pin_memory()
        return t.to(device, non_blocking=pin)
    return batch._replace(acts=send(batch.acts), grads=send(batch.grads), target=send(batch.target))


def to_device(batches: Iterable, device: torch.device) -> Iterator:
    """The batches of `batches` (the store's host batches) on `device`, one ahead: batch i+1 is
    sent before batch i is handed out. On CUDA the copies are from pinned memory on a side
    stream that the compute stream waits for, so they overlap the step; on the CPU this is the
    identity."""
    if device.type == "cpu":
        yield from batches
        return
    cuda = device.type == "cuda"
    stream = torch.cuda.Stream(device) if cuda else None

    def send(batch):
        with torch.cuda.stream(stream) if cuda else contextlib.nullcontext():
            return _move(batch, device, pin=cuda)

    it = iter(batches)
    pending = next(it, None)
    pending = None if pending is None else send(pending)
    while pending is not None:
        current = pending
        if cuda:
            compute = torch.cuda.current_stream(device)
            compute.wait_stream(stream)
            for t in (current.acts, current.grads, current.target):
                if t is not None:
                    t.record_stream(compute)  # the caching allocator must not reuse it before the step is done
        following = next(it, None)
        pending = None if following is None else send(following)
        yield current


# --- setup ------------------------------------------------------------------------------------
def _check_inputs(store, configs: list[SAEConfig], train_cfg: SAETrainConfig, hook: str | None,
                  target_hook: str | None, world: int) -> None:
    if store.n_tokens == 0:
        raise ValueError(f"the activation store {store.path} is empty (0 tokens): nothing to train on")
    d = store.d_model(hook)
    d_target = None if target_hook is None else store.d_model(target_hook)
    for i, cfg in enumerate(configs):
        if cfg.d_in != d:
            raise ValueError(f"SAE {i} ({cfg.variant}): d_in={cfg.d_in} but the store's activations have "
                             f"d_model={d} at hook {hook or store.hooks[0]!r}")
        if cfg.is_transcoder != (target_hook is not None):
            raise ValueError(f"SAE {i} ({cfg.variant}) has kind={cfg.kind!r} but target_hook={target_hook!r}: "
                             "transcoders train with a target hook, SAEs without one (train them in separate runs)")
        if cfg.is_transcoder and cfg.d_out != d_target:
            raise ValueError(f"SAE {i} ({cfg.kind} {cfg.variant}): d_out={cfg.d_out} but the store's target hook "
                             f"{target_hook!r} has d_model={d_target}")
        if cfg.needs_grads and not store.has_grads:
            raise ValueError(f"SAE {i} ({cfg.variant}) trains on dL/dx: {store.path} holds no gradients "
                             "(cache it with grads=True / --grads)")
    if train_cfg.batch_size % world:
        raise ValueError(f"SAETrainConfig.batch_size={train_cfg.batch_size} must be divisible by the world size {world}")
    n_tokens = train_cfg.n_tokens or store.n_tokens
    if n_tokens < train_cfg.batch_size or store.n_tokens < train_cfg.batch_size:
        raise ValueError(f"the store has {store.n_tokens} tokens and the run asks for {n_tokens}: both must be "
                         f">= SAETrainConfig.batch_size={train_cfg.batch_size}")


def _batches(store, train_cfg: SAETrainConfig, hook, target_hook, start_step: int, total_steps: int,
             with_grads: bool, device: torch.device):
    """(step, batch on `device`) of steps start_step..total_steps-1, identical to an uninterrupted run's."""
    rank, world = _ranks()
    local = train_cfg.batch_size // world
    per_epoch = (store.n_tokens * (rank + 1) // world - store.n_tokens * rank // world) // local
    epochs = math.ceil(total_steps / per_epoch)
    it = store.batches(local, hook=hook, shuffle=True, seed=train_cfg.seed, rank=rank, world_size=world,
                       with_grads=with_grads, epochs=epochs, drop_last=True, skip=start_step, target_hook=target_hook)
    host = (batch for _, batch in zip(range(start_step, total_steps), it))  # no read past the last step
    yield from enumerate(to_device(host, device), start=start_step)


def adam(sae: SparseAutoencoder, train_cfg: SAETrainConfig) -> torch.optim.Adam:
    """The SAE's optimizer, its state on the SAE's device: Adam as one fused kernel per step
    where torch has one (CPU, CUDA) rather than a loop over tensors (the update of a 16k-latent
    SAE is a tenth of a CPU training step otherwise)."""
    return torch.optim.Adam(sae.parameters(), lr=train_cfg.lr_for(sae.cfg), eps=train_cfg.adam_eps,
                            betas=(train_cfg.adam_beta1, train_cfg.adam_beta2),
                            fused=sae.device.type in ("cpu", "cuda"))


def build_saes(store, configs: list[SAEConfig], train_cfg: SAETrainConfig, hook: str | None,
               target_hook: str | None = None) -> list[SparseAutoencoder]:
    """Fresh SAEs on the training device with data-dependent init (input scale,
    geometric-median b_dec, the variant's encoder policy; a transcoder's from its target too)
    from the first `init_tokens` tokens of the store (the same sample on every rank). Refused
    before any allocation when the sweep's parameters, gradients and Adam state would not fit
    in the device's memory."""
    device = training_device(train_cfg)
    check_fits(sum(training_bytes(c) for c in configs), device,
               f"training {len(configs)} SAE(s) ({', '.join(f'{c.variant} n_latents={c.n_latents}' for c in configs)})")
    sample = next(iter(store.batches(min(train_cfg.init_tokens, store.n_tokens), hook=hook, shuffle=True,
                                      seed=train_cfg.seed + 1, target_hook=target_hook)))
    saes = []
    for cfg in configs:
        sae = SparseAutoencoder(cfg, backend=train_cfg.backend, device=device)
        if device.type != "meta":  # the init reads values; a dry run has none
            initialize_from_data(sae, sample.acts, sample.target)
        saes.append(sae)
    return saes


# --- the named steps of one SAE's update ---------------------------------------------------------
@dataclass
class StepContext:
    """What every step of a run shares."""

    train_cfg: SAETrainConfig
    total_steps: int
    autocast: contextlib.AbstractContextManager = field(default_factory=contextlib.nullcontext)
    """Autocast context of the loss (`interp.devices.autocast`), entered once per step."""
    world: int = 1
    """Data-parallel ranks."""
    group: object = None
    """Process group of the all-reduces (None: the default group)."""
    checkpoint_dir: str | Path | None = None
    """Named in a `NonFiniteLoss` message."""


def train_step(sae: SparseAutoencoder, opt: torch.optim.Optimizer, stats: LatentStats, batch, step: int,
               index: int, ctx: StepContext) -> LossOutput:
    """One SAE's update on one batch (acts (B, d), grads or None, a transcoder's target, on the SAE's device):
    the named steps below, in order. Returns the step's loss output."""
    set_lr(opt, sae, ctx.train_cfg, step, ctx.total_steps)
    out = compute_loss(sae, batch, stats, ctx.autocast, step, index, ctx.checkpoint_dir)
    backward(opt, out)
    all_reduce_grads(sae, ctx.world, ctx.group)
    project(sae)
    optimizer_step(opt, sae)
    after_step(sae, out, stats, ctx.train_cfg.batch_size, ctx.world, ctx.group)
    return out


def set_lr(opt: torch.optim.Optimizer, sae: SparseAutoencoder, train_cfg: SAETrainConfig, step: int,
           total_steps: int) -> None:
    """Select the learning rate of `step` (warm-up, constant, decay)."""
    for group in opt.param_groups:
        group["lr"] = train_cfg.lr_for(sae.cfg) * train_cfg.lr_factor(step, total_steps)


def compute_loss(sae: SparseAutoencoder, batch, stats: LatentStats, autocast, step: int, index: int,
                 checkpoint_dir) -> LossOutput:
    """The training loss on `batch` under `autocast`; raises `NonFiniteLoss` on NaN/Inf."""
    grads = batch.grads if sae.variant.needs_grads else None
    with autocast:
        out = training_loss(sae, batch.acts, grads, stats, batch.target)
    if not _is_meta(out.loss) and not torch.isfinite(out.loss):
        raise NonFiniteLoss(
            f"step {step}: SAE {index} ({sae.cfg.variant}) loss is {float(out.loss.detach())} "
            f"({', '.join(f'{k}={float(v.detach()):.4g}' for k, v in out.parts.items())}); training stopped"
            + (f", the last good checkpoint is in {checkpoint_dir}" if checkpoint_dir else ""))
    return out


def backward(opt: torch.optim.Optimizer, out: LossOutput) -> None:
    opt.zero_grad(set_to_none=True)
    out.loss.backward()


def all_reduce_grads(sae: SparseAutoencoder, world: int, group) -> None:
    """Average the gradients over the `world` ranks, in flat buckets of about BUCKET_BYTES."""
    if world == 1:
        return
    grads = [p.grad for p in sae.parameters() if p.grad is not None]
    for bucket in _buckets(grads, BUCKET_BYTES):
        flat = _flatten_dense_tensors(bucket)
        dist.all_reduce(flat, group=group)
        flat /= world
        for g, reduced in zip(bucket, _unflatten_dense_tensors(flat, bucket)):
            g.copy_(reduced)


def _buckets(tensors: list[torch.Tensor], limit: int) -> list[list[torch.Tensor]]:
    """Consecutive groups of `tensors` of one dtype and at most `limit` bytes each (a larger
    tensor is a bucket of its own)."""
    out, size = [], 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        if not out or size + nbytes > limit or out[-1][0].dtype != t.dtype:
            out.append([])
            size = 0
        out[-1].append(t)
        size += nbytes
    return out


def project(sae: SparseAutoencoder) -> None:
    """The decoder constraint on the gradient: no component along each decoder row."""
    sae.project_decoder_grad()


def optimizer_step(opt: torch.optim.Optimizer, sae: SparseAutoencoder) -> None:
    """Adam's step, then decoder rows back to unit norm."""
    opt.step()
    sae.normalize_decoder()


def after_step(sae: SparseAutoencoder, out: LossOutput, stats: LatentStats, batch_size: int, world: int,
               group) -> None:
    """The variant's inference state, then dead-latent and density statistics (over all ranks)."""
    sae.variant.after_step(sae, out.code, stats)
    fired = fired_counts(out.code, sae.cfg.n_latents, sae.cfg.fire_threshold)
    if world > 1:
        dist.all_reduce(fired, group=group)
        dist.all_reduce(sae.threshold, group=group)
        sae.threshold /= world
    stats.observe(fired, batch_size, sae.cfg.density_momentum)


def log_row(step: int, index: int, out: LossOutput, stats: LatentStats, sae: SparseAutoencoder,
            batch_size: int) -> dict:
    """One history row: the step, the tokens so far, every loss part and the dead fraction."""
    return {"step": step, "tokens": (step + 1) * batch_size, "sae": index,
            **{k: _value(v) for k, v in out.parts.items()}, "loss": _value(out.loss),
            "dead_fraction": _value(stats.dead_mask(sae.cfg.dead_tokens).float().mean())}


def maybe_checkpoint(checkpoint_dir, done: int, total_steps: int, train_cfg: SAETrainConfig, rank: int,
                     saes, optimizers, stats, meta: dict, history: list[dict] | None = None) -> None:
    """Write a checkpoint after `done` steps when one is due (rank 0 only), with the history so far."""
    if checkpoint_dir is not None and rank == 0 and train_cfg.checkpoint_every \
            and done % train_cfg.checkpoint_every == 0 and done < total_steps:
        checkpoint.save(checkpoint_dir, done, saes, optimizers, stats, meta, history=history)


def _is_meta(t: torch.Tensor) -> bool:
    return t.device.type == "meta"


def _value(t: torch.Tensor) -> float:
    """A logged scalar (NaN in a meta dry run, which has no values)."""
    return float("nan") if _is_meta(t) else float(t.detach())


# --- the loop -------------------------------------------------------------------------------------
def train(store, configs: SAEConfig | list[SAEConfig], train_cfg: SAETrainConfig = SAETrainConfig(), *,
          hook: str | None = None, target_hook: str | None = None, checkpoint_dir: str | Path | None = None,
          resume: bool = False, progress: bool = True, log_every: int | None = None) -> SAETrainResult:
    """Train the SAEs of `configs` on `store` (an `interp.cache.Store`) from one read of the data.

    `hook`: which hook of a multi-hook store. `target_hook`: the hook transcoders predict (a
    run trains either SAEs, without it, or transcoders, with it; both hooks come from one
    shuffle). `checkpoint_dir`: where checkpoints go (every
    `train_cfg.checkpoint_every` steps and at the end). `resume`: continue from the checkpoint
    there. Returns a `SAETrainResult` (SAEs on `train_cfg.device`); raises `NonFiniteLoss` on a
    NaN/Inf loss.
    """
    configs = [configs] if isinstance(configs, SAEConfig) else list(configs)
    if not configs:
        raise ValueError("configs is empty: give at least one SAEConfig")
    device = training_device(train_cfg)
    group = _process_group(device)
    rank, world = _ranks()
    _check_inputs(store, configs, train_cfg, hook, target_hook, world)
    n_tokens = train_cfg.n_tokens or store.n_tokens
    total_steps = n_tokens // train_cfg.batch_size
    with_grads = any(c.needs_grads for c in configs)

    saes = build_saes(store, configs, train_cfg, hook, target_hook)
    optimizers = [adam(s, train_cfg) for s in saes]
    stats = [LatentStats.new(c.n_latents, device) for c in configs]
    start_step, history = 0, []
    if resume:
        if checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")
        if checkpoint.read_meta(checkpoint_dir) is not None:
            ckpt, stats = checkpoint.load(checkpoint_dir, saes, optimizers)
            stats = [st.to(device) for st in stats]
            start_step = ckpt.step
            # the loss curve before the kill, as the checkpoint recorded it
            history = [h for h in ckpt.meta.get("history", []) if h["step"] < start_step]

    log_every = log_every or max(1, total_steps // 50)
    ctx = StepContext(train_cfg, total_steps, devices.autocast(device, train_cfg.dtype), world, group, checkpoint_dir)
    meta = {"train": to_dict(train_cfg), "total_steps": total_steps, "store": str(store.path),
            "hook": checkpoint.hook_key(hook, target_hook)}
    bar = tqdm(total=total_steps, initial=start_step, desc=f"train {len(saes)} SAE(s)", unit="step",
               disable=not progress or rank != 0)
    try:
        for step, batch in _batches(store, train_cfg, hook, target_hook, start_step, total_steps, with_grads, device):
            for i, (sae, opt, st) in enumerate(zip(saes, optimizers, stats)):
                out = train_step(sae, opt, st, batch, step, i, ctx)
                if step % log_every == 0 or step == total_steps - 1:
                    history.append(log_row(step, i, out, st, sae, train_cfg.batch_size))
            bar.update(1)
            maybe_checkpoint(checkpoint_dir, step + 1, total_steps, train_cfg, rank, saes, optimizers, stats, meta,
                             history)
    finally:
        bar.close()
    if device.type != "meta":  # the variants' inference state (thresholds) from a sample drawn like the init sample
        sample = next(iter(store.batches(min(train_cfg.init_tokens, store.n_tokens), hook=hook, shuffle=True,
                                          seed=train_cfg.seed + 2, target_hook=target_hook)))
        for sae, st in zip(saes, stats):
            sae.variant.calibrate(sae, sae.to_sae_space(sample.acts.to(sae.device, torch.float32))[0], st)
    if checkpoint_dir is not None and rank == 0:
        checkpoint.save(checkpoint_dir, total_steps, saes, optimizers, stats, meta, history=history)
    for sae in saes:
        sae.eval()
    return SAETrainResult(saes, stats, total_steps, total_steps * train_cfg.batch_size, history)
