"""`results/relp_ioi.md`: the IOI protocol's tables, targets and figures as markdown."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from interp import markdown
from interp.atomic import write_text
from interp.patching.protocol import ProtocolResult

TARGETS = (("relp", "resid_pre", 0.9), ("relp", "mlp_out", 0.9))
"""(method, component, minimum Pearson r with AP) [issue #7]."""
MIN_SPEEDUP = 10.0


@dataclass
class Target:
    name: str
    value: float
    bound: str
    met: bool


def targets(result: ProtocolResult) -> list[Target]:
    """The issue's targets measured on one protocol run."""
    r = result.correlations.set_index(["method", "component"])["pearson"]
    out = [Target(f"RelP Pearson r, {c}", r[m, c], f">= {lo}", bool(r[m, c] >= lo)) for m, c, lo in TARGETS]
    out.append(Target("RelP >= AtP, mlp_out", r["relp", "mlp_out"] - r["atp", "mlp_out"], ">= 0 (difference)",
                      bool(r["relp", "mlp_out"] >= r["atp", "mlp_out"])))
    out.append(Target("AP sweep / RelP wall-clock", result.speedup, f">= {MIN_SPEEDUP:g}x",
                      bool(result.speedup >= MIN_SPEEDUP)))
    return out


def correlation_table(results: list[ProtocolResult], labels: list[str]) -> pd.DataFrame:
    """Pearson r per (template label, component) with one column per method."""
    rows = []
    for label, res in zip(labels, results):
        wide = res.correlations.pivot(index="component", columns="method", values="pearson")
        for component, row in wide.iterrows():
            rows.append({"template": label, "component": component, **row.to_dict()})
    return pd.DataFrame(rows)


PAPER_GPT2 = {"resid_pre": (0.753, 0.968), "attn_out": (0.979, 0.962), "mlp_out": (0.195, 0.992)}
"""[paper] GPT-2 small, Pearson r with AP: component -> (AtP, RelP)."""


def write_ioi_report(model_name: str = "zoo-dense", n: int = 32, split: str = "train",
                     templates: tuple[int, ...] = (0,), sae_path: str | None = None, out: str | Path = "results/relp_ioi.md",
                     sizes: tuple[int, ...] | None = None, ig_steps: int = 10, seed: int = 0) -> Path:
    """Run the IOI protocol on each of `templates` (the first one also for the heatmaps, the
    verification and the SAE comparison) and write the markdown report plus its PNG figures
    (`<out stem>_maps.png`, `<out stem>_faithfulness.png`) beside it. Returns the report's path."""
    import interp
    from interp.patching.nodes import SAEHook
    from interp.patching.plot import faithfulness_plot, heatmaps
    from interp.patching.protocol import DEFAULT_SIZES, ioi_inputs, run_protocol, sae_circuits
    from interp.patching.verify import verify
    from interp.tasks import ioi

    out = Path(out)
    if not templates:
        raise ValueError("templates must name at least one template index")
    model = interp.load_model(model_name)
    inputs = [ioi_inputs(model, n, split, t, seed) for t in templates]
    results = [run_protocol(model, x) for x in inputs]
    first, res = inputs[0], results[0]
    maps_png = out.with_name(out.stem + "_maps.png")
    heatmaps(res.scores, path=maps_png, tokens=model.to_str_tokens(first.clean[0]))
    relp = res.scores[res.scores["method"] == "relp"]
    atp = res.scores[res.scores["method"] == "atp"]
    checks = [verify(s, 10, model, first.clean, first.corrupt, first.metric).summary() for s in (atp, relp)]
    pool = ioi.templates(split)
    labels = [f"{t}" for t in templates]
    lines = [f"# Relevance patching on IOI: {model_name}", "",
             "Reproduce (writes this file and its figures):", "",
             "```bash", f"interp patch protocol --model {model_name} --n {n} --split {split} "
             f"--templates {','.join(map(str, templates))}" + (f" --sae {sae_path}" if sae_path else " --sae none")
             + f" --out {out}", "```", "",
             "## Setup", "",
             f"* Prompts: {n} clean/corrupt IOI pairs per template from `interp.tasks.ioi`, split `{split}`, seed {seed}; "
             "the corrupt prompt swaps the second subject mention for the IO name. Each run uses one template so "
             "that token positions align between all prompts.",
             f"* Split `{split}`: " + ("templates and names that the zoo's training data uses." if split == "train"
             else "templates and names that never occur in an IOI prompt of the zoo's training data.")
             + " The model's accuracy on each template is in the table: patching a behaviour the model does not "
             "have would measure noise.",
             "* Metric [paper]: logit(IO) - logit(S) at the last position, mean over prompts, normalised so that "
             "clean = 1 and corrupt = 0; denoising direction (corrupt run, clean activation patched in).",
             "* Maps: scores summed over batch and d_model into [layer, position] for resid_pre, attn_out, mlp_out; "
             "ground truth = activation patching (AP) of every (layer, position); Pearson r of flattened maps.",
             "* RelP rules: the paper's default (LN + identity + half; AH off).", "",
             "| template | text | prompts | accuracy | LD clean | LD corrupt |", "|---|---|---|---|---|---|"]
    for t, x in zip(templates, inputs):
        lines.append(f"| {t} | `{pool[t]}` | {n} | {x.accuracy:.3f} | {x.metric.clean_value:.2f} | "
                     f"{x.metric.corrupt_value:.2f} |")
    wide = res.correlations.pivot(index="component", columns="method", values="pearson").reset_index()
    wide["paper GPT-2 AtP"] = [PAPER_GPT2[c][0] for c in wide["component"]]
    wide["paper GPT-2 RelP"] = [PAPER_GPT2[c][1] for c in wide["component"]]
    lowest = wide.loc[wide["atp"].idxmin()]
    n_better = int((wide["relp"] >= wide["atp"]).sum())
    lines += ["", f"## Pearson r with activation patching (template {templates[0]})", "",
              markdown.table(wide.rename(columns={"atp": "AtP", "relp": "RelP"})), "",
              f"AtP's lowest r here is {lowest['atp']:.3f} ({lowest['component']}); RelP >= AtP on {n_better} of "
              f"{len(wide)} components. The paper's large AtP failure (GPT-2 small mlp_out r = 0.195) does not "
              f"appear on {model_name} ({model.cfg.n_layers} layers, d_model {model.cfg.d_model}), so the two "
              "methods differ by little here; the rules themselves are checked by tests/patching.", ""]
    if len(results) > 1:
        table = correlation_table(results, labels)
        summary = table.groupby("component")[["atp", "relp"]].agg(["mean", "min"])
        summary.columns = [f"{'AtP' if m == 'atp' else 'RelP'} {s}" for m, s in summary.columns]
        lines += [f"Across templates {', '.join(labels)} (mean and min of the per-template r):", "",
                  markdown.table(summary.reset_index()), ""]
    lines += ["## Wall-clock (same machine, same inputs)", "",
              "| method | seconds |", "|---|---|",
              *[f"| {k} | {v:.3f} |" for k, v in res.seconds.items()],
              "", f"AP sweep / RelP = **{res.speedup:.1f}x** (AP: every node of the three components, batched over "
              "nodes; AtP/RelP: median of 3 runs, each a clean forward + corrupt forward + one backward).", "",
              "## Targets (issue #7)", "", "| target | value | bound | met |", "|---|---|---|---|",
              *[f"| {t.name} | {t.value:.3f} | {t.bound} | {'yes' if t.met else 'NO'} |" for t in targets(res)],
              "", "## Verification of the top-10 nodes against exact patching (`interp.patching.verify`)", "",
              markdown.table(pd.DataFrame(checks)), "",
              "## Maps", "", f"![AP, AtP and RelP maps]({maps_png.name})", ""]
    if sae_path:
        sae = SAEHook.load(sae_path)
        scores, curves = sae_circuits(model, first, sae, sizes or DEFAULT_SIZES, ig_steps)
        faith_png = out.with_name(out.stem + "_faithfulness.png")
        faithfulness_plot(curves, faith_png, title=f"SAE latents at {sae.hook}: faithfulness")
        wide_f = curves.pivot(index="size", columns="method", values="faithfulness").reset_index()
        r_sae = scores.pivot(index="node", columns="method", values="score").corr().loc["relp", "ig"]
        lines += ["## Sparse feature circuits: SAE latents ranked by RelP and by IG", "",
                  f"* SAE: `{sae_path}` (hook `{sae.hook}`, {sae.sae.cfg.n_latents} latents), spliced in with its "
                  "error term so the forward is unchanged; nodes = (latent, position), "
                  f"{len(scores) // 2} in all.",
                  f"* Ranking: |RelP| and |IG| ({ig_steps} steps) on the same prompts (template {templates[0]}); "
                  f"Pearson r between the two scores over all latent nodes: {r_sae:.3f}.",
                  "* Faithfulness F(C) = (m(C) - m(empty)) / (m(M) - m(empty)) on the clean prompts, latents "
                  "outside C mean-ablated (mean over the prompts, per position); the error term is kept.", "",
                  markdown.table(wide_f.rename(columns={"relp": "RelP", "ig": "IG"})), "",
                  f"![faithfulness vs circuit size]({faith_png.name})", ""]
    return write_text(out, "\n".join(lines))
