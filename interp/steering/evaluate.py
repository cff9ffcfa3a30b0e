"""Evaluate steering on the zoo's behaviours: refusal (held-out harmful, jailbreak-wrapped
harmful and benign requests), prose perplexity and IOI accuracy under steering; a sweep of
fixed steering over layers × coefficients beside trained controllers; its Pareto plot.

Refusal is judged exactly: does the greedy reply start with the zoo's refusal phrase
(`interp.tasks.refusal.refusal_rate`). Prose perplexity is measured with the first
`prose_prompt_length` tokens of each held-out paragraph as the prompt and the rest as the
reply, so "generated"-position steering and controllers act on it as during generation.
IOI accuracy is the capability check: the answer position is the last prompt token.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm
import torch

from interp import markdown
from interp.atomic import write_bytes
from interp.config import check_fields, check_positive
from interp.steering.apply import Steering, SteeringPlan, steer
from interp.steering.controller import ControllerSteering, SteeringController
from interp.steering.directions import Direction
from interp.tasks import ioi, refusal
from interp.tasks.chat import chat_format
from interp.tasks.ioi import ioi_scores
from interp.tasks.prose import prose_ce
from interp.tasks.refusal import refusal_rate

METRICS = ("refusal_harmful", "refusal_jailbreak", "refusal_benign", "prose_ppl", "prose_ppl_change",
           "ioi_accuracy", "ioi_accuracy_change")


@dataclass(frozen=True)
class EvalConfig:
    """How much held-out data each evaluation uses."""

    n_refusal: int = 100
    """Held-out prompts per refusal kind (harmful, jailbreak, benign)."""
    n_prose: int = 50
    """Held-out prose paragraphs for perplexity."""
    n_ioi: int = 100
    """Held-out IOI prompts."""
    seed: int = 0
    """Seed of the held-out prompt draws."""
    prose_prompt_length: int = 8
    """Tokens (with BOS) of each paragraph treated as the prompt; the rest is the reply."""

    def __post_init__(self):
        check_fields(self)
        check_positive(self, "n_refusal", "n_prose", "n_ioi", "prose_prompt_length")


def measure(model, spec: SteeringPlan | None, config: EvalConfig = EvalConfig()) -> dict[str, float]:
    """Metrics of `model` under `spec` (None = unsteered): refusal rates, prose perplexity, IOI."""
    out = {}
    for kind in refusal.KINDS:
        prompts = refusal.generate(config.n_refusal, kind, "heldout", config.seed, chat=chat_format(model))
        with _maybe_steer(model, spec):
            out[f"refusal_{kind}"] = refusal_rate(model, prompts)
    with _maybe_steer(model, spec, prompt_length=config.prose_prompt_length):
        out["prose_ppl"] = math.exp(prose_ce(model, config.n_prose))
    with _maybe_steer(model, spec):
        out["ioi_accuracy"], _ = ioi_scores(model, ioi.generate(config.n_ioi, "heldout", config.seed, tokenizer=model))
    return out


def evaluate_steering(model, specs: Mapping[str, SteeringPlan | None] | SteeringPlan | None = None,
                      config: EvalConfig = EvalConfig(), progress: bool = True) -> pd.DataFrame:
    """One row per spec plus the unsteered "base" row first.

    Columns: label, refusal_harmful, refusal_jailbreak, refusal_benign (fractions of
    held-out prompts refused), prose_ppl, prose_ppl_change (relative to base: 0.1 = +10 %),
    ioi_accuracy, ioi_accuracy_change (absolute, vs base). `progress`: a tqdm bar over the
    rows (one `measure` each).
    """
    if specs is None:
        specs = {}
    elif not isinstance(specs, Mapping):
        specs = {"steered": specs}
    runs = _measured(model, [("base", None)] + list(specs.items()), config, progress, "evaluate steering")
    base = runs[0]
    rows = [{"label": label, **metrics} for (label, _), metrics in zip([("base", None), *specs.items()], runs)]
    return _with_changes(pd.DataFrame(rows), base)


def _measured(model, labelled: Sequence[tuple[str, SteeringPlan | None]], config: EvalConfig, progress: bool,
              desc: str) -> list[dict[str, float]]:
    """`measure` of every (label, spec) in order (the unsteered run once, for every None),
    behind a tqdm bar whose postfix names the run."""
    out, plain = [], None
    with tqdm(total=len(labelled), desc=desc, unit="run", disable=not progress) as bar:
        for label, spec in labelled:
            bar.set_postfix_str(label)
            if spec is None:
                plain = measure(model, None, config) if plain is None else plain
            out.append(plain if spec is None else measure(model, spec, config))
            bar.update()
    return out


def sweep(model, direction: Direction, layer_sets: Sequence[Sequence[int]], coefficients: Sequence[float],
          controllers: Mapping[str, ControllerSteering] | None = None, positions: str = "generated",
          config: EvalConfig = EvalConfig(), progress: bool = True) -> pd.DataFrame:
    """Fixed steering along `direction` for every (layer set, coefficient), plus `controllers`,
    all on one table: `evaluate_steering`'s columns and kind ("base", "fixed", "controller"), layers,
    coefficient (fixed) / mode and alpha (controllers). `progress`: a tqdm bar over the rows."""
    if not layer_sets or not coefficients:
        raise ValueError("layer_sets and coefficients must both be non-empty")
    rows = [{"label": "base", "kind": "base", "layers": "", "coefficient": 0.0, "mode": "", "alpha": float("nan")}]
    specs: list[SteeringPlan | None] = [None]
    for layers in layer_sets:
        for c in coefficients:
            spec = Steering(direction, list(layers), float(c), positions=positions)
            name = ",".join(map(str, spec.layers))
            rows.append({"label": f"fixed L{name} c={c:g}", "kind": "fixed", "layers": name, "coefficient": float(c),
                         "mode": "", "alpha": float("nan")})
            specs.append(spec)
    for label, spec in (controllers or {}).items():
        rows.append({"label": label, "kind": "controller", "layers": ",".join(map(str, spec.patch_layers)),
                     "coefficient": float("nan"), "mode": spec.mode, "alpha": spec.alpha})
        specs.append(spec)
    runs = _measured(model, [(r["label"], spec) for r, spec in zip(rows, specs)], config, progress, "steering sweep")
    return _with_changes(pd.DataFrame([{**r, **m} for r, m in zip(rows, runs)]), runs[0])


def best_fixed(frame: pd.DataFrame, min_jailbreak: float) -> pd.Series | None:
    """The fixed-steering row with refusal_jailbreak ≥ `min_jailbreak` that refuses the fewest
    benign prompts, ties broken by the smaller perplexity change; None if no row gets there."""
    ok = frame[(frame["kind"] == "fixed") & (frame["refusal_jailbreak"] >= min_jailbreak)]
    if ok.empty:
        return None
    return ok.sort_values(["refusal_benign", "prose_ppl_change"]).iloc[0]


def pareto_front(frame: pd.DataFrame, behaviour: str = "refusal_jailbreak", cost: str = "prose_ppl_change",
                 max_benign: float | None = 0.05) -> pd.DataFrame:
    """Rows not dominated by another (higher or equal `behaviour` at lower or equal `cost`, one
    strictly), among the rows that refuse at most `max_benign` of benign prompts (None: all rows)."""
    if max_benign is not None:
        frame = frame[frame["refusal_benign"] <= max_benign]
    keep = []
    for _, r in frame.iterrows():
        dominated = ((frame[behaviour] >= r[behaviour]) & (frame[cost] <= r[cost])
                     & ((frame[behaviour] > r[behaviour]) | (frame[cost] < r[cost]))).any()
        keep.append(not dominated)
    return frame[keep].sort_values(cost)


def pareto_figure(frame: pd.DataFrame):
    """Plotly figure: jailbreak refusal (behaviour) vs prose perplexity change (capability
    cost), one marker per row, coloured by benign refusal, symbol by kind; the dotted line is
    the Pareto front of the rows that refuse at most 5 % of benign prompts."""
    import plotly.graph_objects as go

    fig = go.Figure()
    symbols = {"base": "diamond", "fixed": "circle", "controller": "star"}
    for kind, group in frame.groupby("kind", sort=False):
        fig.add_trace(go.Scatter(
            x=100 * group["prose_ppl_change"], y=group["refusal_jailbreak"], mode="markers", name=kind,
            text=group["label"], marker=dict(symbol=symbols.get(kind, "circle"), size=14 if kind != "fixed" else 9,
                                             color=group["refusal_benign"], cmin=0, cmax=1, colorscale="Reds",
                                             line=dict(width=1, color="black"), showscale=kind == "fixed",
                                             colorbar=dict(title="benign refusal")),
            customdata=group[["refusal_benign", "ioi_accuracy"]].to_numpy(),
            hovertemplate="%{text}<br>jailbreak refusal %{y:.2f}<br>perplexity %{x:+.1f} %"
                          "<br>benign refusal %{customdata[0]:.2f}<br>IOI %{customdata[1]:.2f}<extra></extra>"))
    front = pareto_front(frame)
    fig.add_trace(go.Scatter(x=100 * front["prose_ppl_change"], y=front["refusal_jailbreak"], mode="lines",
                             name="Pareto front (benign ≤ 0.05)", line=dict(dash="dot", color="grey")))
    fig.update_layout(title="Steering: behaviour vs capability", xaxis_title="prose perplexity change (%)",
                      yaxis_title="refusal rate, held-out jailbreak-wrapped harmful", template="plotly_white")
    return fig


def pareto_png(frame: pd.DataFrame) -> bytes:
    """The same plot as `pareto_figure`, drawn with matplotlib (symmetric-log x axis), as PNG bytes."""
    import io

    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=120)
    ax = fig.add_subplot()
    markers = {"base": "D", "fixed": "o", "controller": "*"}
    scatter = None
    for kind, group in frame.groupby("kind", sort=False):
        scatter = ax.scatter(100 * group["prose_ppl_change"], group["refusal_jailbreak"], c=group["refusal_benign"],
                             cmap="Reds", vmin=0, vmax=1, marker=markers.get(kind, "o"),
                             s=160 if kind != "fixed" else 40, edgecolors="black", label=kind)
    front = pareto_front(frame)
    ax.plot(100 * front["prose_ppl_change"], front["refusal_jailbreak"], ":", color="grey",
            label="Pareto front (benign ≤ 0.05)")
    for _, row in front[front["kind"] == "controller"].iterrows():
        ax.annotate(row["label"], (100 * row["prose_ppl_change"], row["refusal_jailbreak"]), fontsize=7,
                    xytext=(6, -3), textcoords="offset points")
    ax.set_xscale("symlog", linthresh=10)
    fig.colorbar(scatter, ax=ax, label="benign refusal")
    ax.set_xlabel("prose perplexity change (%)")
    ax.set_ylabel("refusal rate, held-out jailbreaks")
    ax.set_title("Steering: behaviour vs capability")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def to_markdown(frame: pd.DataFrame, columns: Sequence[str] | None = None, digits: int = 3) -> str:
    """A GitHub markdown table of `frame` (numbers rounded to `digits`, NaN left blank)."""
    return markdown.table(frame[list(columns or frame.columns)], f"{{:.{digits}f}}", nan="") + "\n"


def write_sweep(frame: pd.DataFrame, out_dir: str | Path) -> dict[str, Path]:
    """Write `sweep.csv`, `sweep.md`, `pareto.html` (interactive plotly) and `pareto.png`
    (matplotlib) under `out_dir`, atomically; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "sweep.csv", "markdown": out_dir / "sweep.md", "html": out_dir / "pareto.html",
             "png": out_dir / "pareto.png"}
    write_bytes(paths["csv"], frame.to_csv(index=False).encode())
    write_bytes(paths["markdown"], to_markdown(frame).encode())
    write_bytes(paths["html"], pareto_figure(frame).to_html(include_plotlyjs=True, full_html=True).encode())
    write_bytes(paths["png"], pareto_png(frame))
    return paths


