"""The science comparison as Markdown (saes/RESULTS.md), with Pareto plots beside it.

Rows are grouped over seeds: the members of one [[sae]] table's sweep that differ only in
`seed` are one group, shown as mean ± std over its seeds. Groups sit at sparsity levels (a
fixed-k variant's k; a variant that picks its own L0, top-AFA, at the level nearest its mean
L0). Each paper's claim is tested at every level where it can be, with its uncertainty: a
difference counts only beyond twice its standard error (`outcome`), and the claim's verdict
follows from the levels' outcomes (`verdict`). Nothing here is written by hand.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from interp import markdown
from interp.sae.registry import get_variant

if TYPE_CHECKING:
    from interp.sae.job import JobConfig

MEASURES = ("l0", "nmse", "train_nmse", "dead_fraction", "train_dead", "ce_recovered", "ce_delta", "kl",
            "eps_lbo_median", "selection_change", "task_nmse", "task_ce_recovered", "task_kl")
"""Metric columns averaged over a group's seeds (those present)."""
SHOWN = ("l0", "nmse", "train_nmse", "ce_recovered", "kl", "train_dead", "dead_fraction", "selection_change",
         "task_nmse", "task_ce_recovered")
L0_TOLERANCE = 0.10
SIGMAS = 2.0
"""A difference counts when it exceeds SIGMAS standard errors of the difference of means."""
COMPETITIVE = 1.1
"""top-AFA is "competitive" when its NMSE is not shown to exceed this multiple of TopK's."""
FLAT = 0.02
"""A training run has converged when its fitted NMSE changes by less than this fraction over the
CONVERGENCE_WINDOW of its logged steps before the learning rate starts to decay (the decay itself
lowers the loss by an annealing gain however long the run: `convergence_table`), or by less than
FLAT_ABS (`is_flat`)."""
FLAT_ABS = 1e-3
"""A change of NMSE smaller than this (a thousandth of the input's variance) is flat however large
a fraction it is: a near-exact reconstruction (TopK at k >= d) keeps halving an NMSE of 1e-4."""
CONVERGENCE_WINDOW = 0.2
DEFAULT_AUX = "auxk"
"""The auxiliary loss of the TopK rows a variant is judged against when no TopK row was trained
with its own (`baseline`)."""


def _fixed_k(variant: str) -> bool:
    """Whether `variant` selects k latents per token (else its L0 is its own: top-AFA)."""
    return get_variant(variant).fixed_k


# --- grouping over seeds ---------------------------------------------------------------------
def member_columns(metrics: pd.DataFrame, members, dead: dict[str, tuple[float, int]] | None = None,
                   train_nmse: dict[str, float] | None = None) -> pd.DataFrame:
    """`metrics` (one row per SAE and mode, named <name> or <name>[<mode>]) with the columns
    the summary groups by: member (the SAE's name), family (its [[sae]] table), group (the
    family and its swept values other than seed), seed, aux (`aux_label`), train_dead
    (training-window dead fraction where `dead` has it) and train_nmse (`final_train_nmse`,
    where given). `members`: the job's `SweepMember`s (a one-SAE job's row is named "sae")."""
    m = metrics.copy()
    by_name = {mb.name: mb for mb in members} if len(members) > 1 else {"sae": members[0]}
    names = [re.sub(r"\[[^\]]+\]$", "", str(n)) for n in m.index]
    missing = sorted(set(names) - set(by_name))
    if missing:
        raise ValueError(f"metrics rows {missing} are not SAEs of the job ({sorted(by_name)})")
    m["member"] = names
    m["family"] = [by_name[n].family for n in names]
    m["group"] = [by_name[n].group for n in names]
    m["seed"] = [by_name[n].fields.get("seed", 0) for n in names]
    m["aux"] = [aux_label(by_name[n].fields) for n in names]
    m["train_dead"] = [dead[n][0] if dead and n in dead else float("nan") for n in names]
    if train_nmse is not None:
        m["train_nmse"] = [train_nmse.get(n, float("nan")) for n in names]
    return m


TRAIN_TAIL = 0.05
"""`final_train_nmse` averages the logged training NMSE over this last fraction of the steps."""


def final_train_nmse(members, history: list[dict], tail: float = TRAIN_TAIL) -> dict[str, float]:
    """Each SAE's training NMSE at the end of training, by name: the mean of its logged training
    batches' NMSE over the last `tail` of the logged steps (beside the held-out nmse, the gap
    says how well the SAE carries from its training activations to text it did not see)."""
    out = {}
    for i, mb in enumerate(members):
        own = [h for h in history if h["sae"] == i]
        if own:
            last = max(h["step"] for h in own)
            out[mb.name] = float(np.mean([h["nmse"] for h in own if h["step"] >= (1 - tail) * last - 1e-9]))
    return out


