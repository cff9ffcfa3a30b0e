"""The paper's IOI protocol on any model [paper demo, FarnoushRJ/RelP]:

IOI clean/corrupt pairs of one template (so token positions align), metric = logit
difference (IO - S) at the last position normalised so clean = 1 and corrupt = 0, denoising
direction; [layer, position] maps of resid_pre, attn_out, mlp_out by AP (ground truth), AtP
and RelP; Pearson r of each with AP per component; wall-clock of RelP vs the full AP sweep.
Plus the sparse-feature-circuit comparison: SAE latents ranked by RelP and by IG, and the
faithfulness of their top-n circuits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd
import torch

from interp.atomic import replacing
from interp.patching.attribution import attribution_patching, relevance_patching
from interp.patching.exact import activation_patching
from interp.patching.faithfulness import faithfulness_curve
from interp.patching.inputs import aligned_pair
from interp.patching.integrated_gradients import integrated_gradients
from interp.patching.maps import correlations
from interp.patching.metric import NormalisedLogitDiff
from interp.patching.nodes import DEFAULT_COMPONENTS, SAEHook
from interp.tasks import ioi

DEFAULT_SIZES = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


@dataclass
class IOIInputs:
    """Aligned clean/corrupt token ids (B, T) of one IOI template and its normalised metric."""

    clean: torch.Tensor
    corrupt: torch.Tensor
    metric: NormalisedLogitDiff
    accuracy: float
    """Fraction of clean prompts with logit(IO) > logit(S)."""
    pairs: list = field(repr=False)


def ioi_inputs(model, n: int = 32, split: str = "train", template: int = 0, seed: int = 0) -> IOIInputs:
    """`n` IOI pairs of the `template`-th template of `split` that share one token length,
    tokenised, with the metric calibrated on this model (clean = 1, corrupt = 0)."""
    pool = ioi.templates(split)
    if not isinstance(template, int) or not 0 <= template < len(pool):
        raise ValueError(f"template={template!r} must be an index 0..{len(pool) - 1} into the {split} templates")
    pairs = _equal_length_pairs(model, ioi.generate(4 * n, split, seed, template=pool[template]), n)
    clean, corrupt = aligned_pair(model, [p.prompt for p in pairs], [p.corrupt for p in pairs])
    io = torch.tensor([model.to_single_token(" " + p.io) for p in pairs])
    s = torch.tensor([model.to_single_token(" " + p.s) for p in pairs])
    metric = NormalisedLogitDiff.calibrate(model, clean, corrupt, io, s)
    with torch.no_grad():
        last = model(clean)[:, -1]
    accuracy = (last.gather(1, io[:, None]) > last.gather(1, s[:, None])).float().mean().item()
    return IOIInputs(clean, corrupt, metric, accuracy, pairs)


def _equal_length_pairs(model, candidates: list, n: int) -> list:
    """The first `n` candidates whose prompt has the most common token length. [ours] A template
    that starts with a name ("{A} and {B} walked ...") tokenises the unspaced first name into a
    varying number of tokens; keeping one length keeps every position aligned."""
    lengths = [len(model.to_str_tokens(p.prompt)) for p in candidates]
    mode = max(set(lengths), key=lambda L: (lengths.count(L), -L))
    kept = [p for p, L in zip(candidates, lengths) if L == mode][:n]
    if len(kept) < n:
        raise ValueError(f"n={n}: only {len(kept)} of {len(candidates)} prompts of this template share one token "
                         "length; ask for fewer prompts")
    return kept


@dataclass
class ProtocolResult:
    """Scores of AP, AtP and RelP (tidy), their correlations with AP, and wall-clock seconds."""

    scores: pd.DataFrame
    correlations: pd.DataFrame
    seconds: dict[str, float]
    inputs: IOIInputs = field(repr=False)

    @property
    def speedup(self) -> float:
        """Wall-clock of the full AP sweep / wall-clock of RelP."""
        return self.seconds["ap"] / self.seconds["relp"]


def run_protocol(model, inputs: IOIInputs, components=DEFAULT_COMPONENTS, repeats: int = 3) -> ProtocolResult:
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


def sae_circuits(model, inputs: IOIInputs, sae: SAEHook, sizes=DEFAULT_SIZES, ig_steps: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, faithfulness curves) of SAE latents ranked by RelP and by IG (`ig_steps`) on
    `inputs`; faithfulness is measured on the clean prompts with the latents outside the
    circuit mean-ablated."""
    args = (model, inputs.clean, inputs.corrupt, inputs.metric)
    scores = pd.concat([relevance_patching(*args, components=("sae",), sae=sae),
                        integrated_gradients(*args, components=("sae",), sae=sae, steps=ig_steps)], ignore_index=True)
    curves = faithfulness_curve(scores, list(sizes), model, inputs.clean, inputs.metric, sae=sae)
    return scores, curves


def patch_ioi(model_name: str, method: str, out_dir: str = "results/patching", n: int = 32, split: str = "train",
              template: int = 0, components=DEFAULT_COMPONENTS, steps: int = 10, seed: int = 0) -> tuple[pd.DataFrame, str, str]:
    """Score IOI with one method and write `<out_dir>/ioi-<model>-<method>.csv` and `.png` (heatmaps).

    Returns (scores, csv path, png path)."""
    from pathlib import Path

    import interp
    from interp.patching import METHODS
    from interp.patching.plot import heatmaps

    if method not in METHODS:
        raise ValueError(f"method={method!r}; allowed: {', '.join(METHODS)}")
    model = interp.load_model(model_name)
    inputs = ioi_inputs(model, n, split, template, seed)
    kwargs = {"steps": steps} if method == "ig" else {}
    scores = METHODS[method](model, inputs.clean, inputs.corrupt, inputs.metric, components=tuple(components), **kwargs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"ioi-{Path(model_name).name}-{method}"
    with replacing(stem.with_suffix(".csv")) as tmp:
        scores.to_csv(tmp, index=False)
    heatmaps(scores, path=stem.with_suffix(".png"), tokens=model.to_str_tokens(inputs.clean[0]))
    return scores, str(stem.with_suffix(".csv")), str(stem.with_suffix(".png"))