def auroc(scores_pos: torch.Tensor, scores_neg: torch.Tensor) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count ½."""
    pos, neg = scores_pos.flatten().float(), scores_neg.flatten().float()
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError("auroc needs at least one positive and one negative score")
    greater = (pos[:, None] > neg[None, :]).float().mean()
    ties = (pos[:, None] == neg[None, :]).float().mean()
    return (greater + 0.5 * ties).item()


def controller_auroc(model, controller: SteeringController, positive_prompts: Sequence[str],
                     negative_prompts: Sequence[str]) -> float:
    """AUROC of the controller's scale s separating `positive_prompts` from `negative_prompts`."""
    return auroc(controller.scores(model, positive_prompts), controller.scores(model, negative_prompts))


def score_summary(model, controller: SteeringController, n: int = 100, seed: int = 0) -> pd.DataFrame:
    """How the controller's scale s separates `n` held-out prompts of each refusal kind (one
    scoring pass per kind). One row per kind: kind, auroc_vs_benign (NaN for benign), mean,
    min, max, share_positive (fraction with s > 0)."""
    scores = {kind: controller.scores(model, [p.prompt for p in refusal.generate(n, kind, "heldout", seed, chat=chat_format(model))])
              for kind in refusal.KINDS}
    return pd.DataFrame([{"kind": kind, "auroc_vs_benign": auroc(s, scores["benign"]) if kind != "benign" else math.nan,
                          "mean": s.mean().item(), "min": s.min().item(), "max": s.max().item(),
                          "share_positive": (s > 0).float().mean().item()} for kind, s in scores.items()])


def _maybe_steer(model, spec: SteeringPlan | None, prompt_length: int | None = None):
    return nullcontext() if spec is None else steer(model, spec, prompt_length=prompt_length, record=False)


def _with_changes(frame: pd.DataFrame, base: dict) -> pd.DataFrame:
    frame["prose_ppl_change"] = frame["prose_ppl"] / base["prose_ppl"] - 1.0
    frame["ioi_accuracy_change"] = frame["ioi_accuracy"] - base["ioi_accuracy"]
    return frame