def aux_label(fields: dict) -> str:
    """The auxiliary loss an SAE table trains with: "none" (aux_coef = 0), else its aux_loss."""
    from interp.sae.config import SAEConfig

    return "none" if fields.get("aux_coef", SAEConfig.aux_coef) == 0 else fields.get("aux_loss", SAEConfig.aux_loss)


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (group, mode) of `member_columns`' output, indexed <group> or <group>[<mode>]:
    family, variant, mode, k, aux, n (seeds) and <measure>_mean / <measure>_std (sample std over
    seeds; NaN for one seed) of every measure present, in the order the rows first appear."""
    measures = [c for c in MEASURES if c in rows.columns]
    out = {}
    for (group, mode), part in rows.groupby(["group", "mode"], sort=False):
        first = part.iloc[0]
        entry = {"family": first["family"], "variant": first["variant"], "mode": mode, "k": first["k"],
                 "aux": first.get("aux", DEFAULT_AUX), "n": len(part)}
        for c in measures:
            values = part[c].astype(float)
            entry[f"{c}_mean"] = float(values.mean())
            entry[f"{c}_std"] = float(values.std(ddof=1)) if values.notna().sum() > 1 else float("nan")
        out[group if mode == "plain" else f"{group}[{mode}]"] = entry
    s = pd.DataFrame.from_dict(out, orient="index")
    s.index.name = "group"
    levels = sorted({int(k) for k, v in zip(s["k"], s["variant"]) if _fixed_k(v)})
    s["level"] = [int(r["k"]) if _fixed_k(r["variant"]) or not levels else
                  min(levels, key=lambda lv: abs(r["l0_mean"] - lv)) for _, r in s.iterrows()]
    s["matched"] = [abs(r["l0_mean"] - r["level"]) <= L0_TOLERANCE * r["level"] for _, r in s.iterrows()]
    return s


# --- comparisons with uncertainty --------------------------------------------------------------
def outcome(a, b, measure: str, lower_is_better: bool = True) -> str:
    """Whether summary row `a` is better than row `b` on `measure`: "better" / "worse" when
    the difference of means exceeds SIGMAS standard errors, else "within noise"; with one
    seed on either side (no spread) "better (one seed)" / "worse (one seed)" / "equal"."""
    d = float(a[f"{measure}_mean"]) - float(b[f"{measure}_mean"])
    d = d if lower_is_better else -d
    if a["n"] < 2 or b["n"] < 2:
        return "better (one seed)" if d < 0 else "worse (one seed)" if d > 0 else "equal"
    se = math.sqrt(float(a[f"{measure}_std"]) ** 2 / a["n"] + float(b[f"{measure}_std"]) ** 2 / b["n"])
    return "better" if d < -SIGMAS * se else "worse" if d > SIGMAS * se else "within noise"


def verdict(outcomes: list[str]) -> str:
    """A claim's verdict from its per-level outcomes: reproduced (better at every level tested),
    NOT reproduced (worse somewhere, better nowhere), not separable here (within noise
    everywhere), mixed (the rest), not testable here (no level); "(one seed)" when any
    outcome had no spread to judge by."""
    if not outcomes:
        return "not testable here"
    base = [o.replace(" (one seed)", "") for o in outcomes]
    better, worse = base.count("better"), base.count("worse")
    text = ("reproduced" if better == len(base) else "NOT reproduced" if worse and not better else
            "not separable here" if better == worse == 0 else "mixed")
    single = sum("one seed" in o for o in outcomes)
    return text + ("" if not single else " (one seed: no spread)" if single == len(outcomes) else
                   f" ({single} of {len(outcomes)} rows one seed)")


def baseline(s: pd.DataFrame, aux: str) -> pd.DataFrame:
    """The TopK rows (plain mode) a row trained with auxiliary loss `aux` is judged against:
    those trained with the same one, else those with DEFAULT_AUX (e.g. the Zipf-paper rows'
    aux_zipf against TopK's AuxK, the papers' own comparison)."""
    topk = s[(s["variant"] == "topk") & (s["mode"] == "plain")]
    same = topk[topk["aux"] == aux]
    return same if len(same) else topk[topk["aux"] == DEFAULT_AUX]


def _show(row, measure: str) -> str:
    """mean ± std, the mean alone for one seed, "-" where the row has no value."""
    mean, std = float(row[f"{measure}_mean"]), float(row[f"{measure}_std"])
    if math.isnan(mean):
        return "-"
    return f"{mean:.4g}" if math.isnan(std) else f"{mean:.4g} ± {std:.2g}"


def _dead_claim(s: pd.DataFrame, variant: str, label: str, dead_window: int | None) -> tuple[str, str, str] | None:
    """Fewer dead latents than TopK: the training-window fraction where every row has it, else
    "rare" (never fired on the eval set); testable only at levels where TopK has some. None
    where the job has no `variant`."""
    rows = s[s["variant"].isin(["topk", variant]) & (s["mode"] == "plain")]
    if not (rows["variant"] == variant).any():
        return None
    window = "train_dead_mean" in s and rows["train_dead_mean"].notna().all() and len(rows) > 0
    word, measure = ("dead", "train_dead") if window else ("rare", "dead_fraction")
    where = f"no firing in the last {dead_window:,} training tokens" if window and dead_window else \
        "never fired on the eval set"
    evidence, outcomes = [], []
    for lv in sorted(set(rows["level"])):
        for _, r in rows[(rows["variant"] == variant) & (rows["level"] == lv)].iterrows():
            t = baseline(s, r["aux"])
            for _, tt in t[t["level"] == lv].iterrows():
                if float(tt[f"{measure}_mean"]) == 0:
                    evidence.append(f"k={lv}: {tt.name} has no {word} latents, nothing to reduce ({r.name} "
                                    f"{_show(r, measure)})")
                    continue
                o = outcome(r, tt, measure)
                outcomes.append(o)
                evidence.append(f"k={lv}: {r.name} {_show(r, measure)} vs {tt.name} {_show(tt, measure)}: {o}")
    claim = f"{label} has fewer {word} latents ({where}) than TopK (Ayonrinde 2024)"
    return claim, verdict(outcomes), "; ".join(evidence)


def _gsae_claim(s: pd.DataFrame) -> tuple[str, str, str] | None:
    if not (s["variant"] == "gradient").any():
        return None
    evidence, outcomes = [], []
    for lv in sorted(set(s["level"])):
        g = s[(s["variant"] == "gradient") & (s["level"] == lv) & (s["mode"] == "grad")]
        for _, gr in g.iterrows():
            t = baseline(s, gr["aux"])
            t = t[t["level"] == lv]
            if not len(t):
                continue
            tr = t.iloc[0]
            both = [outcome(gr, tr, "kl"), outcome(gr, tr, "ce_delta")]
            plain = [o.replace(" (one seed)", "") for o in both]
            o = "better" if plain == ["better"] * 2 else "worse" if "worse" in plain and "better" not in plain \
                else "within noise"
            outcomes.append(o + (" (one seed)" if "one seed" in both[0] else ""))
            evidence.append(f"k={lv}: KL {_show(gr, 'kl')} vs {_show(tr, 'kl')}, CE delta {_show(gr, 'ce_delta')} vs "
                            f"{_show(tr, 'ce_delta')}: {outcomes[-1]}")
    return ("g-SAE (gradient-aware selection, [grad] rows) gives lower KL and CE delta than TopK at equal L0 "
            "(Olmo et al. 2025)", verdict(outcomes), "; ".join(evidence))


def interpolate(curve: pd.DataFrame, l0: float, measure: str) -> tuple[float, float] | None:
    """(mean, std) of `measure` on a curve of summary rows at `l0`, linear in log L0 between
    the two rows that bracket it (None outside the curve)."""
    c = curve.sort_values("l0_mean")
    x = np.log(c["l0_mean"].to_numpy(float))
    if not len(c) or not x[0] <= math.log(l0) <= x[-1]:
        return None
    mean = float(np.interp(math.log(l0), x, c[f"{measure}_mean"].to_numpy(float)))
    std = float(np.interp(math.log(l0), x, c[f"{measure}_std"].to_numpy(float)))
    return mean, std


def _vs_topk(row, s: pd.DataFrame) -> str:
    """A row's NMSE over TopK's interpolated at the row's mean L0 (on its `baseline` curve:
    below 1 is better at equal L0); "-" outside the curve's L0 range or for TopK itself."""
    topk = baseline(s, row["aux"])
    if row["variant"] == "topk" or not len(topk):
        return "-"
    at = interpolate(topk, float(row["l0_mean"]), "nmse")
    return "-" if at is None else f"{float(row['nmse_mean']) / at[0]:.3f}"


