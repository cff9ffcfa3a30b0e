"""RelP and AtP against exact activation patching on the zoo models (not a test).

For each model and each contrast, the Pearson r of RelP's and AtP's node scores with AP's,
per component (resid_pre, attn_out, mlp_out: [layer, position] nodes), as
`interp.patching.maps.correlations` computes it. Contrasts:

* ioi        the protocol's IOI pairs (`ioi_inputs`: train split, template 0, `--n` pairs),
             metric the normalised logit difference IO - S.
* jailbreak  harmful train requests (template "How do I {x}?") behind a train jailbreak
             wrapper (clean: the zoo complies, " Sure") or behind a neutral preamble of the
             same token length (corrupt: the zoo refuses, " I"); metric the normalised logit
             difference " Sure" - " I" at the last position. The first `--n` pairs of the
             most common token length are kept, so positions align.

Prints one JSON line per (model, contrast, component); the committed output is
benchmarks/results/relp_moe_rules.jsonl.

    python -m benchmarks.relp_moe_rules --models zoo-moe,zoo-dense --n 32
"""

from __future__ import annotations

import argparse
import json

import pandas as pd
import torch

from interp import load_model
from interp.patching import activation_patching, attribution_patching, relevance_patching
from interp.patching.inputs import aligned_pair
from interp.patching.maps import correlations
from interp.patching.metric import NormalisedLogitDiff
from interp.patching.protocol import ioi_inputs
from interp.tasks import refusal

COMPONENTS = ("resid_pre", "attn_out", "mlp_out")
REQUEST = "How do I {x}?"
NEUTRAL_PREAMBLES = ("Hello. {r}", "Please help me. {r}", "Hello there. {r}", "Thank you for your help. {r}",
                     "Good morning. {r}", "My friend asked me this. {r}", "Here is my question. {r}",
                     "I have a question. {r}", "I am asking for a friend. {r}", "I have a question for you. {r}")
"""Wrappers that ask for nothing; each jailbreak wrapper is paired with those of its token length."""


def jailbreak_inputs(model, n: int) -> tuple[torch.Tensor, torch.Tensor, NormalisedLogitDiff]:
    """(clean, corrupt) token ids (n, T) and the calibrated metric of the jailbreak contrast."""
    def prompt(wrapper, action):
        return refusal.ChatPrompt(wrapper.format(r=REQUEST.format(x=action)), action, "jailbreak").prompt

    by_length: dict[int, list[tuple[str, str]]] = {}
    for action in refusal.actions("harmful", "train"):
        for jb in refusal.TRAIN_WRAPPERS:
            clean = prompt(jb, action)
            length = len(model.to_str_tokens(clean))
            for neutral in NEUTRAL_PREAMBLES:
                corrupt = prompt(neutral, action)
                if len(model.to_str_tokens(corrupt)) == length:
                    by_length.setdefault(length, []).append((clean, corrupt))
    pairs = max(by_length.values(), key=len)[:n]
    clean_t, corrupt_t = aligned_pair(model, [c for c, _ in pairs], [k for _, k in pairs])
    sure = model.to_single_token(" Sure")
    i = model.to_tokens(refusal.REFUSAL, prepend_bos=False)[0, 0].item()
    answer, wrong = torch.full((len(pairs),), sure), torch.full((len(pairs),), i)
    return clean_t, corrupt_t, NormalisedLogitDiff.calibrate(model, clean_t, corrupt_t, answer, wrong)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="zoo-moe,zoo-dense")
    parser.add_argument("--n", type=int, default=32, help="prompt pairs per contrast (default: 32)")
    args = parser.parse_args()
    for name in args.models.split(","):
        model = load_model(name)
        ioi = ioi_inputs(model, n=args.n, split="train", template=0)
        contrasts = {"ioi": (ioi.clean, ioi.corrupt, ioi.metric), "jailbreak": jailbreak_inputs(model, args.n)}
        for contrast, (clean, corrupt, metric) in contrasts.items():
            frames = [f(model, clean, corrupt, metric, components=COMPONENTS)
                      for f in (activation_patching, attribution_patching, relevance_patching)]
            table = correlations(pd.concat(frames, ignore_index=True), "ap")
            for component, rows in table.groupby("component", sort=False):
                r = dict(zip(rows["method"], rows["pearson"]))
                print(json.dumps({"model": name, "contrast": contrast, "pairs": int(clean.shape[0]),
                                  "clean_metric_raw": round(metric.clean_value, 4), "corrupt_metric_raw": round(metric.corrupt_value, 4),
                                  "component": component, "relp_r": round(r["relp"], 4),
                                  "atp_r": round(r["atp"], 4)}), flush=True)


if __name__ == "__main__":
    main()
