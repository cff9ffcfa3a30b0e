"""Evaluate SAEs with their reconstruction spliced into the model at their hook.

Metrics (names as in docs/specs): nmse (= FVU, sum ||x - x_hat||^2 / sum ||x - mean||^2 over the
eval set), l0 (mean and quantiles), dead / dense latent fractions over the eval set, CE loss
clean / with the SAE / zero-ablated, ce_recovered = (CE_zero - CE_sae) / (CE_zero - CE_clean),
ce_delta = CE_sae - CE_clean, kl = KL(clean || spliced) of the next-token distributions, and
AFA's eps_LBO (mean, median) for every SAE. A gradient SAE is evaluated in both inference
modes: `plain` (its row name) and `grad` (row name + "[grad]"), the latter with dL/dx computed
like the activation store does (summed next-token cross-entropy).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

from interp.sae import afa
from interp.sae.module import SparseAutoencoder, code_entries, l0_per_token


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
    def __init__(self, n_latents: int):
        self.sq_err = self.sum_sq = 0.0
        self.sum_x = None
        self.count = 0
        self.ce = self.kl = 0.0
        self.fired = torch.zeros(n_latents, dtype=torch.int64)
        self.l0: list[torch.Tensor] = []
        self.x_norm: list[torch.Tensor] = []
        self.f_norm: list[torch.Tensor] = []


def _splice(model, tokens_BT, hook: str, replace):
    return model.run_with_hooks(tokens_BT, fwd_hooks=[(hook, lambda act, hook: replace(act))])


def _ce(logits_BTV: torch.Tensor, tokens_BT: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits_BTV[:, :-1].flatten(0, 1).float(), tokens_BT[:, 1:].flatten(), reduction="sum")


def _clean_pass(model, tokens_BT, hook: str, with_grads: bool):
    """(logits (B, T, V), acts (B*T, d), grads (B*T, d) or None) of a clean forward pass."""
    kept = {}

    def keep(act, hook):
        act = act.detach().requires_grad_(with_grads)
        kept["act"] = act
        return act

    with torch.set_grad_enabled(with_grads):
        logits = model.run_with_hooks(tokens_BT, fwd_hooks=[(hook, keep)])
        grads = torch.autograd.grad(_ce(logits, tokens_BT), kept["act"])[0] if with_grads else None
    act = kept["act"].detach()
    d = act.shape[-1]
    return logits.detach(), act.reshape(-1, d), None if grads is None else grads.reshape(-1, d)


@torch.no_grad()
def _row_update(acc: _Accumulator, sae: SparseAutoencoder, model, tokens_BT, hook, x_TD, g_TD, logp_clean):
    code = sae.encode(x_TD, g_TD)
    x_hat_TD = sae.decode(code, x_TD)
    acc.sq_err += float((x_TD - x_hat_TD).pow(2).sum())
    rows, cols, values = code_entries(code)
    hit = values > 0
    acc.fired += torch.zeros_like(acc.fired).index_add_(0, cols[hit].cpu(), torch.ones_like(cols[hit]).cpu())
    acc.l0.append(l0_per_token(code).cpu())
    f2 = torch.zeros(x_TD.shape[0]).index_add_(0, rows.cpu(), (values * sae.W_dec.norm(dim=1)[cols]).pow(2).float().cpu())
    acc.f_norm.append((f2 + sae.b_dec.pow(2).sum().cpu()).sqrt())
    acc.x_norm.append(x_TD.norm(dim=1).cpu())
    logits = _splice(model, tokens_BT, hook, lambda act: x_hat_TD.reshape(act.shape).to(act.dtype))
    acc.ce += float(_ce(logits, tokens_BT))
    logp = logits[:, :-1].float().log_softmax(-1)
    acc.kl += float((logp_clean.exp() * (logp_clean - logp)).sum())


def evaluate_details(saes: SparseAutoencoder | dict[str, SparseAutoencoder], model, tokens: torch.Tensor,
                     hook: str, *, batch_size: int = 16, dense_threshold: float = 0.1,
                     progress: bool = False) -> EvalDetails:
    """Evaluate `saes` (one, or several by name) on `tokens` (n_seq, ctx) LongTensor through
    `model` (a HookedTransformer) with the SAE spliced at `hook`. Latents firing on more than
    `dense_threshold` of the tokens count as dense."""
    if isinstance(saes, SparseAutoencoder):
        saes = {saes.cfg.variant: saes}
    if tokens.dim() != 2 or tokens.shape[0] == 0 or tokens.shape[1] < 2:
        raise ValueError(f"tokens must be a non-empty (n_seq, ctx >= 2) LongTensor; got shape {tuple(tokens.shape)}")
    rows: dict[str, tuple[SparseAutoencoder, bool]] = {}
    for name, sae in saes.items():
        rows[name] = (sae, False)
        if sae.cfg.variant == "gradient":
            rows[f"{name}[grad]"] = (sae, True)
    with_grads = any(g for _, g in rows.values())
    accs = {name: _Accumulator(sae.cfg.n_latents) for name, (sae, _) in rows.items()}
    ce_clean = ce_zero = 0.0
    n_pred = 0
    sum_sq = 0.0
    sum_x = None
    count = 0
    for b0 in range(0, tokens.shape[0], batch_size):
        tokens_BT = tokens[b0:b0 + batch_size].to(model.cfg.device)
        logits, x_TD, g_TD = _clean_pass(model, tokens_BT, hook, with_grads)
        with torch.no_grad():
            logp_clean = logits[:, :-1].float().log_softmax(-1)
            ce_clean += float(_ce(logits, tokens_BT))
            ce_zero += float(_ce(_splice(model, tokens_BT, hook, torch.zeros_like), tokens_BT))
            n_pred += tokens_BT[:, 1:].numel()
            xf = x_TD.double()
            sum_sq += float(xf.pow(2).sum())
            sum_x = xf.sum(0) if sum_x is None else sum_x + xf.sum(0)
            count += x_TD.shape[0]
        for name, (sae, use_grads) in rows.items():
            _row_update(accs[name], sae, model, tokens_BT, hook, x_TD, g_TD if use_grads else None, logp_clean)
    total_var = sum_sq - float(sum_x.pow(2).sum()) / count
    ce_clean, ce_zero = ce_clean / n_pred, ce_zero / n_pred
    records, densities, l0s, zfs = [], {}, {}, {}
    for name, (sae, use_grads) in rows.items():
        acc = accs[name]
        l0 = torch.cat(acc.l0)
        density = acc.fired.double() / count
        zf = afa.zf_data(torch.cat(acc.x_norm).unsqueeze(1), torch.cat(acc.f_norm), sae.cfg.n_latents)
        ce_sae = acc.ce / n_pred
        eps = zf.eps_lbo[torch.isfinite(zf.eps_lbo)]
        records.append({
            "sae": name, "variant": sae.cfg.variant, "n_latents": sae.cfg.n_latents, "k": sae.cfg.k,
            "mode": "grad" if use_grads else "plain",
            "nmse": acc.sq_err / total_var, "l0": float(l0.double().mean()),
            "l0_p10": float(l0.double().quantile(0.1)), "l0_p50": float(l0.double().median()),
            "l0_p90": float(l0.double().quantile(0.9)),
            "dead_fraction": float((acc.fired == 0).double().mean()),
            "dense_fraction": float((density > dense_threshold).double().mean()),
            "ce_clean": ce_clean, "ce_sae": ce_sae, "ce_zero": ce_zero,
            "ce_recovered": (ce_zero - ce_sae) / (ce_zero - ce_clean), "ce_delta": ce_sae - ce_clean,
            "kl": acc.kl / n_pred,
            "eps_lbo_mean": float(eps.mean()) if len(eps) else float("nan"),
            "eps_lbo_median": float(eps.median()) if len(eps) else float("nan"),
            "eval_tokens": count,
        })
        densities[name], l0s[name], zfs[name] = density, l0, zf
    return EvalDetails(pd.DataFrame.from_records(records).set_index("sae"), densities, l0s, zfs)


def evaluate_saes(saes: SparseAutoencoder | dict[str, SparseAutoencoder], model, tokens: torch.Tensor, hook: str,
             **kwargs) -> pd.DataFrame:
    """The metrics table of `evaluate_details` (one row per SAE and inference mode)."""
    return evaluate_details(saes, model, tokens, hook, **kwargs).metrics
