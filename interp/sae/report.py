"""The science comparison as Markdown: the metrics table grouped by sparsity level, whether L0
is matched (within 10 % of the level's k), and a plain verdict on each paper's claim computed
from the numbers in the table (nothing here is written by hand)."""

from __future__ import annotations

import pandas as pd
import torch

from interp import markdown
from interp.sae.registry import get_variant

COLUMNS = ["variant", "mode", "l0", "nmse", "dead_fraction", "ce_recovered", "ce_delta", "kl", "eps_lbo_median"]
L0_TOLERANCE = 0.10


def _fixed_k(variant: str) -> bool:
    """Whether `variant` selects k latents per token (else its L0 is its own: top-AFA)."""
    return get_variant(variant).fixed_k


def _level_of(row, levels: list[int]) -> int:
    if not _fixed_k(row["variant"]):  # its L0 is its own: the nearest level it is compared at
        return min(levels, key=lambda k: abs(row["l0"] - k))
    return int(row["k"])


def _matched(row, level: int) -> bool:
    return abs(row["l0"] - level) <= L0_TOLERANCE * level


def _verdict(ok: bool | None) -> str:
    return "not testable here" if ok is None else ("reproduced" if ok else "NOT reproduced")


def _dead_claim(m, variant: str, label: str, levels: list[int], dead: dict[str, tuple[float, int]] | None,
                rows) -> tuple[str, str, str]:
    """Fewer dead latents than TopK: by the training-window definition (no firing in the last
    `dead_tokens` training tokens) where `dead` has both SAEs, else "rare" (never fired on the
    eval set). Testable only at levels where TopK has some (fewer than none is impossible)."""
    window = dead is not None and all(n in dead for n in m["sae"][m["variant"].isin(["topk", variant])])
    word = "dead" if window else "rare"
    if window:
        where = f"no firing in the last {max(t for n, (_, t) in dead.items() if n in set(m['sae'])):,} training tokens"
    else:
        where = f"never fired on the {int(m['eval_tokens'].iloc[0]):,} eval tokens" if "eval_tokens" in m \
            else "never fired on the eval set"
    value = (lambda r: dead[r["sae"]][0]) if window else (lambda r: float(r["dead_fraction"]))
    evidence, oks = [], []
    for lv in levels:
        for _, t in rows("topk", lv).iterrows():
            for _, r in rows(variant, lv).iterrows():
                vt, vr = value(t), value(r)
                if vt == 0:
                    evidence.append(f"k={lv}: topk has no {word} latents, nothing to reduce ({r['sae']} {vr:.3f})")
                    continue
                oks.append(vr < vt)
                evidence.append(f"k={lv}: {r['sae']} {word} {vr:.3f} vs {t['sae']} {vt:.3f}")
    claim = f"{label} has fewer {word} latents ({where}) than TopK (Ayonrinde 2024)"
    return claim, _verdict(all(oks) if oks else None), "; ".join(evidence)


