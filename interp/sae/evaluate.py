"""Evaluate SAEs with their reconstruction spliced into the model at their hook.

Metrics (names as in docs/specs): nmse (= FVU, sum ||x - x_hat||^2 / sum ||x - mean||^2 over the
eval set), l0 (mean and quantiles), dead / dense latent fractions over the eval set, CE loss
clean / with the SAE / zero-ablated, ce_recovered = (CE_zero - CE_sae) / (CE_zero - CE_clean),
ce_delta = CE_sae - CE_clean, kl = KL(clean || spliced) of the next-token distributions, and
AFA's eps_LBO (mean, median) for every SAE. Each SAE is evaluated in every inference mode of
its variant (`Variant.inference_modes`): the first under its own row name, the others as
"name[mode]", each encoded by `Variant.encode_mode` (the gradient SAE's `grad` mode, with dL/dx
computed like the activation store does: summed next-token cross-entropy; Mutual/Feature
Choice's `batch` mode, their training rule applied to each eval batch). A row of a mode other
than the first also has selection_change: the fraction of its firings (token, latent) that the
first mode's code does not make (how much the gradient, or the batch rule, changes the choice).

Everything runs on the model's device: the SAEs are moved there (`device=None`, the
convention of `interp.devices`) or model and SAEs both go to `device`. Sums are accumulated
on the device and read once at the end. On the meta device (a shape-only dry run) the metrics
are NaN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd
import torch
import torch.nn.functional as F

from interp import devices
from interp.config import check_fields, check_positive
from interp.errors import ConfigError
from interp.hooks import named_all
from interp.sae import afa
from interp.sae.module import SparseAutoencoder, code_entries, l0_per_token
from interp.sae.variants.base import InferenceMode


@dataclass(frozen=True)
class SAEEvalConfig:
    """The settings of `evaluate_details` beyond its data (the flags of `interp eval-sae`)."""

    batch_size: int = 16
    """Sequences per forward pass."""
    dense_threshold: float = 0.1
    """A latent firing on more than this fraction of the eval tokens counts as dense."""
    device: str | None = None
    """Where the model and the SAEs run (the SAEs are moved there); None: the model's device."""
    dtype: torch.dtype | None = field(default=None, metadata={"choices": ("float32", "bfloat16")})
    """Autocast dtype of the spliced SAE passes: None or float32 (none), bfloat16 (on CUDA and CPU)."""

    def __post_init__(self):
        check_fields(self)
        check_positive(self, "batch_size")
        if not 0 <= self.dense_threshold <= 1:
            raise ConfigError(f"SAEEvalConfig.dense_threshold={self.dense_threshold!r} is not allowed: a number in [0, 1]")
        if self.device is not None:
            devices.resolve_device(self.device, "SAEEvalConfig.device")


@dataclass
class EvalDetails:
    metrics: pd.DataFrame
    """One row per SAE (and mode), the columns listed in the module docstring."""
    densities: dict[str, torch.Tensor]
    """(n,) fraction of eval tokens on which each latent fired, per row name (the feature-density histogram's data)."""
    l0: dict[str, torch.Tensor]
    """(T,) int64 active latents per eval token, per row name (the L0 distribution)."""
    zf: dict[str, afa.ZFData]
    """Per-token ||x||, ||f|| and eps_LBO (the ZF plot's data), per row name."""


class _Accumulator:
    """Sums of one row over the eval batches, as float64 tensors on the device (no host sync per batch)."""

    def __init__(self, n_latents: int, device: torch.device):
        self.sq_err, self.ce, self.kl, self.skip_sq_err = (torch.zeros((), dtype=torch.float64, device=device)
                                                          for _ in range(4))
        self.fired = torch.zeros(n_latents, dtype=torch.int64, device=device)
        self.changed, self.selected = (torch.zeros((), dtype=torch.int64, device=device) for _ in range(2))
        self.l0: list[torch.Tensor] = []
        self.x_norm: list[torch.Tensor] = []
        self.f_norm: list[torch.Tensor] = []


def _value(t: torch.Tensor) -> float:
    """A sum read on the host once, at the end (NaN in a meta dry run)."""
    return float("nan") if t.device.type == "meta" else float(t)


