"""The paper's IOI protocol on any model [paper demo, FarnoushRJ/RelP]:

IOI clean/corrupt pairs of one template (so token positions align), metric = logit
difference (IO - S) at the last position normalised so clean = 1 and corrupt = 0, denoising
direction; [layer, position] maps of resid_pre, attn_out, mlp_out by AP (ground truth), AtP
and RelP; Pearson r of each with AP per component; wall-clock of RelP vs the full AP sweep.
Plus the sparse-feature-circuit comparison: SAE latents ranked by RelP and by IG, and the
faithfulness of their top-n circuits. `ioi_study` runs all of it over several templates and
returns every number of the report (`IOIStudy`); `interp.patching.report` renders it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd
import torch

from interp.patching.contrasts import ioi_inputs  # noqa: F401 (re-exported: the IOI contrast)
from interp.patching.attribution import attribution_patching, relevance_patching
from interp.patching.exact import activation_patching
from interp.patching.faithfulness import faithfulness_curve
from interp.patching.integrated_gradients import integrated_gradients
from interp.patching.maps import correlations
from interp.patching.nodes import DEFAULT_COMPONENTS, SAEHook
from interp.patching.pairs import PatchInputs
from interp.tasks import ioi

DEFAULT_SIZES = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


@dataclass
class ProtocolResult:
    """Scores of AP, AtP and RelP (tidy), their correlations with AP, and wall-clock seconds."""

    scores: pd.DataFrame
    correlations: pd.DataFrame
    seconds: dict[str, float]
    inputs: PatchInputs = field(repr=False)

    @property
    def speedup(self) -> float:
        """Wall-clock of the full AP sweep / wall-clock of RelP."""
        return self.seconds["ap"] / self.seconds["relp"]


def run_protocol(model, inputs: PatchInputs, components=DEFAULT_COMPONENTS, repeats: int = 3) -> ProtocolResult:
    """AP, AtP, RelP on `inputs`; RelP and AtP timed as the median of `repeats` runs, AP once."""
    args = (model, inputs.clean, inputs.corrupt, inputs.metric)
    seconds = {}
    start = time.perf_counter()
    ap = activation_patching(*args, components=components)
    seconds["ap"] = time.perf_counter() - start
    out = {}
    for name, fn in (("atp", attribution_patching), ("relp", relevance_patching)):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            out[name] = fn(*args, components=components)
            times.append(time.perf_counter() - start)
        seconds[name] = sorted(times)[len(times) // 2]
    scores = pd.concat([ap, out["atp"], out["relp"]], ignore_index=True)
    return ProtocolResult(scores, correlations(scores, "ap"), seconds, inputs)


def sae_circuits(model, inputs: PatchInputs, sae: SAEHook, sizes=DEFAULT_SIZES, ig_steps: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, faithfulness curves) of SAE latents ranked by RelP and by IG (`ig_steps`) on
    `inputs`; faithfulness is measured on the clean prompts with the latents outside the
    circuit mean-ablated."""
    args = (model, inputs.clean, inputs.corrupt, inputs.metric)
    latents = (sae.component,)
    scores = pd.concat([relevance_patching(*args, components=latents, sae=sae),
                        integrated_gradients(*args, components=latents, sae=sae, steps=ig_steps)], ignore_index=True)
    curves = faithfulness_curve(scores, list(sizes), model, inputs.clean, inputs.metric, sae=sae)
    return scores, curves


@dataclass
class SAEComparison:
    """SAE latents ranked by RelP and by IG on one template (`sae_circuits`)."""

    path: str
    hook: str
    """The SAE's hook, or a transcoder's "input -> target"."""
    n_latents: int
    ig_steps: int
    scores: pd.DataFrame
    """Tidy scores of both methods, one row per (method, latent, position) node."""
    curves: pd.DataFrame
    """Faithfulness against circuit size per method: columns size, method, faithfulness, ..."""
    pearson: float
    """Pearson r between the RelP and IG scores over every latent node."""

    @property
    def n_nodes(self) -> int:
        """(latent, position) nodes scored by each method."""
        return len(self.scores) // 2


