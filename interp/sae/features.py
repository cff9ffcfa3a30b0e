"""What one SAE latent means: where it fires in an activation store, what it writes to the
logits, and which latents fire on a text. These are the numbers a feature dashboard shows
(`interp.widgets.FeatureDashboard`); each is a plain function returning a dataclass or a
DataFrame, so a notebook can print or plot it directly.

    index = features.index_store(sae, store)             # one pass over the store, all latents
    features.top_contexts(index, store, latent=7)        # highest-activating token windows
    features.quantile_contexts(index, store, latent=7)   # windows sampled from activation quantiles
    features.activation_histogram(index, latent=7)       # DataFrame of bins
    features.logit_effects(sae, model, latent=7)         # top +/- tokens of W_dec[7] @ W_U
    features.text_activations(sae, model, "Mary went to the store", hook)  # (T, n) per token
    features.nearest_latents(sae, latent=7)              # latents whose decoder rows point closest

The store index keeps every non-zero code entry of every token (k per token for TopK), grouped
by latent and sorted by value, so any per-latent view afterwards is a slice, not a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from interp.sae.module import SparseAutoencoder, code_entries, code_to_dense


@dataclass(frozen=True)
class StoreIndex:
    """Every non-zero latent activation of the tokens of an activation store, grouped by latent.

    Entry `e` says latent `latent_of[e]` fired with `values[e]` on store token `token_index[e]`
    (global index = seq * context_size + pos). Entries of latent `i` are
    `offsets[i]:offsets[i + 1]`, sorted by descending value.
    """

    hook: str
    """The store's hook whose activations were encoded."""
    n_tokens: int
    """Tokens indexed (the first `n_tokens` of the store)."""
    offsets: torch.Tensor
    """(n_latents + 1,) int64 start of each latent's entries."""
    token_index: torch.Tensor
    """(E,) int64 global store index of each entry's token."""
    values: torch.Tensor
    """(E,) float32 activation of each entry (> 0), descending within a latent."""
    tokens: torch.Tensor
    """(n_tokens,) int64 token id of every indexed token."""

    @property
    def n_latents(self) -> int:
        return len(self.offsets) - 1

    @property
    def latent_of(self) -> torch.Tensor:
        """(E,) int64 latent of each entry."""
        return torch.repeat_interleave(torch.arange(self.n_latents), self.offsets.diff())

    def entries(self, latent: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(token_index (m,), values (m,)) of every token on which `latent` fired, by descending value."""
        self._check(latent)
        a, b = int(self.offsets[latent]), int(self.offsets[latent + 1])
        return self.token_index[a:b], self.values[a:b]

    def activation_at(self, latent: int, token_index: torch.Tensor) -> torch.Tensor:
        """Activation of `latent` at global token indices `token_index` (any shape; -1 and tokens
        beyond the index give 0): a float32 tensor of the same shape."""
        where, values = self.entries(latent)
        order = where.argsort()
        where, values = where[order], values[order]
        flat = token_index.reshape(-1)
        out = torch.zeros(len(flat))
        if len(where):
            pos = torch.searchsorted(where, flat).clamp(max=len(where) - 1)
            hit = (flat >= 0) & (where[pos] == flat)
            out[hit] = values[pos[hit]]
        return out.reshape(token_index.shape)

    def summary(self) -> pd.DataFrame:
        """One row per latent: `density` (fraction of indexed tokens on which it fired),
        `max_activation`, `mean_activation` (over the tokens where it fired; 0 for dead latents)."""
        counts = self.offsets.diff()
        sums = torch.zeros(self.n_latents).index_add_(0, self.latent_of, self.values)
        maxima = torch.zeros(self.n_latents)
        fired = counts > 0
        maxima[fired] = self.values[self.offsets[:-1][fired]]  # the first entry is the largest
        return pd.DataFrame({"density": (counts.double() / self.n_tokens).numpy(),
                             "max_activation": maxima.numpy(),
                             "mean_activation": (sums / counts.clamp(min=1)).numpy()},
                            index=pd.RangeIndex(self.n_latents, name="latent"))

    def _check(self, latent: int) -> None:
        if not isinstance(latent, int) or isinstance(latent, bool) or not 0 <= latent < self.n_latents:
            raise ValueError(f"latent={latent!r} is not allowed: an integer in [0, {self.n_latents})")


@torch.no_grad()
def index_store(sae: SparseAutoencoder, store, *, hook: str | None = None, max_tokens: int | None = None,
                batch_size: int = 8192) -> StoreIndex:
    """Encode the store's activations of `hook` (the first `max_tokens` tokens, default all) with
    `sae` in store order and group the non-zero code entries by latent (`StoreIndex`)."""
    if hook is None:
        if len(store.hooks) != 1:
            raise ValueError(f"{store.path} holds several hooks {store.hooks}: pass hook=...")
        hook = store.hooks[0]
    if store.d_model(hook) != sae.cfg.d_in:
        raise ValueError(f"hook={hook!r} of {store.path} has width {store.d_model(hook)} but the SAE's d_in is "
                         f"{sae.cfg.d_in}")
    n_tokens = store.n_tokens if max_tokens is None else max_tokens
    if not 1 <= n_tokens <= store.n_tokens:
        raise ValueError(f"max_tokens={max_tokens} is not allowed: in [1, {store.n_tokens}] (the store's size)")
    latents, where, values, tokens = [], [], [], []
    for batch in store.batches(batch_size, hook=hook, shuffle=False, with_tokens=True):
        keep = batch.index < n_tokens
        if not bool(keep.any()):
            break
        rows, cols, vals = code_entries(sae.encode(batch.acts[keep]))
        fired = vals > 0
        latents.append(cols[fired])
        where.append(batch.index[keep][rows[fired]])
        values.append(vals[fired].float())
        tokens.append(batch.tokens[keep])
    latent_E, where_E, values_E = torch.cat(latents), torch.cat(where), torch.cat(values)
    by_value = values_E.argsort(descending=True, stable=True)
    by_latent = latent_E[by_value].argsort(stable=True)
    order = by_value[by_latent]
    counts = torch.bincount(latent_E, minlength=sae.cfg.n_latents)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
    return StoreIndex(hook, n_tokens, offsets, where_E[order], values_E[order], torch.cat(tokens))


@dataclass(frozen=True)
class Contexts:
    """Token windows around store tokens where a latent fired."""

    latent: int
    token_index: torch.Tensor
    """(M,) int64 global store index of each window's centre token."""
    value: torch.Tensor
    """(M,) float32 the latent's activation on the centre token."""
    tokens: torch.Tensor
    """(M, W) int64 token ids of the windows; -1 where a window leaves its sequence."""
    acts: torch.Tensor
    """(M, W) float32 the latent's activation on every token of the windows (0 outside)."""
    centre: int
    """Column of the centre token in `tokens` / `acts` (= tokens before it)."""

    def __len__(self) -> int:
        return len(self.token_index)


def _contexts(index: StoreIndex, store, latent: int, chosen: torch.Tensor, before: int, after: int) -> Contexts:
    where, values = index.entries(latent)
    centre_M = where[chosen]
    if before < 0 or after < 0:
        raise ValueError(f"before={before}, after={after}: window sizes must be >= 0")
    tokens_MW = store.tokens_of(centre_M, before=before, after=after)
    index_MW = centre_M[:, None] + torch.arange(-before, after + 1)
    acts_MW = index.activation_at(latent, index_MW.masked_fill(tokens_MW < 0, -1))
    return Contexts(latent, centre_M, values[chosen], tokens_MW, acts_MW, before)


def top_contexts(index: StoreIndex, store, latent: int, n: int = 10, *, before: int = 16,
                 after: int = 4) -> Contexts:
    """The `n` store tokens with the highest activation of `latent`, each with `before` tokens of
    context before it and `after` after it (windows stop at their sequence's edges)."""
    if n < 1:
        raise ValueError(f"n={n} is not allowed: a positive number of contexts")
    m = len(index.entries(latent)[0])
    return _contexts(index, store, latent, torch.arange(min(n, m)), before, after)


@dataclass(frozen=True)
class QuantileSample:
    """Contexts drawn from one activation interval of a latent."""

    lower: float
    """Lowest activation of the interval (inclusive)."""
    upper: float
    """Highest activation of the interval (inclusive)."""
    fraction: float
    """Share of the latent's firing tokens that fall in the interval."""
    contexts: Contexts


def quantile_contexts(index: StoreIndex, store, latent: int, n_quantiles: int = 5, per_quantile: int = 3, *,
                      seed: int = 0, before: int = 16, after: int = 4) -> list[QuantileSample]:
    """Contexts sampled uniformly (seeded) from each of `n_quantiles` intervals of equal count of
    the latent's non-zero activations, highest interval first. [ours: Anthropic's "Towards
    Monosemanticity" samples by activation interval; we use equal-count intervals so that each
    interval has samples.] Empty list for a latent that never fired."""
    if n_quantiles < 1 or per_quantile < 1:
        raise ValueError(f"n_quantiles={n_quantiles}, per_quantile={per_quantile}: both must be positive")
    m = len(index.entries(latent)[0])
    _, values = index.entries(latent)
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for q in range(min(n_quantiles, m)):
        a, b = q * m // min(n_quantiles, m), (q + 1) * m // min(n_quantiles, m)  # descending values
        pick = a + torch.randperm(b - a, generator=gen)[:per_quantile].sort().values
        samples.append(QuantileSample(float(values[b - 1]), float(values[a]), (b - a) / m,
                                      _contexts(index, store, latent, pick, before, after)))
    return samples


def activation_histogram(index: StoreIndex, latent: int, bins: int = 30) -> pd.DataFrame:
    """Histogram of the latent's non-zero activations over the indexed tokens: `bins` equal-width
    bins from 0 to its maximum; columns `left`, `right`, `count`. Empty for a dead latent."""
    if bins < 1:
        raise ValueError(f"bins={bins} is not allowed: a positive number of bins")
    _, values = index.entries(latent)
    if len(values) == 0:
        return pd.DataFrame({"left": [], "right": [], "count": []})
    top = float(values[0])
    counts = torch.histc(values, bins=bins, min=0.0, max=top)
    edges = torch.linspace(0.0, top, bins + 1)
    return pd.DataFrame({"left": edges[:-1].numpy(), "right": edges[1:].numpy(), "count": counts.long().numpy()})


def token_strings(model, token_ids) -> list[str]:
    """Each token id decoded on its own (the text a dashboard prints for it)."""
    decode = model.tokenizer.decode
    return [decode([int(t)]) for t in token_ids]


@torch.no_grad()
def logit_effects(sae: SparseAutoencoder, model, latent: int, k: int = 10) -> pd.DataFrame:
    """The `k` tokens whose logits the latent's decoder direction raises most and the `k` it
    lowers most, through the unembedding alone: effect = W_dec[latent] @ W_U (final LayerNorm
    and later layers ignored, as in sae-vis and Neuronpedia; a transcoder's decoder row is what
    it adds to its target, a block output, so to the residual stream). Columns `sign` ("+" / "-"),
    `rank`, `token_id`, `token`, `effect` (logit units per unit of activation)."""
    if not isinstance(latent, int) or not 0 <= latent < sae.cfg.n_latents:
        raise ValueError(f"latent={latent!r} is not allowed: an integer in [0, {sae.cfg.n_latents})")
    if k < 1:
        raise ValueError(f"k={k} is not allowed: a positive number of tokens")
    W_U = model.W_U.detach().float().cpu()  # (d, V)
    if W_U.shape[0] != sae.cfg.d_target:
        raise ValueError(f"the model's d_model={W_U.shape[0]} differs from the width {sae.cfg.d_target} the "
                         "dictionary writes: logit effects need an SAE on the residual stream or a transcoder that "
                         "predicts a block output (e.g. hook_mlp_out)")
    scale = sae.target_scale if sae.cfg.is_transcoder else sae.input_scale  # raw units per unit of activation
    effect_V = (sae.W_dec[latent].detach().float().cpu() / scale.cpu()) @ W_U
    k = min(k, len(effect_V))
    rows = []
    for sign, (vals, ids) in (("+", effect_V.topk(k)), ("-", (-effect_V).topk(k))):
        for rank, (v, i) in enumerate(zip(vals.tolist(), ids.tolist())):
            rows.append({"sign": sign, "rank": rank, "token_id": i, "effect": v if sign == "+" else -v})
    frame = pd.DataFrame(rows)
    frame.insert(3, "token", token_strings(model, frame["token_id"]))
    return frame


@dataclass(frozen=True)
class TextActivations:
    """Every latent's activation on every token of a text."""

    token_ids: torch.Tensor
    """(T,) int64 token ids (BOS first)."""
    tokens: list[str]
    """(T,) each token decoded on its own."""
    acts: torch.Tensor
    """(T, n_latents) float32 latent activations (0 where a latent did not fire)."""

    def top_latents(self, k: int = 5) -> pd.DataFrame:
        """The `k` most active latents of each token: columns `position`, `token`, `rank`, `latent`,
        `activation` (only latents that fired)."""
        vals, ids = self.acts.topk(min(k, self.acts.shape[1]), dim=1)
        rows = [{"position": t, "token": self.tokens[t], "rank": r, "latent": int(ids[t, r]),
                 "activation": float(vals[t, r])}
                for t in range(len(self.tokens)) for r in range(vals.shape[1]) if vals[t, r] > 0]
        return pd.DataFrame(rows, columns=["position", "token", "rank", "latent", "activation"])

    def latent_totals(self, k: int = 10, skip_first: bool = True) -> pd.DataFrame:
        """The `k` latents with the largest summed activation over the text (BOS excluded when
        `skip_first`): columns `latent`, `total`, `max_activation`, `n_tokens` (tokens it fired on)."""
        acts = self.acts[1:] if skip_first and len(self.acts) > 1 else self.acts
        total_N = acts.sum(0)
        vals, ids = total_N.topk(min(k, len(total_N)))
        keep = vals > 0
        ids = ids[keep]
        return pd.DataFrame({"latent": ids.numpy(), "total": vals[keep].numpy(),
                             "max_activation": acts[:, ids].max(0).values.numpy(),
                             "n_tokens": (acts[:, ids] > 0).sum(0).numpy()})


@torch.no_grad()
def text_activations(sae: SparseAutoencoder, model, text: str, hook: str) -> TextActivations:
    """Run `model` on `text` (BOS prepended, truncated to the model's context) and encode the
    activations of `hook` at every token with `sae`."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"text={text!r} is not allowed: a non-empty string")
    if hook not in model.hook_dict:
        raise ValueError(f"hook={hook!r} is not a hook of the model (e.g. blocks.0.hook_resid_pre)")
    ids = model.to_tokens(text, prepend_bos=True)[:, :model.cfg.n_ctx]  # (1, T)
    captured = {}

    def keep(act, hook):
        captured["x"] = act

    model.run_with_hooks(ids, fwd_hooks=[(hook, keep)])
    x_TD = captured["x"][0].reshape(ids.shape[1], -1).float().cpu()
    if x_TD.shape[1] != sae.cfg.d_in:
        raise ValueError(f"hook={hook!r} has width {x_TD.shape[1]} but the SAE's d_in is {sae.cfg.d_in}")
    acts_TN = code_to_dense(sae.encode(x_TD), sae.cfg.n_latents).clamp(min=0)
    token_ids = ids[0].cpu()
    return TextActivations(token_ids, token_strings(model, token_ids), acts_TN)


def contrast_latents(sae: SparseAutoencoder, model, texts: list[str], baseline: list[str], hook: str,
                     k: int = 10) -> pd.DataFrame:
    """The `k` latents whose mean activation per token (BOS excluded) is most above on `texts`
    than on `baseline` (e.g. refusal replies vs compliance replies to similar requests): columns
    `latent`, `mean`, `baseline_mean`, `difference`, `fraction` (of `texts`' tokens it fired on),
    `baseline_fraction`. A latent that fires on everything scores near 0, unlike a total."""
    for name, group in (("texts", texts), ("baseline", baseline)):
        if isinstance(group, str) or not group:
            raise ValueError(f"{name}={group!r} is not allowed: a non-empty list of texts")

    def pooled(group: list[str]) -> torch.Tensor:
        return torch.cat([text_activations(sae, model, t, hook).acts[1:] for t in group])

    a_TN, b_TN = pooled(texts), pooled(baseline)
    diff_N = a_TN.mean(0) - b_TN.mean(0)
    vals, ids = diff_N.topk(min(k, len(diff_N)))
    return pd.DataFrame({"latent": ids.numpy(), "mean": a_TN.mean(0)[ids].numpy(),
                         "baseline_mean": b_TN.mean(0)[ids].numpy(), "difference": vals.numpy(),
                         "fraction": (a_TN[:, ids] > 0).float().mean(0).numpy(),
                         "baseline_fraction": (b_TN[:, ids] > 0).float().mean(0).numpy()})


def search_by_token(index: StoreIndex, token_id: int, k: int = 10) -> pd.DataFrame:
    """Latents that fire most on occurrences of `token_id` in the indexed store tokens: columns
    `latent`, `mean_activation` (over all occurrences, 0 where it did not fire), `fraction`
    (of occurrences on which it fired), `n_occurrences`. Empty when the token never occurs."""
    n_occurrences = int((index.tokens == token_id).sum())
    if n_occurrences == 0:
        return pd.DataFrame({"latent": [], "mean_activation": [], "fraction": [], "n_occurrences": []})
    on_token = index.tokens[index.token_index] == token_id
    latent_E = index.latent_of[on_token]
    sums = torch.zeros(index.n_latents).index_add_(0, latent_E, index.values[on_token])
    counts = torch.bincount(latent_E, minlength=index.n_latents)
    vals, ids = (sums / n_occurrences).topk(min(k, index.n_latents))
    keep = vals > 0
    ids = ids[keep]
    return pd.DataFrame({"latent": ids.numpy(), "mean_activation": vals[keep].numpy(),
                         "fraction": (counts[ids].double() / n_occurrences).numpy(),
                         "n_occurrences": n_occurrences})


def nearest_latents(sae, latent: int, k: int = 8) -> pd.DataFrame:
    """The `k` latents whose decoder rows point closest to `latent`'s: columns latent, cosine
    (cos of the angle between the rows W_dec[i] and W_dec[latent], in (-1, 1]), most similar
    first; `latent` itself is left out."""
    W_ND = sae.W_dec.detach().float()
    n = W_ND.shape[0]
    if isinstance(latent, bool) or not isinstance(latent, int) or not 0 <= latent < n:
        raise ValueError(f"latent={latent!r} must be an int in [0, {n}) for this SAE")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} must be a positive integer")
    unit_ND = W_ND / W_ND.norm(dim=1, keepdim=True).clamp(min=1e-12)
    cos_N = unit_ND @ unit_ND[latent]
    cos_N[latent] = -float("inf")
    top = cos_N.topk(min(k, n - 1))
    return pd.DataFrame({"latent": top.indices.tolist(), "cosine": top.values.tolist()})


def residual_per_activation(sae, latent: int) -> float:
    """‖what one unit of `latent`'s activation adds to the decoder's output‖₂, in the model's
    units (the raw activations the SAE reconstructs, or a transcoder's raw target). For an SAE
    that normalises each token (normalize="layer_norm") it is taken for a token of std 1."""
    row_1D = sae.W_dec[latent].detach().float()[None]
    zero = torch.zeros(1, 1, device=row_1D.device)
    return float(sae.from_sae_space(row_1D, stats=(zero, zero + 1)).norm())


def log_density(summary: pd.DataFrame) -> tuple[np.ndarray, int]:
    """(log10 of the density of every latent that fired, how many never fired) from a
    `StoreIndex.summary()`: what the density histogram bins."""
    density = summary["density"].to_numpy(dtype=float)
    fired = density > 0
    return np.log10(density[fired]), int((~fired).sum())