def claims(metrics: pd.DataFrame, dead: dict[str, tuple[float, int]] | None = None,
           d_in: int | None = None) -> list[tuple[str, str, str]]:
    """(claim, verdict, evidence) for each paper's claim, from the metrics table. `dead`: each
    SAE's training-window dead fraction and its window in tokens, by SAE name (None: only the
    eval set's "rare" fraction is known); `d_in`: the SAE input width (top-AFA's claim is about
    L0 > d_in; None: not testable)."""
    m = metrics.reset_index()
    levels = sorted({int(k) for k, v in zip(m["k"], m["variant"]) if _fixed_k(v)})
    m["level"] = [_level_of(r, levels) for _, r in m.iterrows()]
    m["matched"] = [_matched(r, lv) for (_, r), lv in zip(m.iterrows(), m["level"])]
    out = []

    def rows(variant, level, mode="plain"):
        return m[(m["variant"] == variant) & (m["level"] == level) & (m["mode"] == mode)]

    out.append(_dead_claim(m, "mutual_choice", "Mutual Choice", levels, dead, rows))
    out.append(_dead_claim(m, "feature_choice", "Feature Choice", levels, dead, rows))

    evidence, oks = [], []
    for lv in levels:
        t, g = rows("topk", lv), rows("gradient", lv, "grad")
        if len(t) and len(g):
            oks.append(float(g["kl"].iloc[0]) < float(t["kl"].iloc[0])
                       and float(g["ce_delta"].iloc[0]) < float(t["ce_delta"].iloc[0]))
            evidence.append(f"k={lv}: g-SAE[grad] KL {g['kl'].iloc[0]:.4f}, CE delta {g['ce_delta'].iloc[0]:.4f} vs "
                            f"topk KL {t['kl'].iloc[0]:.4f}, CE delta {t['ce_delta'].iloc[0]:.4f}")
    out.append(("g-SAE gives better CE/KL than TopK at equal L0 (Olmo et al. 2025)",
                _verdict(all(oks) if oks else None), "; ".join(evidence)))

    evidence, oks = [], []
    for _, a in m[m["variant"] == "top_afa"].iterrows():
        lv, l0 = int(a["level"]), float(a["l0"])
        t = rows("topk", lv)
        ratio = float(a["nmse"]) / float(t["nmse"].iloc[0]) if len(t) else float("nan")
        text = (f"{a['sae']} L0 {l0:.1f} (nearest level k={lv}, matched: {bool(a['matched'])}); "
                f"NMSE {float(a['nmse']):.4f} = {ratio:.2f} x topk's")
        if d_in is None or l0 <= d_in or not len(t):
            why = ("d_in unknown" if d_in is None else f"L0 <= d_in = {d_in}" if l0 <= d_in else "no topk row")
            evidence.append(f"{text}; not the paper's regime ({why}: the claim is about L0 above d)")
            continue
        oks.append(ratio <= 1.1)
        evidence.append(text)
    if evidence:
        out.append(("top-AFA is competitive with TopK at high L0, above d (Lee et al. 2025)",
                    _verdict(all(oks) if oks else None), "; ".join(evidence)))
    return out


K_QUANTILES = (("p10", 0.1), ("p50", 0.5), ("p90", 0.9))


def k_distribution(metrics: pd.DataFrame, l0: dict[str, torch.Tensor] | None = None) -> pd.DataFrame:
    """Per-token k (active latents) of the rows whose variant picks its own L0 (top-AFA), one
    row each, indexed by SAE name: p10, p50, p90, max and frac_k1 (fraction of tokens with
    k = 1). From `l0` (per-token counts by row name, `EvalDetails.l0`) where it has the row;
    else the quantiles from the metrics' l0_p* columns and max / frac_k1 NaN (not recorded)."""
    m = metrics.reset_index()
    out = {}
    for _, r in m[[not _fixed_k(v) for v in m["variant"]]].iterrows():
        if l0 is not None and r["sae"] in l0:
            k_T = l0[r["sae"]].double()
            out[r["sae"]] = {**{q: float(k_T.quantile(p)) for q, p in K_QUANTILES}, "max": float(k_T.max()),
                             "frac_k1": float((k_T == 1).double().mean())}
        else:
            out[r["sae"]] = {**{q: float(r.get(f"l0_{q}", float("nan"))) for q, _ in K_QUANTILES},
                             "max": float("nan"), "frac_k1": float("nan")}
    return pd.DataFrame.from_dict(out, orient="index", columns=[q for q, _ in K_QUANTILES] + ["max", "frac_k1"])


def k_sentence(name: str, row) -> str:
    """One sentence stating a `k_distribution` row's numbers."""
    text = f"{name}: median k {row['p50']:g}, 80 % of tokens between {row['p10']:g} and {row['p90']:g}"
    if pd.isna(row["max"]):
        return text + " (max and the k = 1 fraction were not recorded)."
    return text + f", at most {row['max']:g}; {row['frac_k1']:.1%} of tokens get a single latent (k = 1)."