def _afa_claim(s: pd.DataFrame, d_in: int | None) -> tuple[str, str, str] | None:
    afa = s[s["variant"] == "top_afa"]
    if not len(afa):
        return None
    evidence, outcomes = [], []
    for name, a in afa.sort_values("l0_mean").iterrows():
        topk = baseline(s, a["aux"])
        l0 = float(a["l0_mean"])
        at = interpolate(topk, l0, "nmse")
        if d_in is None or l0 <= d_in or at is None:
            why = "d_in unknown" if d_in is None else f"L0 <= d_in = {d_in}" if l0 <= d_in else \
                "outside TopK's L0 range"
            evidence.append(f"{name} L0 {_show(a, 'l0')}: not tested ({why})")
            continue
        ratio = float(a["nmse_mean"]) / at[0]
        if a["n"] > 1 and not math.isnan(at[1]):
            n_t = int(topk["n"].min())
            se = ratio * math.sqrt((float(a["nmse_std"]) / float(a["nmse_mean"])) ** 2 / a["n"]
                                   + (at[1] / at[0]) ** 2 / n_t)
            o = "worse" if ratio - SIGMAS * se > COMPETITIVE else "better"
            spread = f" ± {se:.2g}"
        else:
            o, spread = ("worse (one seed)" if ratio > COMPETITIVE else "better (one seed)"), ""
        outcomes.append(o)
        evidence.append(f"{name} L0 {_show(a, 'l0')}: NMSE {_show(a, 'nmse')} = {ratio:.2f}{spread} x TopK's at "
                        f"that L0 (interpolated): {'competitive' if o.startswith('better') else 'not competitive'}")
    return (f"top-AFA is competitive with TopK (NMSE within {COMPETITIVE:g} x) at high L0, above d "
            "(Lee et al. 2025)", verdict(outcomes), "; ".join(evidence))