_RESID = re.compile(r"blocks\.(\d+)\.hook_resid_(pre|post)")


def start_layer(model, hook: str) -> int | None:
    """The block a forward pass can start at with `hook`'s activation as its residual stream:
    L for blocks.L.hook_resid_pre, L + 1 for blocks.L.hook_resid_post, on a HookedTransformer
    whose blocks need nothing else (no shortformer position embedding); None otherwise. A
    spliced pass then skips the blocks before the hook, whose output it already has."""
    from transformer_lens import HookedTransformer

    m = _RESID.fullmatch(hook)
    if m is None or not isinstance(model, HookedTransformer) or model.cfg.positional_embedding_type == "shortformer":
        return None
    return int(m[1]) + (m[2] == "post")


def _splice(model, tokens_BT, hook: str, replace, clean_act, start: int | None):
    """Logits with `hook`'s activation replaced by `replace(activation)`; from block `start` on
    (`start_layer`; `clean_act` the hook's clean activation, (B, T, d_model)), else a whole pass."""
    if start is None:
        return model.run_with_hooks(tokens_BT, fwd_hooks=[(hook, lambda act, hook: replace(act))])
    return model(replace(clean_act), start_at_layer=start, tokens=tokens_BT)


def _ce(logits_BTV: torch.Tensor, tokens_BT: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits_BTV[:, :-1].flatten(0, 1).float(), tokens_BT[:, 1:].flatten(), reduction="sum")


def _next_logp(logits_BTV: torch.Tensor) -> torch.Tensor:
    """Log-probabilities of the next token at every position but the last, (B, T-1, V), fp32."""
    return logits_BTV[:, :-1].float().log_softmax(-1)