def training_dead(cfg, training) -> dict[str, tuple[float, int]]:
    """Each SAE's training-window dead fraction (no firing in its last `dead_tokens` training
    tokens; the window counts only when at least that many tokens were trained) and the window,
    by SAE name (`cfg`: the JobConfig, `training`: its SAETrainResult)."""
    out = {}
    for name, sae, stats in zip(cfg.sae_names(), training.saes, training.stats):
        if training.tokens >= sae.cfg.dead_tokens:
            out[name] = (float(stats.dead_mask(sae.cfg.dead_tokens).float().mean()), sae.cfg.dead_tokens)
    return out


def results_markdown(metrics: pd.DataFrame, cfg, training, l0: dict[str, torch.Tensor] | None = None) -> str:
    """RESULTS.md text for a comparison job (`cfg`: its JobConfig, `training`: its SAETrainResult,
    `l0`: per-token active latents by row name, `EvalDetails.l0`, for top-AFA's k distribution;
    None: its quantiles from the metrics only)."""
    m = metrics.reset_index()
    levels = sorted({int(k) for k, v in zip(m["k"], m["variant"]) if _fixed_k(v)})
    m["level"] = [_level_of(r, levels) for _, r in m.iterrows()]
    m["L0 matched"] = [_matched(r, lv) for (_, r), lv in zip(m.iterrows(), m["level"])]
    dead = training_dead(cfg, training)
    m["train_dead"] = [dead[n][0] if n in dead else float("nan") for n in m["sae"]]
    d_in = training.saes[0].cfg.d_in if training.saes else None
    lines = ["# Do the papers' claims hold on the zoo?", "",
             f"Model `{cfg.model}`, hook `{cfg.hook}`, {training.tokens:,} training tokens per SAE "
             f"({training.steps} steps of {cfg.train.batch_size}), all SAEs trained in one sweep on the same cached "
             f"activations; evaluated on {int(m['eval_tokens'].iloc[0]):,} held-out tokens. Generated by "
             "`interp train-sae --config saes/recipes/compare.toml`.", "",
             "Metrics: nmse = FVU; dead_fraction = latents that never fired on the eval set (rare, not "
             "necessarily dead); train_dead = latents dead by the training definition (no firing in the last "
             "dead_tokens training tokens, at the end of training); ce_recovered, "
             "ce_delta (nats) and kl (nats/token) with the reconstruction spliced in; eps_lbo = AFA's "
             "|‖x‖²−‖f‖²| / ((n−1)‖f‖²), median over tokens. Mutual/Feature Choice are evaluated with their "
             "threshold (JumpReLU) inference, calibrated after training so that its mean L0 on a sample is k, "
             "and as [batch] rows with their training rule applied to each eval batch; g-SAE in both modes.", ""]
    for lv in levels:
        part = m[m["level"] == lv]
        lines += [f"## Sparsity level k = {lv}", "",
                  markdown.table(part[["sae", *COLUMNS, "train_dead", "L0 matched"]], "{:.4g}"), ""]
    dist = k_distribution(metrics, l0)
    if len(dist):
        lines += ["## Per-token k of the variants that choose their own L0 (top-AFA)", "",
                  markdown.table(dist.rename_axis("sae").reset_index(), "{:.4g}", nan="not recorded"), "",
                  *[k_sentence(name, r) for name, r in dist.iterrows()], ""]
    lines += ["## Claims", "", "| claim | verdict | evidence |", "|---|---|---|"]
    lines += [f"| {c} | {v} | {e} |" for c, v, e in claims(metrics, dead, d_in)]
    unmatched = m[~m["L0 matched"]]["sae"].tolist()
    lines += ["", f"Rows whose L0 is not within {L0_TOLERANCE:.0%} of their level: "
              + (", ".join(unmatched) if unmatched else "none") + ".",
              "Single runs, one seed, a 4-layer d=128 model and short training: these verdicts are about this "
              "zoo, not the papers' settings.", ""]
    return "\n".join(lines)