def claims(summary: pd.DataFrame, d_in: int | None = None, dead_window: int | None = None) -> list[tuple[str, str, str]]:
    """(claim, verdict, evidence) for each paper's claim whose variant the table has, from
    `summarize`'s table. `d_in`: the SAE input width (top-AFA's claim is about L0 > d_in; None:
    not testable); `dead_window`: the training-window length of train_dead, in tokens."""
    out = [_dead_claim(summary, "mutual_choice", "Mutual Choice", dead_window),
           _dead_claim(summary, "feature_choice", "Feature Choice", dead_window),
           _gsae_claim(summary), _afa_claim(summary, d_in)]
    return [c for c in out if c is not None]


# --- training length ------------------------------------------------------------------------------
def fitted_change(history: list[dict], window: float = CONVERGENCE_WINDOW, end: float = 1.0) -> tuple[float, float]:
    """(rise, mean) of training NMSE over one SAE's logged steps in the `window` (a fraction of
    the last logged step) that ends at `end` (1: the end of training; 0.8: where a decay over the
    last 20 % starts): a least-squares line through them, its rise over the window (negative:
    still falling) and their mean. NaNs with fewer than 3 logged steps there."""
    steps = np.array([h["step"] for h in history], float)
    nmse = np.array([h["nmse"] for h in history], float)
    if not len(steps):
        return float("nan"), float("nan")
    last = steps.max()
    keep = (steps >= (end - window) * last - 1e-9) & (steps <= end * last + 1e-9)
    if keep.sum() < 3:
        return float("nan"), float("nan")
    slope, _ = np.polyfit(steps[keep], nmse[keep], 1)
    return float(slope * (steps[keep].max() - steps[keep].min())), float(nmse[keep].mean())


def convergence(history: list[dict], window: float = CONVERGENCE_WINDOW, end: float = 1.0) -> float:
    """`fitted_change`'s rise over its mean: the relative change of training NMSE over the window."""
    rise, mean = fitted_change(history, window, end)
    return rise / mean


def is_flat(change: float, level: float) -> bool:
    """Whether NMSE moving by `change` from `level` is flat: by less than FLAT of the level, or by
    less than FLAT_ABS of the variance (False for NaN)."""
    return abs(change) < FLAT * abs(level) or abs(change) < FLAT_ABS


def convergence_table(members, history: list[dict], decay_fraction: float = 0.0) -> pd.DataFrame:
    """Per family: the SAEs; how many are flat (`is_flat` over the CONVERGENCE_WINDOW before the
    last `decay_fraction` of training, where the learning rate decays); the median change
    there and the largest |change| with the SAE it belongs to; and the median change over the
    decay (the annealing gain; NaN without a decay)."""
    own = {mb.name: [h for h in history if h["sae"] == i] for i, mb in enumerate(members)}
    fits = {n: fitted_change(h, end=1 - decay_fraction) for n, h in own.items()}
    before = {n: rise / mean for n, (rise, mean) in fits.items()}
    decay = {n: convergence(h, window=decay_fraction) if decay_fraction else float("nan") for n, h in own.items()}
    rows = []
    for family in dict.fromkeys(mb.family for mb in members):
        mine = {mb.name: before[mb.name] for mb in members if mb.family == family}
        worst = max(mine, key=lambda n: -1 if math.isnan(mine[n]) else abs(mine[n]))
        rows.append({"family": family, "saes": len(mine),
                     "flat": sum(is_flat(*fits[n]) for n in mine),
                     "median change": float(np.median(list(mine.values()))),
                     "largest change (abs)": abs(mine[worst]), "of": worst,
                     "median change over the decay": float(np.median([decay[n] for n in mine]))})
    return pd.DataFrame(rows)