def sae_comparison(model, inputs: PatchInputs, sae_path, sizes: tuple[int, ...] | None = None,
                   ig_steps: int = 10) -> SAEComparison:
    """`sae_circuits` of the SAE at `sae_path` on `inputs`, with the Pearson r of RelP and IG."""
    hook = SAEHook.load(sae_path)
    scores, curves = sae_circuits(model, inputs, hook, sizes or DEFAULT_SIZES, ig_steps)
    r = scores.pivot(index="node", columns="method", values="score").corr().loc["relp", "ig"]
    where = hook.hook if hook.target is None else f"{hook.hook} -> {hook.target}"  # a transcoder reads, then writes
    return SAEComparison(str(sae_path), where, hook.sae.cfg.n_latents, ig_steps, scores, curves, float(r))


@dataclass
class IOIStudy:
    """Every number of the IOI protocol report (`results/relp_ioi.md`): the protocol on each
    template, the verification of the first template's top nodes and the SAE comparison."""

    model_name: str
    n_layers: int
    d_model: int
    n: int
    split: str
    seed: int
    templates: pd.DataFrame
    """One row per template: template (index in the split), text, prompts, accuracy, ld_clean, ld_corrupt."""
    correlations: pd.DataFrame
    """Pearson r with AP on the first template: one row per component; columns component, atp, relp."""
    across_templates: pd.DataFrame | None
    """With several templates, per component the mean and min of the per-template r (else None)."""
    seconds: dict[str, float]
    """Wall-clock of AP (the full sweep), AtP and RelP on the first template."""
    checks: pd.DataFrame
    """`verify(...).summary()` of the top-10 AtP and RelP nodes against exact patching."""
    maps: pd.DataFrame = field(repr=False)
    """The first template's tidy scores of AP, AtP and RelP (drawn as heatmaps)."""
    tokens: list[str] = field(default_factory=list)
    """The first clean prompt's tokens, labelling the heatmaps' positions."""
    sae: SAEComparison | None = None

    @property
    def speedup(self) -> float:
        """Wall-clock of the full AP sweep / wall-clock of RelP."""
        return self.seconds["ap"] / self.seconds["relp"]


def correlation_table(results: list[ProtocolResult], labels: list[str]) -> pd.DataFrame:
    """Pearson r per (template label, component) with one column per method."""
    rows = []
    for label, res in zip(labels, results):
        wide = res.correlations.pivot(index="component", columns="method", values="pearson")
        for component, row in wide.iterrows():
            rows.append({"template": label, "component": component, **row.to_dict()})
    return pd.DataFrame(rows)


def top_checks(model, inputs: PatchInputs, scores: pd.DataFrame, top_k: int = 10) -> pd.DataFrame:
    """AtP's and RelP's `top_k` nodes of `scores` re-run with exact activation patching
    (`interp.patching.verify`): one summary row per method."""
    from interp.patching.verify import verify

    return pd.DataFrame([verify(scores[scores["method"] == m], top_k, model, inputs.clean, inputs.corrupt,
                                inputs.metric).summary() for m in ("atp", "relp")])


