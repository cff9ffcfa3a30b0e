"""The MoTE experiment (Dahlke et al., arXiv 2502.11096) on a zoo MoE model.

1. Score experts by fTRI on training-split harmful and benign prompts, grouped by the
   model's own response (refused / answered).
2. For N in `top_n`, switch off the top-N experts under each ablation policy and
   measure on held-out prompts: harmful refusal rate (relative reduction against the
   unablated model), prose cross-entropy, IOI accuracy. The same for `len(seeds)` sets
   of N random experts (the scored top-N excluded).
3. Force the top-N experts on held-out benign prompts: refusal rate.

`run_mote` returns a `MoteResult` of DataFrames; `write_report` renders it as markdown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from interp import markdown
from interp.atomic import write_text
from interp.config import check_fields, check_positive
from interp.moe.capture import capture_routing
from interp.moe.experts import STATISTICS, refused, score_experts, top_experts
from interp.moe.interventions import POLICIES, ablate, force, random_control
from interp.moe.routing import by_layer, shape
from interp.tasks import ioi, refusal
from interp.tasks.chat import chat_format
from interp.tasks.ioi import ioi_scores
from interp.tasks.prose import prose_ce
from interp.tasks.refusal import refusal_rate

# The targets: some N with at most this fraction of experts ...
MAX_FRACTION = 0.05
MIN_REDUCTION = 0.5  # ... cuts refusal by at least this much (relative) ...
MAX_CE_INCREASE = 0.05  # ... with held-out prose CE up by at most this (relative).


@dataclass(frozen=True)
class MoteConfig:
    """What `run_mote` measures; validated on construction."""

    model: str = "zoo-moe"
    """Model name or directory (`interp.load_model`)."""
    n_train: int = 100
    """Training-split prompts per kind (harmful, benign) for fTRI scoring."""
    n_heldout: int = 100
    """Held-out harmful (ablation) and benign (forcing) prompts."""
    n_prose: int = 50
    """Held-out prose paragraphs for cross-entropy."""
    n_ioi: int = 100
    """Held-out IOI prompts."""
    top_n: tuple[int, ...] = (1, 2, 4, 8)
    """Numbers of top experts to switch off."""
    policies: tuple[str, ...] = field(default=POLICIES, metadata={"choices": POLICIES})
    """Ablation policies (`interp.moe.POLICIES`)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the random-expert controls (one random set per seed and N)."""
    statistic: str = field(default="count", metadata={"choices": STATISTICS})
    """fTRI statistic: 'count' (selection rate) or 'weight' (router probability)."""
    last: int | None = None
    """Score over the last `last` prompt tokens only (None: all prompt tokens)."""
    force_weights: tuple[float | None, ...] = (None, 1.0)
    """Router probabilities for forced experts, one forcing run each (None: just above the top other one)."""
    seed: int = 0
    """Seed of the prompt sets."""

    def __post_init__(self):
        check_fields(self)
        check_positive(self, "n_train", "n_heldout", "n_prose", "n_ioi")
        if not self.top_n or any(n < 1 for n in self.top_n):
            raise ValueError(f"top_n={self.top_n!r} must be a non-empty tuple of positive integers")
        bad = [p for p in self.policies if p not in POLICIES]
        if not self.policies or bad:
            raise ValueError(f"policies={self.policies!r}: allowed a non-empty subset of {', '.join(POLICIES)}")
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds={self.seeds!r} must be distinct integers, at least one")
        if self.statistic not in STATISTICS:
            raise ValueError(f"statistic={self.statistic!r}; allowed: {', '.join(STATISTICS)}")
        if self.last is not None and self.last < 1:
            raise ValueError(f"last={self.last!r} must be a positive integer or None")
        if any(w is not None and not 0 < w <= 1 for w in self.force_weights):
            raise ValueError(f"force_weights={self.force_weights!r}: each must be in (0, 1] or None")


@dataclass
class MoteResult:
    """Everything `run_mote` measured.

    scores: `score_experts` table. classes: response class counts per prompt kind.
    baseline: metrics of the unablated model. ablations: one row per (policy, n,
    selection = 'top' | 'random', seed). summary: one row per (policy, n). forcing: one
    row per forced top-N. n_experts: experts in the model (all layers).
    """

    config: MoteConfig
    scores: pd.DataFrame
    classes: pd.DataFrame
    baseline: dict[str, float]
    ablations: pd.DataFrame
    summary: pd.DataFrame
    forcing: pd.DataFrame
    n_experts: int
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HeldOut:
    """The held-out data every MoE measurement (`measure`) runs on."""

    harmful: list[refusal.ChatPrompt]
    benign: list[refusal.ChatPrompt]
    ioi_pairs: list[ioi.IOIPrompt]
    n_prose: int
    """Held-out prose paragraphs for cross-entropy (`interp.tasks.prose`)."""

    @classmethod
    def draw(cls, model, n_refusal: int, n_ioi: int, n_prose: int, seed: int = 0) -> HeldOut:
        """`n_refusal` harmful and benign prompts, `n_ioi` IOI prompts, all held out, drawn with `seed`."""
        chat = chat_format(model)
        return cls(harmful=refusal.generate(n_refusal, "harmful", "heldout", seed, chat=chat),
                   benign=refusal.generate(n_refusal, "benign", "heldout", seed, chat=chat),
                   ioi_pairs=ioi.generate(n_ioi, "heldout", seed, tokenizer=model), n_prose=n_prose)


def measure(model, heldout: HeldOut, benign: bool = False) -> dict[str, float]:
    """The model's behaviour under whatever hooks are active (ablations, forcing): refusal_rate
    (held-out harmful), prose_ce (nats/token), ioi_accuracy and, with `benign`, refusal_rate_benign."""
    out = dict(refusal_rate=refusal_rate(model, heldout.harmful), prose_ce=prose_ce(model, heldout.n_prose),
               ioi_accuracy=ioi_scores(model, heldout.ioi_pairs).accuracy)
    if benign:
        out["refusal_rate_benign"] = refusal_rate(model, heldout.benign)
    return out


def run_mote(config: MoteConfig = MoteConfig(), model=None,
             progress: bool | Callable[[str], None] | None = True) -> MoteResult:
    """Run the MoTE experiment (module docstring) on `config.model` (or the given `model`).

    `progress`: True shows a tqdm bar over the measurement runs (baseline, every ablation,
    every forcing) and writes each run's figures above it; a function instead receives those
    lines (e.g. `print`); False or None: silent.
    """
    from interp.models import load_model

    t0 = time.perf_counter()
    bar = tqdm(total=0, desc="MoTE runs", unit="run", disable=progress is not True)
    say = bar.write if progress is True else (progress or (lambda _: None))
    model = load_model(config.model) if model is None else model
    n_layers, n_experts, k = shape(model)
    total = n_layers * n_experts
    if max(config.top_n) > total:
        raise ValueError(f"top_n={config.top_n}: the model has only {total} experts")

    train = {kind: refusal.generate(config.n_train, kind, "train", config.seed, chat=chat_format(model))
             for kind in ("harmful", "benign")}
    prompts = [p.prompt for kind in train for p in train[kind]]
    kinds = [kind for kind in train for _ in train[kind]]
    classes = refused(model, prompts)
    class_table = pd.crosstab(pd.Series(kinds, name="kind"), pd.Series(classes, name="refused"))
    say(f"response classes on training prompts:\n{class_table}")
    scores = score_experts(capture_routing(model, prompts), classes, config.statistic, config.last)
    say(f"top experts:\n{scores.head(max(config.top_n)).to_string(index=False)}")

    # every run planned first, so that the bar knows its length
    plan = []
    for n in config.top_n:
        top = top_experts(scores, n)
        controls = random_control(model, n, config.seeds, exclude=top, max_per_layer=n_experts - k)
        sets = [("top", None, top)] + [("random", s, c) for s, c in zip(config.seeds, controls)]
        plan += [(policy, n, selection, seed, experts) for policy in config.policies
                 for selection, seed, experts in sets
                 # refill needs room: too many in one layer cannot be refilled from the top-k
                 if not (policy == "refill" and max(map(len, by_layer(experts).values())) > n_experts - k)]
    forcings = [(n, top_experts(scores, n), weight) for n in config.top_n for weight in config.force_weights
                # more than k forced experts in one layer cannot all be in the top-k
                if max(map(len, by_layer(top_experts(scores, n)).values())) <= k]
    bar.total = 1 + len(plan) + len(forcings)
    bar.refresh()

    heldout = HeldOut.draw(model, config.n_heldout, config.n_ioi, config.n_prose, config.seed)
    baseline = measure(model, heldout, benign=True)
    bar.update()
    say(f"baseline: {baseline}")

    rows = []
    for policy, n, selection, seed, experts in plan:
        with ablate(model, experts, policy):
            m = measure(model, heldout)
        rows.append(dict(policy=policy, n=n, fraction=n / total, selection=selection, seed=seed,
                         experts=str(experts), **m))
        bar.update()
        say(f"{policy:12s} N={n} {selection:6s} seed={seed}: {m}")
    ablations = pd.DataFrame(rows)
    base_rate, base_ce = baseline["refusal_rate"], baseline["prose_ce"]
    ablations["refusal_reduction"] = (base_rate - ablations["refusal_rate"]) / base_rate
    ablations["ce_increase"] = (ablations["prose_ce"] - base_ce) / base_ce

    forcing_rows = []
    for n, top, weight in forcings:
        with force(model, top, weight=weight):
            forcing_rows.append(dict(n=n, experts=str(top), weight="above max" if weight is None else weight,
                                     refusal_rate_benign=refusal_rate(model, heldout.benign),
                                     refusal_rate_harmful=refusal_rate(model, heldout.harmful)))
        bar.update()
        say(f"force N={n}: {forcing_rows[-1]}")
    bar.close()
    result = MoteResult(config=config, scores=scores, classes=class_table, baseline=baseline,
                        ablations=ablations, summary=summarize(ablations), forcing=pd.DataFrame(forcing_rows),
                        n_experts=total)
    result.notes = _observations(result)
    result.seconds = time.perf_counter() - t0
    return result


def _observations(result: MoteResult) -> list[str]:
    """Plain-language readings of the measured tables (no numbers but the measured ones)."""
    notes = []
    top1 = result.scores.iloc[0]
    notes.append(f"fTRI's top expert is layer {int(top1.layer)}, expert {int(top1.expert)} (score {top1.score:.3f}; "
                 f"runner-up {result.scores.iloc[1].score:.3f}).")
    s = result.summary
    if not s.empty:
        gap = s.refusal_reduction - s.random_reduction_mean
        notes.append(f"Top-N ablation beats the random controls by {gap.min():+.0%} to {gap.max():+.0%} "
                     "(relative refusal reduction, over policies and N).")
    if not result.forcing.empty:
        f, base = result.forcing, result.baseline["refusal_rate_benign"]
        peak = f.loc[f.refusal_rate_benign.idxmax()]
        notes.append(f"Forcing the top experts on held-out benign prompts: refusal rate {base:.2f} without, at most "
                     f"{peak.refusal_rate_benign:.2f} with (N={peak.n}, weight {peak.weight}); "
                     + ("raised, as in the paper." if peak.refusal_rate_benign > base else "not raised.")
                     + f" On held-out harmful prompts forcing gives {f.refusal_rate_harmful.min():.2f} to "
                     f"{f.refusal_rate_harmful.max():.2f} (baseline {result.baseline['refusal_rate']:.2f}).")
    return notes


def summarize(ablations: pd.DataFrame) -> pd.DataFrame:
    """One row per (policy, n): the top-N ablation against its random controls (mean ± std)."""
    rows = []
    for (policy, n), group in ablations.groupby(["policy", "n"], sort=False):
        top, rand = group[group.selection == "top"], group[group.selection == "random"]
        if top.empty:
            continue
        t = top.iloc[0]
        rows.append(dict(policy=policy, n=n, fraction=t.fraction, refusal_rate=t.refusal_rate,
                         refusal_reduction=t.refusal_reduction,
                         random_reduction_mean=rand.refusal_reduction.mean(),
                         random_reduction_std=rand.refusal_reduction.std(ddof=0), random_seeds=len(rand),
                         ce_increase=t.ce_increase, random_ce_increase_mean=rand.ce_increase.mean(),
                         ioi_accuracy=t.ioi_accuracy,
                         meets_target=bool(t.fraction <= MAX_FRACTION and t.refusal_reduction >= MIN_REDUCTION
                                           and t.ce_increase <= MAX_CE_INCREASE)))
    return pd.DataFrame(rows)


def _table(df: pd.DataFrame) -> str:
    return markdown.table(df, "{:.4g}", nan="–")  # NaN: not applicable (the seed of a top-N row)


def write_report(result: MoteResult, path: Path, command: str) -> None:
    """Write `result` as a markdown report to `path` (atomically), headed by `command`."""
    cfg, s = result.config, result.summary
    met = s[s.meets_target]
    best = s.loc[s.refusal_reduction.idxmax()] if not s.empty else None
    lines = [
        "# MoTE on the zoo: refusal experts (interp.moe)",
        "",
        "Reproduce (about {:.0f} min on 2 CPU cores):".format(result.seconds / 60),
        "",
        "```bash", command, "```", "",
        f"Config: `{asdict(cfg)}`", "",
        f"Model `{cfg.model}`: {result.n_experts} experts in all; one expert = {1 / result.n_experts:.1%}.",
        "",
        "## 1. fTRI scores (training split, classes = the model's own reply)", "",
        _table(result.classes.reset_index()), "",
        f"Top 10 experts by `{cfg.statistic}` score (mean selection rate over "
        f"{'all prompt tokens' if cfg.last is None else f'the last {cfg.last} prompt tokens'}, refused − answered):",
        "", _table(result.scores.head(10)), "",
        "## 2. Switching the top-N experts off (held-out prompts)", "",
        "Baseline (no ablation): " + ", ".join(f"{k} {v:.4g}" for k, v in result.baseline.items()) + ".", "",
        "refusal_reduction is relative: (baseline − ablated) / baseline refusal rate on held-out harmful "
        "prompts; ce_increase is relative to the baseline prose CE; random = the same N random experts, "
        f"scored top-N excluded, seeds {list(cfg.seeds)} (mean ± std).", "",
        _table(s), "",
        "## 3. Forcing the top-N experts on", "",
        _table(result.forcing) if not result.forcing.empty else "(no top-N fits into the top-k of its layers)", "",
        "## Targets", "",
        f"Some N ≤ {MAX_FRACTION:.0%} of experts cuts refusal by ≥ {MIN_REDUCTION:.0%} (relative) with prose CE "
        f"up ≤ {MAX_CE_INCREASE:.0%}: " + (
            "**met** by " + "; ".join(f"{r.policy} N={r.n} ({r.fraction:.1%} of experts: refusal reduced by "
                                      f"{r.refusal_reduction:.0%}, CE {r.ce_increase:+.2%}; random experts: "
                                      f"{r.random_reduction_mean:+.0%} ± {r.random_reduction_std:.0%})"
                                      for r in met.itertuples())
            if not met.empty else "**missed**" + (f" (best: {best.policy} N={best.n}, refusal reduced by "
                                                   f"{best.refusal_reduction:.0%})" if best is not None else "")),
        "",
        *[f"* {note}" for note in result.notes],
        "",
        "## All runs", "",
        _table(result.ablations), "",
    ]
    write_text(path, "\n".join(lines) + "\n")