def _nll(logp_BTV: torch.Tensor, tokens_BT: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy from `_next_logp`'s log-probabilities."""
    return -logp_BTV.gather(-1, tokens_BT[:, 1:, None]).sum()


def _clean_pass(model, tokens_BT, hook: str, target_hook: str | None, with_grads: bool):
    """(logits (B, T, V), acts (B*T, d), target (B*T, d_out) or None, grads (B*T, d_out) or None)
    of a clean forward pass; the gradient is dL/d(what the dictionaries write): the target
    hook's activation for transcoders, `hook`'s for SAEs."""
    kept = {}
    grad_hook = target_hook or hook

    def keep(act, hook):
        act = act.detach().requires_grad_(with_grads and hook.name == grad_hook)
        kept[hook.name] = act
        return act

    hooks = [hook] if target_hook is None else [hook, target_hook]
    with torch.set_grad_enabled(with_grads):
        logits = model.run_with_hooks(tokens_BT, fwd_hooks=named_all([(h, keep) for h in hooks]))
        grads = torch.autograd.grad(_ce(logits, tokens_BT), kept[grad_hook])[0] if with_grads else None

    def flat(t):
        return None if t is None else t.detach().reshape(-1, t.shape[-1])
    return logits.detach(), flat(kept[hook]), flat(kept.get(target_hook)), flat(grads)


@torch.no_grad()
def _row_update(acc: _Accumulator, sae: SparseAutoencoder, mode: InferenceMode, model, tokens_BT, splice_hook,
                x_TD, y_TD, g_TD, clean: tuple[torch.Tensor, torch.Tensor, torch.Tensor], start: int | None):
    code = sae.variant.encode_mode(sae, *sae.to_sae_space(x_TD, g_TD), mode)
    y_hat_TD = sae.decode(code, x_TD)
    acc.sq_err += (y_TD - y_hat_TD).pow(2).sum().double()  # fp32 per batch, fp64 across batches
    rows, cols, values = code_entries(code)
    plain = sae.variant.inference_modes[0]
    if mode != plain:  # which of this mode's firings the variant's plain inference would not make
        p_rows, p_cols, p_values = code_entries(sae.variant.encode_mode(sae, sae.to_sae_space(x_TD)[0], None, plain))
        plain_TN = torch.zeros(x_TD.shape[0], sae.cfg.n_latents, dtype=torch.bool, device=x_TD.device)
        plain_TN[p_rows, p_cols] = p_values > 0  # integer indices only: no data-dependent shapes (meta runs)
        fired = values > 0
        acc.changed += (fired & ~plain_TN[rows, cols]).sum()
        acc.selected += fired.sum()
    acc.fired.index_add_(0, cols, (values > 0).long())
    acc.l0.append(l0_per_token(code))
    f2 = x_TD.new_zeros(x_TD.shape[0], dtype=torch.float32).index_add_(
        0, rows, (values * sae.W_dec.norm(dim=1)[cols]).pow(2).float())
    acc.f_norm.append((f2 + sae.b_dec.pow(2).sum()).sqrt())
    acc.x_norm.append(y_TD.norm(dim=1))
    if sae.W_skip is not None:  # what the skip path and b_dec alone predict
        x_s = sae.to_sae_space(x_TD)[0]
        acc.skip_sq_err += (y_TD - sae.from_sae_space(sae.skip_scaled(x_s) + sae.b_dec)).pow(2).sum().double()
    logits = _splice(model, tokens_BT, splice_hook, lambda act: y_hat_TD.reshape(act.shape).to(act.dtype),
                     clean[2], start)
    logp = _next_logp(logits)
    acc.ce += _nll(logp, tokens_BT).double()
    p_clean, p_logp_clean = clean[0], clean[1]
    acc.kl += (p_logp_clean - (p_clean * logp).sum()).double()  # KL(clean || spliced)


def evaluate_details(saes: SparseAutoencoder | dict[str, SparseAutoencoder], model, tokens: torch.Tensor,
                     hook: str, *, target_hook: str | None = None, batch_size: int = 16,
                     dense_threshold: float = 0.1, device: devices.DeviceLike | None = None,
                     dtype: torch.dtype | None = None, progress: bool = False) -> EvalDetails:
    """Evaluate `saes` (one, or several by name) on `tokens` (n_seq, ctx) LongTensor through
    `model` (a HookedTransformer) with the SAE spliced at `hook`; transcoders read `hook` and
    their prediction replaces `target_hook` (nmse is then the target's, the zero-ablation
    baseline zeroes the target hook, and skip-transcoders also report `skip_fve`, the fraction
    of the target's variance their skip path and b_dec alone explain). Latents firing on more than
    `dense_threshold` of the tokens count as dense. `device`: where model and SAEs run (None:
    the model's device; the SAEs are moved there). `dtype`: autocast dtype of the SAEs'
    arithmetic (None or float32: none; bfloat16 on CUDA and CPU)."""
    if isinstance(saes, SparseAutoencoder):
        saes = {saes.cfg.variant: saes}
    for name, sae in saes.items():
        if sae.cfg.is_transcoder != (target_hook is not None):
            raise ValueError(f"{name}: kind={sae.cfg.kind!r} with target_hook={target_hook!r}: a transcoder is "
                             "evaluated with the hook it predicts (target_hook), an SAE without one")
    if tokens.dim() != 2 or tokens.shape[0] == 0 or tokens.shape[1] < 2:
        raise ValueError(f"tokens must be a non-empty (n_seq, ctx >= 2) LongTensor; got shape {tuple(tokens.shape)}")
    devices.place_model(model, device)
    dev = devices.model_device(model)
    autocast = devices.autocast(dev, dtype)
    rows: dict[str, tuple[SparseAutoencoder, InferenceMode]] = {}
    for name, sae in saes.items():
        sae.to(dev)
        for i, mode in enumerate(sae.variant.inference_modes):
            rows[name if i == 0 else f"{name}[{mode.name}]"] = (sae, mode)
    with_grads = any(mode.needs_grads for _, mode in rows.values())
    accs = {name: _Accumulator(sae.cfg.n_latents, dev) for name, (sae, _) in rows.items()}
    ce_clean, ce_zero, sum_sq = (torch.zeros((), dtype=torch.float64, device=dev) for _ in range(3))
    sum_y = None
    n_pred = count = 0
    splice_hook = target_hook or hook
    start = start_layer(model, splice_hook)
    for b0 in range(0, tokens.shape[0], batch_size):
        tokens_BT = tokens[b0:b0 + batch_size].to(dev)
        logits, x_TD, y_TD, g_TD = _clean_pass(model, tokens_BT, hook, target_hook, with_grads)
        y_TD = x_TD if y_TD is None else y_TD
        with torch.no_grad():
            clean_act = y_TD.reshape(*tokens_BT.shape, -1)
            logp_clean = _next_logp(logits)
            p_clean = logp_clean.exp()
            clean = (p_clean, (p_clean * logp_clean).sum(), clean_act)  # what every row's KL reads
            ce_clean += _nll(logp_clean, tokens_BT).double()
            ce_zero += _ce(_splice(model, tokens_BT, splice_hook, torch.zeros_like, clean_act, start),
                           tokens_BT).double()
            n_pred += tokens_BT[:, 1:].numel()
            yf = y_TD.double()
            sum_sq += yf.pow(2).sum()
            sum_y = yf.sum(0) if sum_y is None else sum_y + yf.sum(0)
            count += y_TD.shape[0]
        for name, (sae, mode) in rows.items():
            with autocast:
                _row_update(accs[name], sae, mode, model, tokens_BT, splice_hook, x_TD, y_TD,
                            g_TD if mode.needs_grads else None, clean, start)
    total_var = _value(sum_sq) - _value(sum_y.pow(2).sum()) / count
    ce_clean, ce_zero = _value(ce_clean) / n_pred, _value(ce_zero) / n_pred
    records, densities, l0s, zfs = [], {}, {}, {}
    for name, (sae, mode) in rows.items():
        acc = accs[name]
        i = sae.variant.inference_modes.index(mode)
        l0 = _host(torch.cat(acc.l0))
        density = _host(acc.fired.double()) / count
        zf = afa.zf_data(_host(torch.cat(acc.x_norm)).unsqueeze(1), _host(torch.cat(acc.f_norm)), sae.cfg.n_latents)
        ce_sae = _value(acc.ce) / n_pred
        eps = zf.eps_lbo[torch.isfinite(zf.eps_lbo)]
        l0d = l0.double()
        records.append({
            "sae": name, "kind": sae.cfg.kind, "variant": sae.cfg.variant, "n_latents": sae.cfg.n_latents,
            "k": sae.cfg.k,
            "mode": mode.name,
            "nmse": _value(acc.sq_err) / total_var, "l0": float(l0d.mean()),
            "l0_p10": float(l0d.quantile(0.1)), "l0_p50": float(l0d.median()),
            "l0_p90": float(l0d.quantile(0.9)), "l0_max": float(l0d.max()),
            "l0_frac_k1": float((l0d == 1).double().mean()),
            "selection_change": _value(acc.changed) / max(_value(acc.selected), 1) if i > 0 else float("nan"),
            "dead_fraction": float((density == 0).double().mean()),
            "dense_fraction": float((density > dense_threshold).double().mean()),
            "ce_clean": ce_clean, "ce_sae": ce_sae, "ce_zero": ce_zero,
            "ce_recovered": (ce_zero - ce_sae) / (ce_zero - ce_clean) if ce_zero != ce_clean else float("nan"),
            "ce_delta": ce_sae - ce_clean,
            "kl": _value(acc.kl) / n_pred,
            "eps_lbo_mean": float(eps.mean()) if len(eps) else float("nan"),
            "eps_lbo_median": float(eps.median()) if len(eps) else float("nan"),
            "skip_fve": 1 - _value(acc.skip_sq_err) / total_var if sae.W_skip is not None else float("nan"),
            "eval_tokens": count,
        })
        densities[name], l0s[name], zfs[name] = density, l0, zf
    return EvalDetails(pd.DataFrame.from_records(records).set_index("sae"), densities, l0s, zfs)


def _host(t: torch.Tensor) -> torch.Tensor:
    """`t` on the CPU; in a meta dry run a tensor of its shape holding NaN (-1 for integers)."""
    if t.device.type != "meta":
        return t.cpu()
    return torch.full(t.shape, float("nan") if t.is_floating_point() else -1, dtype=t.dtype)


def evaluate_saes(saes: SparseAutoencoder | dict[str, SparseAutoencoder], model, tokens: torch.Tensor, hook: str,
             **kwargs) -> pd.DataFrame:
    """The metrics table of `evaluate_details` (one row per SAE and inference mode)."""
    return evaluate_details(saes, model, tokens, hook, **kwargs).metrics