def ioi_study(model_name: str = "zoo-dense", n: int = 32, split: str = "train", templates: tuple[int, ...] = (0,),
              sae_path: str | None = None, sizes: tuple[int, ...] | None = None, ig_steps: int = 10, seed: int = 0,
              model=None) -> IOIStudy:
    """Run the IOI protocol on each of `templates` of `split` (`n` pairs each); the first template
    also gets the top-10 verification and, with `sae_path`, the SAE-circuit comparison (`sizes`:
    circuit sizes of the faithfulness curves, `ig_steps`: IG steps). `model`: the loaded
    `model_name`, if the caller has it."""
    from interp.models import load_model

    if not templates:
        raise ValueError("templates must name at least one template index")
    model = load_model(model_name) if model is None else model
    inputs = [ioi_inputs(model, n, split, t, seed) for t in templates]
    results = [run_protocol(model, x) for x in inputs]
    first, res = inputs[0], results[0]
    pool = ioi.templates(split)
    table = pd.DataFrame([dict(template=t, text=pool[t], prompts=n, accuracy=x.accuracy,
                               ld_clean=x.metric.clean_value, ld_corrupt=x.metric.corrupt_value)
                          for t, x in zip(templates, inputs)])
    wide = res.correlations.pivot(index="component", columns="method", values="pearson").reset_index()
    across = None
    if len(results) > 1:
        per_template = correlation_table(results, [f"{t}" for t in templates])
        across = per_template.groupby("component")[["atp", "relp"]].agg(["mean", "min"])
        across.columns = [f"{'AtP' if m == 'atp' else 'RelP'} {s}" for m, s in across.columns]
        across = across.reset_index()
    checks = top_checks(model, first, res.scores)
    sae = sae_comparison(model, first, sae_path, sizes, ig_steps) if sae_path else None
    return IOIStudy(model_name=model_name, n_layers=model.cfg.n_layers, d_model=model.cfg.d_model, n=n, split=split,
                    seed=seed, templates=table, correlations=wide, across_templates=across, seconds=res.seconds,
                    checks=checks, maps=res.scores, tokens=model.to_str_tokens(first.clean[0]), sae=sae)


@dataclass
class ContrastStudy:
    """The protocol on one contrast and one model (`contrast_study`): a section of `results/relp.md`."""

    model_name: str
    n_layers: int
    d_model: int
    task: str
    """A key of `interp.patching.contrasts.CONTRASTS`, or the path of a pair file."""
    n: int
    split: str
    seed: int
    accuracy: float
    """Fraction of clean prompts whose answer's logit beats the wrong one's."""
    ld_clean: float
    ld_corrupt: float
    correlations: pd.DataFrame
    """Pearson r with AP: one row per component; columns component, atp, relp."""
    seconds: dict[str, float]
    """Wall-clock of AP (the full sweep), AtP and RelP."""
    maps: pd.DataFrame = field(repr=False)
    """Tidy scores of AP, AtP and RelP (drawn as heatmaps)."""
    tokens: list[str] = field(default_factory=list)
    """The first clean prompt's tokens."""
    sae: SAEComparison | None = None
    checks: pd.DataFrame | None = None
    """AtP's and RelP's top-10 nodes against exact patching (`top_checks`)."""

    @property
    def speedup(self) -> float:
        """Wall-clock of the full AP sweep / wall-clock of RelP."""
        return self.seconds["ap"] / self.seconds["relp"]


def contrast_study(model, model_name: str, task: str, inputs: PatchInputs, split: str = "train", seed: int = 0,
                   sae_path=None, sizes: tuple[int, ...] | None = None, ig_steps: int = 10,
                   repeats: int = 3) -> ContrastStudy:
    """The protocol (`run_protocol`) on `inputs` of contrast `task`, and with `sae_path` the
    SAE-circuit comparison (`sae_comparison`). `split`/`seed` only label how `inputs` were drawn."""
    res = run_protocol(model, inputs, repeats=repeats)
    wide = res.correlations.pivot(index="component", columns="method", values="pearson").reset_index()
    wide.columns.name = None
    sae = sae_comparison(model, inputs, sae_path, sizes, ig_steps) if sae_path else None
    return ContrastStudy(model_name=model_name, n_layers=model.cfg.n_layers, d_model=model.cfg.d_model, task=task,
                         n=int(inputs.clean.shape[0]), split=split, seed=seed, accuracy=inputs.accuracy,
                         ld_clean=inputs.metric.clean_value, ld_corrupt=inputs.metric.corrupt_value,
                         correlations=wide[["component", "atp", "relp"]], seconds=res.seconds, maps=res.scores,
                         tokens=model.to_str_tokens(inputs.clean[0]), sae=sae,
                         checks=top_checks(model, inputs, res.scores))
