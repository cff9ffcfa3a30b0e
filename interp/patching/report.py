"""What the patching commands write: `results/relp_ioi.md`, an `IOIStudy`
(`interp.patching.protocol.ioi_study`) rendered as markdown plus its PNG figures;
`results/relp.md`, one `ContrastStudy` per (model, contrast) with the command that reproduces
each table (`write_contrast_report`); and one method's scores as CSV plus heatmaps (`write_scores`). Rendering computes nothing new: the
targets' met/NO and every verdict sentence follow from the study's numbers and the bounds
stated here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from interp import markdown
from interp.atomic import replacing, write_text
from interp.patching.protocol import ContrastStudy, IOIStudy
from interp.targets import Target
from interp.targets import table as targets_table

TARGETS = (("relp", "resid_pre", 0.9), ("relp", "mlp_out", 0.9))
"""(method, component, minimum Pearson r with AP) [issue #7]."""
MIN_SPEEDUP = 10.0
FAIL_R = 0.9
"""[ours] A method fails to track AP on a component where its Pearson r is below this (the targets' bound)."""
CLOSE_R = 0.05
"""[ours] AtP and RelP differ by little where their Pearson r differ by at most this."""

PAPER_GPT2 = {"resid_pre": (0.753, 0.968), "attn_out": (0.979, 0.962), "mlp_out": (0.195, 0.992)}
"""[paper] GPT-2 small, Pearson r with AP: component -> (AtP, RelP)."""


def targets(study: IOIStudy) -> list[Target]:
    """The issue's targets measured on the study's first template."""
    r = study.correlations.set_index("component")
    out = [Target(f"RelP Pearson r, {c}", r.loc[c, m], ">=", lo) for m, c, lo in TARGETS]
    out.append(Target("RelP >= AtP, mlp_out", r.loc["mlp_out", "relp"] - r.loc["mlp_out", "atp"], ">=", 0,
                      " (difference)"))
    out.append(Target("AP sweep / RelP wall-clock", study.speedup, ">=", MIN_SPEEDUP, "x"))
    return out


def _listed(components, r: pd.DataFrame) -> str:
    return ", ".join(f"{c} (AtP {r.loc[c, 'atp']:.3f}, RelP {r.loc[c, 'relp']:.3f})" for c in components)


def comparison(study: IOIStudy) -> str:
    """The verdict on AtP against RelP, from the first template's correlations with AP: where
    each method fails (r < `FAIL_R`) and the other does not, whether the paper's AtP failure
    appears, and whether the two differ by more than `CLOSE_R`."""
    r = study.correlations.set_index("component")
    atp, relp = r["atp"], r["relp"]
    model = f"{study.model_name} ({study.n_layers} layers, d_model {study.d_model})"
    paper = f"The paper's large AtP failure (GPT-2 small mlp_out r = {PAPER_GPT2['mlp_out'][0]})"
    atp_fails = [c for c in r.index if atp[c] < FAIL_R <= relp[c]]
    relp_fails = [c for c in r.index if relp[c] < FAIL_R <= atp[c]]
    both_fail = [c for c in r.index if max(atp[c], relp[c]) < FAIL_R]
    lowest = atp.idxmin()
    lines = [f"AtP's lowest r here is {atp[lowest]:.3f} ({lowest}); RelP >= AtP on {int((relp >= atp).sum())} of "
             f"{len(r)} components."]
    if atp_fails:
        where = ("on mlp_out, as in the paper" if "mlp_out" in atp_fails
                 else "though not on mlp_out, where the paper saw it")
        lines.append(f"{paper} appears on {model}, {where}: AtP's r is below {FAIL_R:g} where RelP's is not on "
                     f"{_listed(atp_fails, r)}.")
    else:
        lines.append(f"{paper} does not appear on {model}"
                     + (f": AtP's r is at least {FAIL_R:g} on every component." if not both_fail else "."))
    if both_fail:
        lines.append(f"Neither method reaches r {FAIL_R:g} on {_listed(both_fail, r)}.")
    if relp_fails:
        lines.append(f"RelP's r is below {FAIL_R:g} where AtP's is not on {_listed(relp_fails, r)}.")
    gap = relp - atp
    widest = gap.abs().idxmax()
    lines.append(("The two methods differ by little here" if abs(gap[widest]) <= CLOSE_R else "The two methods differ")
                 + f" (largest gap RelP - AtP = {gap[widest]:+.3f}, {widest}); the rules themselves are checked by "
                 "tests/patching.")
    return " ".join(lines)


def _figure_paths(out: Path) -> tuple[Path, Path]:
    return out.with_name(out.stem + "_maps.png"), out.with_name(out.stem + "_faithfulness.png")


def ioi_markdown(study: IOIStudy, out: str | Path) -> str:
    """The report's markdown text for `study`, written to `out` (which names the figures beside it)."""
    out = Path(out)
    maps_png, faith_png = _figure_paths(out)
    templates = study.templates["template"].tolist()
    labels = [f"{t}" for t in templates]
    sae_flag = f" --sae {study.sae.path}" if study.sae else " --sae none"
    lines = [f"# Relevance patching on IOI: {study.model_name}", "",
             "Reproduce (writes this file and its figures):", "",
             "```bash", f"interp patch protocol --model {study.model_name} --n {study.n} --split {study.split} "
             f"--templates {','.join(labels)}{sae_flag} --out {out}", "```", "",
             "## Setup", "",
             f"* Prompts: {study.n} clean/corrupt IOI pairs per template from `interp.tasks.ioi`, split "
             f"`{study.split}`, seed {study.seed}; the corrupt prompt swaps the second subject mention for the IO "
             "name. Each run uses one template so that token positions align between all prompts.",
             f"* Split `{study.split}`: " + ("templates and names that the zoo's training data uses."
                                             if study.split == "train" else
                                             "templates and names that never occur in an IOI prompt of the zoo's "
                                             "training data.")
             + " The model's accuracy on each template is in the table: patching a behaviour the model does not "
             "have would measure noise.",
             "* Metric [paper]: logit(IO) - logit(S) at the last position, mean over prompts, normalised so that "
             "clean = 1 and corrupt = 0; denoising direction (corrupt run, clean activation patched in).",
             "* Maps: scores summed over batch and d_model into [layer, position] for resid_pre, attn_out, mlp_out; "
             "ground truth = activation patching (AP) of every (layer, position); Pearson r of flattened maps.",
             "* RelP rules: the paper's default (LN + identity + half; AH off).", "",
             "| template | text | prompts | accuracy | LD clean | LD corrupt |", "|---|---|---|---|---|---|"]
    for row in study.templates.itertuples():
        lines.append(f"| {row.template} | `{row.text}` | {row.prompts} | {row.accuracy:.3f} | {row.ld_clean:.2f} | "
                     f"{row.ld_corrupt:.2f} |")
    wide = study.correlations.copy()
    wide["paper GPT-2 AtP"] = [PAPER_GPT2[c][0] for c in wide["component"]]
    wide["paper GPT-2 RelP"] = [PAPER_GPT2[c][1] for c in wide["component"]]
    lines += ["", f"## Pearson r with activation patching (template {templates[0]})", "",
              markdown.table(wide.rename(columns={"atp": "AtP", "relp": "RelP"})), "",
              comparison(study), ""]
    if study.across_templates is not None:
        lines += [f"Across templates {', '.join(labels)} (mean and min of the per-template r):", "",
                  markdown.table(study.across_templates), ""]
    lines += ["## Wall-clock (same machine, same inputs)", "",
              "| method | seconds |", "|---|---|",
              *[f"| {k} | {v:.3f} |" for k, v in study.seconds.items()],
              "", f"AP sweep / RelP = **{study.speedup:.1f}x** (AP: every node of the three components, batched over "
              "nodes; AtP/RelP: median of 3 runs, each a clean forward + corrupt forward + one backward).", "",
              "## Targets (issue #7)", "", targets_table(targets(study)),
              "", "## Verification of the top-10 nodes against exact patching (`interp.patching.verify`)", "",
              markdown.table(study.checks), "",
              "## Maps", "", f"![AP, AtP and RelP maps]({maps_png.name})", ""]
    if study.sae:
        sae = study.sae
        wide_f = sae.curves.pivot(index="size", columns="method", values="faithfulness").reset_index()
        lines += ["## Sparse feature circuits: SAE latents ranked by RelP and by IG", "",
                  f"* SAE: `{sae.path}` (hook `{sae.hook}`, {sae.n_latents} latents), spliced in with its "
                  "error term so the forward is unchanged; nodes = (latent, position), "
                  f"{sae.n_nodes} in all.",
                  f"* Ranking: |RelP| and |IG| ({sae.ig_steps} steps) on the same prompts (template {templates[0]}); "
                  f"Pearson r between the two scores over all latent nodes: {sae.pearson:.3f}.",
                  "* Faithfulness F(C) = (m(C) - m(empty)) / (m(M) - m(empty)) on the clean prompts, latents "
                  "outside C mean-ablated (mean over the prompts, per position); the error term is kept.", "",
                  markdown.table(wide_f.rename(columns={"relp": "RelP", "ig": "IG"})), "",
                  f"![faithfulness vs circuit size]({faith_png.name})", ""]
    return "\n".join(lines)


def write_ioi_figures(study: IOIStudy, out: str | Path) -> list[Path]:
    """Write the heatmaps (`<out stem>_maps.png`) and, with an SAE comparison, the faithfulness
    curves (`<out stem>_faithfulness.png`) beside `out`; returns the paths written."""
    from interp.patching.plot import faithfulness_plot, heatmaps

    maps_png, faith_png = _figure_paths(Path(out))
    heatmaps(study.maps, path=maps_png, tokens=study.tokens)
    if not study.sae:
        return [maps_png]
    faithfulness_plot(study.sae.curves, faith_png, title=f"SAE latents at {study.sae.hook}: faithfulness")
    return [maps_png, faith_png]


def write_ioi_report(study: IOIStudy, out: str | Path = "results/relp_ioi.md") -> Path:
    """Write the figures and the markdown report of `study` to `out` (atomically); returns its path."""
    write_ioi_figures(study, out)
    return write_text(Path(out), ioi_markdown(study, out))


def protocol_command(models: list[str], n: int, split: str, seed: int, out: str | Path,
                     tasks: list[str] | None = None, pairs: str | None = None, sae: str | None = None) -> str:
    """The `interp patch protocol` command line that writes the contrast report `out` (`sae`:
    the SAE directory of its feature-circuit sections, None: none)."""
    what = f"--pairs {pairs}" if pairs else f"--task {','.join(tasks or [])} --n {n} --split {split} --seed {seed}"
    return f"interp patch protocol {what} --model {','.join(models)}{f' --sae {sae}' if sae else ''} --out {out}"


def contrast_verdict(correlations: pd.DataFrame) -> str:
    """How RelP and AtP compare on one run, from its Pearson r with AP per component
    (columns component, atp, relp): on how many components each is ahead, by more than
    `CLOSE_R` where it is, and where each falls below `FAIL_R`."""
    r = correlations.set_index("component")
    gap = r["relp"] - r["atp"]
    ahead = [c for c in r.index if gap[c] > 0]
    clear = [c for c in ahead if gap[c] > CLOSE_R]
    behind = [c for c in r.index if gap[c] < -CLOSE_R]
    lines = [f"RelP beats AtP on {len(ahead)} of {len(r)} components"
             + (f" (by more than {CLOSE_R:g} on {', '.join(clear)})" if clear else "")
             + (f"; AtP beats RelP by more than {CLOSE_R:g} on {_listed(behind, r)}" if behind else "") + "."]
    for name, col in (("RelP", "relp"), ("AtP", "atp")):
        low = [c for c in r.index if r.loc[c, col] < FAIL_R]
        if low:
            lines.append(f"{name}'s r is below {FAIL_R:g} on {', '.join(low)}.")
    return " ".join(lines)


def overall_verdict(studies: list[ContrastStudy]) -> str:
    """The verdict over every (model, contrast, component) cell of `studies`: where RelP's r
    exceeds AtP's, and the runs on which AtP is ahead by more than `CLOSE_R`."""
    cells = [(s, row) for s in studies for row in s.correlations.itertuples()]
    ahead = sum(row.relp > row.atp for _, row in cells)
    behind = [f"{s.task} on {s.model_name} ({row.component}: AtP {row.atp:.3f}, RelP {row.relp:.3f})"
              for s, row in cells if row.relp < row.atp - CLOSE_R]
    clear = sum(row.relp > row.atp + CLOSE_R for _, row in cells)
    text = (f"Over {len(studies)} runs, RelP's Pearson r with AP exceeds AtP's on {ahead} of {len(cells)} "
            f"(model, contrast, component) cells, by more than {CLOSE_R:g} on {clear}")
    models = list(dict.fromkeys(s.model_name for s, _ in cells))
    if len(models) > 1:
        text += " (" + "; ".join(f"{m}: {sum(row.relp > row.atp for s, row in cells if s.model_name == m)} of "
                                 f"{sum(s.model_name == m for s, _ in cells)}" for m in models) + ")"
    text += ". "
    if behind:
        text += f"AtP is ahead by more than {CLOSE_R:g} on {len(behind)}: {'; '.join(behind)}."
    else:
        text += f"AtP is nowhere ahead by more than {CLOSE_R:g}."
    return text


def _maps_path(out: Path, study: ContrastStudy) -> Path:
    label = Path(study.task).stem if study.task.endswith(".jsonl") else study.task
    return out.with_name(f"{out.stem}_{label}_{Path(study.model_name).name}_maps.png")


def contrast_markdown(studies: list[ContrastStudy], out: str | Path, command: str) -> str:
    """The contrast report's markdown: `command` (which wrote it) at the top, then per study its
    setup, the command that reproduces its table alone, the table and its verdict."""
    from interp.patching.contrasts import CONTRASTS

    out = Path(out)
    lines = ["# Relevance patching against activation patching on several contrasts", "",
             "Reproduce the whole file (and its figures):", "", "```bash", command, "```", "",
             "* Protocol [paper]: per contrast, clean/corrupt pairs of one token length; metric = logit difference "
             "answer - wrong at the last position, mean over pairs, normalised so clean = 1 and corrupt = 0; "
             "denoising direction. AP (activation patching of every [layer, position] node of resid_pre, attn_out, "
             "mlp_out) is the ground truth; AtP and RelP (the paper's default rules: LN + identity + half) are "
             "scored by the Pearson r of their maps with AP's.",
             f"* Verdicts are computed from the numbers: 'beats' = higher r; a gap counts as clear above "
             f"{CLOSE_R:g}; a method fails to track AP on a component below r {FAIL_R:g}.",
             "* Wall-clock: AP once; AtP and RelP median of 3 runs; same machine, same inputs.", "",
             "## Verdict", "", overall_verdict(studies), ""]
    for s in studies:
        c = CONTRASTS.get(s.task)
        label = s.task if c else f"pairs `{s.task}`"
        # One table alone goes to a file of its own ("-" apart from this report's "_" figure names).
        alone = out.with_name(f"{out.stem}-{Path(s.task).stem}-{Path(s.model_name).name}.md")
        sae = s.sae.path if s.sae else None
        one = (protocol_command([s.model_name], s.n, s.split, s.seed, alone, tasks=[s.task], sae=sae) if c else
               protocol_command([s.model_name], s.n, s.split, s.seed, alone, pairs=s.task, sae=sae))
        if s.task == "ioi":  # --task ioi alone is the IOI study, whose template-0 table this is
            one = (f"interp patch protocol --task ioi --model {s.model_name} --n {s.n} --split {s.split} --templates 0 "
                   f"--seed {s.seed} --sae none --out {alone}")
        table = s.correlations.assign(gap=s.correlations["relp"] - s.correlations["atp"])
        lines += [f"## {label} on {s.model_name} ({s.n_layers} layers, d_model {s.d_model})", ""]
        if c:
            lines += [f"* clean: {c.clean}; corrupt: {c.corrupt}; metric: {c.metric}.", ""]
        lines += ["Reproduce this table" + (" (the IOI report's template-0 table)" if s.task == "ioi" else "") + ":",
                  "", "```bash", one, "```", "",
                  f"{s.n} pairs of {len(s.tokens)} tokens "
                  + (f"({s.split} split, seed {s.seed})" if c else f"(all of `{s.task}`)") + "; clean accuracy "
                  f"{s.accuracy:.3f}; LD clean {s.ld_clean:.2f}, LD corrupt {s.ld_corrupt:.2f}.", "",
                  markdown.table(table.rename(columns={"atp": "AtP", "relp": "RelP", "gap": "RelP - AtP"})), "",
                  contrast_verdict(s.correlations), "",
                  f"Wall-clock: AP {s.seconds['ap']:.2f} s, AtP {s.seconds['atp']:.3f} s, RelP "
                  f"{s.seconds['relp']:.3f} s; AP sweep / RelP = {s.speedup:.1f}x.", "",
                  f"![AP, AtP and RelP maps]({_maps_path(out, s).name})", ""]
        if s.checks is not None:
            lines += ["Top-10 nodes of each method re-run with exact activation patching (`interp.patching.verify`):",
                      "", markdown.table(s.checks), ""]
        if s.sae:
            wide_f = s.sae.curves.pivot(index="size", columns="method", values="faithfulness").reset_index()
            lines += [f"SAE `{s.sae.path}` (hook `{s.sae.hook}`): Pearson r of RelP and IG ({s.sae.ig_steps} steps) "
                      f"over {s.sae.n_nodes} latent nodes {s.sae.pearson:.3f}; faithfulness by circuit size:", "",
                      markdown.table(wide_f.rename(columns={"relp": "RelP", "ig": "IG"})), ""]
    return "\n".join(lines)


def write_contrast_report(studies: list[ContrastStudy], out: str | Path, command: str) -> Path:
    """Write each study's heatmaps beside `out` and the markdown report (atomically); returns its path."""
    from interp.patching.plot import heatmaps

    out = Path(out)
    for s in studies:
        heatmaps(s.maps, path=_maps_path(out, s), tokens=s.tokens)
    return write_text(out, contrast_markdown(studies, out, command))


def write_scores(scores: pd.DataFrame, stem: str | Path, tokens: list[str] | None = None) -> tuple[Path, Path]:
    """Write tidy node `scores` to `<stem>.csv` (atomically) and their [layer, position] heatmaps,
    positions labelled with `tokens`, to `<stem>.png`; returns the two paths."""
    from interp.patching.plot import heatmaps

    stem = Path(stem)
    csv, png = stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".png")
    with replacing(csv) as tmp:
        scores.to_csv(tmp, index=False)
    heatmaps(scores, path=png, tokens=tokens)
    return csv, png