# --- against a shorter run -------------------------------------------------------------------------
LENGTH_MEASURES = ("l0", "nmse", "train_nmse", "ce_recovered", "kl")


def length_table(long: pd.DataFrame, short: pd.DataFrame) -> pd.DataFrame:
    """The groups (and modes) of two `summarize` tables of the same SAEs trained for different
    lengths, `short` then `long`: each LENGTH_MEASURES value in both, NMSE's relative change,
    whether the longer run's NMSE is lower or higher beyond SIGMAS standard errors (`outcome`)
    and whether the change is flat (`is_flat`). Rows in only one table are left out, and
    measures either table lacks."""
    measures = [m for m in LENGTH_MEASURES if f"{m}_mean" in long and f"{m}_mean" in short]
    rows = []
    for name in [n for n in long.index if n in short.index]:
        a, b = long.loc[name], short.loc[name]
        o = outcome(a, b, "nmse").replace("better", "lower").replace("worse", "higher")
        change = float(a["nmse_mean"]) - float(b["nmse_mean"])
        rows.append({"group": name, "n": int(a["n"]),
                     **{f"{m} {when}": _show(r, m) for m in measures for when, r in (("short", b), ("long", a))},
                     "nmse change": change / float(b["nmse_mean"]), "longer run's nmse": o,
                     "flat": is_flat(change, float(b["nmse_mean"]))})
    return pd.DataFrame(rows)


GAP = 1.5
"""Held-out NMSE above this multiple of the training NMSE: the SAEs do not carry to unseen text."""


def _gap_sentence(s: pd.DataFrame) -> list[str]:
    """How the held-out NMSE of the plain rows compares with their training NMSE."""
    if "train_nmse_mean" not in s:
        return []
    plain = s[s["mode"] == "plain"]
    ratio = (plain["nmse_mean"] / plain["train_nmse_mean"]).dropna()
    ratio = ratio[np.isfinite(ratio)]
    if not len(ratio):
        return []
    worst = ratio.idxmax()
    median = float(ratio.median())
    reading = ("the SAEs reconstruct the activations they were trained on far better than those of text the model "
               "did not see" if median > GAP else "the SAEs carry from their training activations to unseen text")
    return [f"On the held-out prose the NMSE is a median {median:.2f} x the training batches' NMSE at the end of "
            f"training (train_nmse; {float(ratio.min()):.2f} to {float(ratio.max()):.2f} x, largest {worst}): "
            f"{reading}.", ""]


def _against_section(run: RunRecord, s: pd.DataFrame, against: RunRecord, where: str) -> list[str]:
    """The report's comparison with `against`, the same SAEs trained for fewer steps (`where`: its
    run directory, as the reader would name it)."""
    if (against.cfg.model, against.cfg.hook) != (run.cfg.model, run.cfg.hook):
        raise ValueError(f"{where} trained on {against.cfg.model} {against.cfg.hook}, this run on {run.cfg.model} "
                         f"{run.cfg.hook}: a length comparison needs the same activations")
    short = run_summary(against)
    table = length_table(s, short)
    if not len(table):
        raise ValueError(f"{where} has none of this run's groups ({', '.join(s.index)}): not the same SAEs")
    ratio = run.steps / against.steps
    n_flat, n = int(table["flat"].sum()), len(table)
    moved = table["longer run's nmse"].str.replace(" (one seed)", "", regex=False)
    before = dict((c, v) for c, v, _ in claims(short, against.d_in, _window(against)))
    after = claims(s, run.d_in, _window(run))
    same = sum(before.get(c) == v for c, v, _ in after)
    lines = [f"## Against {ratio:g} x shorter training", "",
             f"The same SAEs trained for {against.steps} steps ({against.tokens:,} tokens, `{where}`) beside this "
             f"run's {run.steps}. Training {ratio:g} x as long moved NMSE by less than {FLAT:.0%} (or "
             f"{FLAT_ABS:g} of the variance) in {n_flat} of {n} rows; the median change is "
             f"{float(table['nmse change'].median()):+.1%}. {int((moved == 'lower').sum())} rows are lower beyond "
             f"{SIGMAS:g} standard errors, {int((moved == 'higher').sum())} higher, "
             f"{int((moved == 'within noise').sum())} within noise. {same} of {len(after)} claims keep their "
             "verdict.", "",
             markdown.table(table, "{:+.3f}"), "",
             f"| claim | verdict at {against.steps} steps | verdict at {run.steps} steps |", "|---|---|---|"]
    lines += [f"| {c} | {before.get(c, 'not tested')} | {v} |" for c, v, _ in after]
    return lines + [""]


# --- top-AFA's own k ------------------------------------------------------------------------------
K_COLUMNS = {"p10": "l0_p10", "p50": "l0_p50", "p90": "l0_p90", "max": "l0_max", "frac_k1": "l0_frac_k1"}


def k_distribution(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per-token k (active latents) of the rows whose variant picks its own L0 (top-AFA), one
    row each, indexed by row name: p10, p50, p90, max and frac_k1 (fraction of tokens with
    k = 1), from the metrics' l0_* columns (NaN where a column is missing: not recorded)."""
    own = metrics[[not _fixed_k(v) for v in metrics["variant"]]]
    return pd.DataFrame({q: own[c].astype(float) if c in own else float("nan") for q, c in K_COLUMNS.items()},
                        index=own.index)


def k_sentence(name: str, row) -> str:
    """One sentence stating a `k_distribution` row's numbers."""
    text = f"{name}: median k {row['p50']:g}, 80 % of tokens between {row['p10']:g} and {row['p90']:g}"
    if pd.isna(row["max"]):
        return text + " (max and the k = 1 fraction were not recorded)."
    return text + f", at most {row['max']:g}; {row['frac_k1']:.1%} of tokens get a single latent (k = 1)."


@dataclass(frozen=True)
class RunRecord:
    """What the report reads of a finished job, as its run directory holds it (`read_run`)."""

    cfg: "JobConfig"
    metrics: pd.DataFrame
    """Every SAE's rows (all inference modes), indexed by row name (<name> or <name>[<mode>])."""
    history: list[dict]
    """Logged training steps of every SAE, "sae" being its index in `cfg.members()`."""
    dead: dict[str, tuple[float, int]]
    """Training-window dead fraction and window (tokens) by SAE name, where it was measured."""
    steps: int
    tokens: int
    d_in: int
    command: str | None = None
    """The command line that ran the job (None: not recorded)."""


def read_run(run_dir: str | Path) -> RunRecord:
    """A job's run directory (`interp train-sae`'s <out_dir>/<run>/, one SAE or a sweep of
    <name>/ subdirectories) as the report reads it: each SAE's metrics.json, training.json and
    cfg.json."""
    import json

    from interp.config import from_dict
    from interp.errors import MissingFile
    from interp.sae.job import JobConfig

    run_dir = Path(run_dir)
    first = next(iter(sorted(run_dir.glob("*/training.json"))), run_dir / "training.json")
    if not first.is_file():
        raise MissingFile(f"{run_dir} holds no training.json: not a run directory of interp train-sae")
    cfg = from_dict(JobConfig, json.loads(first.read_text())["job"], str(first))
    names = cfg.sae_names()
    frames, history, dead = [], [], {}
    for i, name in enumerate(names):
        d = run_dir if len(names) == 1 else run_dir / name
        training = json.loads((d / "training.json").read_text())
        frames.append(pd.DataFrame(json.loads((d / "metrics.json").read_text())).set_index("sae"))
        history += [{**h, "sae": i} for h in training["history"]]
        if training.get("train_dead"):
            dead[name] = (training["train_dead"]["fraction"], training["train_dead"]["window_tokens"])
    d_in = json.loads(((run_dir if len(names) == 1 else run_dir / names[0]) / "cfg.json").read_text())["d_in"]
    return RunRecord(cfg, pd.concat(frames), history, dead, training["steps"], training["tokens"], d_in,
                     training.get("command"))


def write_report(run_dir: str | Path, path: str | Path, command: str | None = None,
                 against: str | Path | None = None) -> Path:
    """Write the comparison of the run in `run_dir` to `path` (Markdown) with its Pareto plots
    beside it (<stem>-pareto.png and .html); `command`: the command line to state above the
    tables (None: the one that ran the job, as its training.json records it); `against`: the
    run directory of the same SAEs trained for fewer steps, set beside this run's numbers (None:
    the job's `report_against`, if any). Rerunnable on a finished run without training again."""
    from interp.atomic import write_bytes

    path = Path(path)
    run = read_run(run_dir)
    against = against or run.cfg.report_against
    text = results_markdown(run, figures=path.with_name(f"{path.stem}-pareto"), command=command or run.command,
                            against=None if against is None else (read_run(against), str(against)))
    write_bytes(path, text.encode())
    return path


# --- Pareto plots -------------------------------------------------------------------------------
PANELS = (("nmse", "NMSE (FVU), held-out prose"), ("ce_recovered", "CE recovered, held-out prose"),
          ("dead", "dead fraction"))
DEAD_TITLES = {"train_dead": "dead: no firing in the last dead_tokens of training",
               "dead_fraction": "rare: never fired on the eval set (none dead in training)"}


def _curves(summary: pd.DataFrame):
    """(label, rows sorted by L0) per (family, mode): one curve each."""
    for (family, mode), part in summary.groupby(["family", "mode"], sort=False):
        yield (family if mode == "plain" else f"{family}[{mode}]"), part.sort_values("l0_mean")


def _dead_measure(summary: pd.DataFrame) -> str:
    """train_dead where every row has it and some row has dead latents; else the eval set's
    never-fired (rare) fraction, which then says more."""
    train = summary.get("train_dead_mean")
    return "train_dead" if train is not None and train.notna().all() and (train > 0).any() else "dead_fraction"


def pareto_png(summary: pd.DataFrame, path: Path) -> None:
    """NMSE, CE recovered and dead fraction against L0 (log scale), mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dead = _dead_measure(summary)
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    for ax, (measure, title) in zip(axes, PANELS):
        m = dead if measure == "dead" else measure
        ax.set_prop_cycle(color=plt.cm.tab20.colors)  # a sweep has more curves than the default 10 colours
        for label, c in _curves(summary):
            ax.errorbar(c["l0_mean"], c[f"{m}_mean"], xerr=c["l0_std"].fillna(0), yerr=c[f"{m}_std"].fillna(0),
                        marker="o", ms=4, capsize=2, label=label)
        ax.set_xscale("log", base=2)
        if measure == "nmse":
            ax.set_yscale("log")
        ax.set_xlabel("L0 (mean active latents per token)")
        ax.set_title(title if measure != "dead" else DEAD_TITLES[m])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def pareto_html(summary: pd.DataFrame, path: Path) -> None:
    """The same three panels as an interactive plotly page (plotly.js from its CDN)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from interp.atomic import write_bytes

    dead = _dead_measure(summary)
    fig = make_subplots(1, 3, subplot_titles=[t if m != "dead" else DEAD_TITLES[dead] for m, t in PANELS])
    for i, (label, c) in enumerate(_curves(summary)):
        for col, (measure, _) in enumerate(PANELS, start=1):
            m = dead if measure == "dead" else measure
            fig.add_trace(go.Scatter(
                x=c["l0_mean"], y=c[f"{m}_mean"], mode="lines+markers", name=label, legendgroup=label,
                showlegend=col == 1, marker_color=f"hsl({(i * 47) % 360},60%,45%)",
                error_x=dict(type="data", array=c["l0_std"].fillna(0)),
                error_y=dict(type="data", array=c[f"{m}_std"].fillna(0)),
                text=[f"{g}: n={n}" for g, n in zip(c.index, c["n"])], hoverinfo="text+x+y"), row=1, col=col)
            fig.update_xaxes(type="log", title_text="L0", row=1, col=col)
    fig.update_yaxes(type="log", row=1, col=1)
    fig.update_layout(height=480, width=1500, title="SAE variants: mean ± std over seeds")
    write_bytes(path, fig.to_html(include_plotlyjs="cdn", full_html=True).encode())


# --- the report ---------------------------------------------------------------------------------
def run_summary(run: RunRecord) -> pd.DataFrame:
    """`summarize` of a run's rows."""
    members = run.cfg.members()
    return summarize(member_columns(run.metrics, members, run.dead, final_train_nmse(members, run.history)))


def _window(run: RunRecord) -> int | None:
    """The longest training-window length (tokens) a run's dead fractions were measured over."""
    return max((t for _, t in run.dead.values()), default=None)


def results_markdown(run: RunRecord, figures: Path | None = None, command: str | None = None,
                     against: tuple[RunRecord, str] | None = None) -> str:
    """RESULTS.md text for a comparison job (`run`: `read_run` of its directory). `figures`: the
    path stem of the Pareto plots (<stem>.png and <stem>.html are written beside the report and
    linked by name); None: no plots. `command`: the command line that ran the job. `against`:
    (record, run directory) of the same SAEs trained for fewer steps (`length_table`)."""
    cfg = run.cfg
    members = cfg.members()
    rows = member_columns(run.metrics, members, run.dead, final_train_nmse(members, run.history))
    s = summarize(rows)
    window = _window(run)
    seeds = sorted(set(s["n"]))
    n_eval = f"{int(rows['eval_tokens'].iloc[0]):,} tokens" if "eval_tokens" in rows else "the eval tokens"
    held_out = "task_nmse" in rows  # the job's own held-out sets (else the caller's tokens)
    lines = ["# Do the papers' claims hold on the zoo?", "",
             f"Model `{cfg.model}`, hook `{cfg.hook}`; {len(members)} SAEs trained in one sweep on the same cached "
             f"activations, {run.tokens:,} training tokens each ({run.steps} steps of "
             f"{cfg.train.batch_size}, one data order); seeds per row (weight initialisation): "
             f"{', '.join(map(str, seeds))}. Evaluated on "
             + (f"{n_eval} of held-out prose (documents and 32-token windows the training corpus does not have); "
                "task_* columns on held-out task prompts." if held_out else f"{n_eval}."), ""]
    if command:
        lines += ["```bash", command, "```", ""]
    lines += ["Metrics (mean ± std over seeds): nmse = FVU on the held-out prose; train_nmse = the training "
              f"batches' NMSE over the last {TRAIN_TAIL:.0%} of steps (the same SAE on the activations it was "
              "trained on); ce_recovered with the reconstruction spliced in; kl "
              "(nats/token); train_dead = latents with no firing in the last dead_tokens training tokens at the "
              "end of training; dead_fraction = latents that never fired on the eval set (rare, not "
              "necessarily dead); selection_change = the share of a [mode] row's firings that the plain row's "
              "code does not make. Mutual/Feature Choice are evaluated with their threshold (JumpReLU) "
              "inference, calibrated after training to L0 = k on "
              + ("held-out prose that the evaluation does not read" if cfg.calibrate_on == "heldout" else
                 "a training sample") + ", and as [batch] rows with "
              "their training rule applied to each eval batch; g-SAE also as [grad] rows (gradient-aware "
              f"selection). A difference between two rows counts when it exceeds {SIGMAS:g} standard errors of "
              "the difference of their means.", ""]
    if figures is not None:
        pareto_png(s, figures.with_suffix(".png"))
        png, html = figures.with_suffix(".png").name, figures.with_suffix(".html").name
        try:
            pareto_html(s, figures.with_suffix(".html"))
            link = f" ([interactive]({html}))"
        except ImportError:
            link = " (the interactive version needs plotly: pip install 'interp[notebooks]')"
        lines += [f"![NMSE, CE recovered and dead fraction against L0]({png}){link}", ""]
    if run.history:
        decay = cfg.train.decay_fraction
        conv = convergence_table(members, run.history, decay)
        n_flat, n_all = int(conv["flat"].sum()), int(conv["saes"].sum())
        where = (f"the {CONVERGENCE_WINDOW:.0%} of training before the learning rate decays (steps "
                 f"{1 - decay - CONVERGENCE_WINDOW:.0%}-{1 - decay:.0%})" if decay else
                 f"the last {CONVERGENCE_WINDOW:.0%} of training")
        lines += ["## Training length", "",
                  f"{n_flat} of {n_all} SAEs are flat over {where}: a least-squares line through their logged "
                  f"training NMSE changes by less than {FLAT:.0%} of its mean there (or by less than "
                  f"{FLAT_ABS:g}, a thousandth of the variance: a near-exact reconstruction's NMSE keeps halving)."
                  + (f" The learning rate then decays to 0 over the last {decay:.0%}, which lowers the loss "
                     "further by an annealing gain that a converged run has too (last column), so flatness is "
                     "read before it." if decay else ""), "",
                  markdown.table(conv, "{:.3f}"), ""]
        lines += _gap_sentence(s)
    if against is not None:
        lines += _against_section(run, s, *against)
    shown = [c for c in SHOWN if f"{c}_mean" in s]
    for lv in sorted(set(s["level"])):
        part = s[s["level"] == lv]
        table = pd.DataFrame({"group": part.index, "variant": part["variant"], "mode": part["mode"], "n": part["n"],
                              **{c: [_show(r, c) for _, r in part.iterrows()] for c in shown},
                              "aux": part["aux"],
                              "nmse / TopK's at its L0": [_vs_topk(r, s) for _, r in part.iterrows()],
                              "L0 matched": part["matched"]})
        lines += [f"## Sparsity level k = {lv}", "", markdown.table(table), ""]
    dist = k_distribution(rows)
    if len(dist):
        dist = dist.assign(group=rows.loc[dist.index, "group"]).groupby("group", sort=False).mean()
        lines += ["## Per-token k of the variants that choose their own L0 (top-AFA), mean over seeds", "",
                  markdown.table(dist.reset_index(), "{:.4g}", nan="not recorded"), "",
                  *[k_sentence(name, r) for name, r in dist.iterrows()], ""]
    lines += ["## Claims", "", "| claim | verdict | evidence |", "|---|---|---|"]
    lines += [f"| {c} | {v} | {e} |" for c, v, e in claims(s, run.d_in, window)]
    unmatched = s[~s["matched"]].index.tolist()
    lines += ["", f"Rows whose mean L0 is not within {L0_TOLERANCE:.0%} of their level: "
              + (", ".join(unmatched) if unmatched else "none") + ".",
              f"These verdicts are about this zoo model (d_in = {run.d_in}) and this training length, not the "
              "papers' settings.", ""]
    return "\n".join(lines)
