"""Export the per-layer transcoders of a model as one directory that attribution-graph tools
(circuit-tracer-style "transcoder sets") consume: `config.json` plus one `layer_<L>.safetensors`
per layer. Only JSON and safetensors, each file written atomically.

config.json:

    {"format": "interp-transcoder-set", "version": 1, "model_name": "zoo-dense",
     "feature_input_hook": "ln2.hook_normalized", "feature_output_hook": "hook_mlp_out",
     "transcoders": [{"id": "L0", "layer": 0, "filepath": "layer_0.safetensors", "d_in": 128,
                      "d_out": 128, "d_transcoder": 2048, "activation": "topk", "k": 32,
                      "skip": true, "source": "saes/zoo-dense-transcoders/L0"}, ...]}

The hooks are named within a block (`blocks.<layer>.<hook>`, TransformerLens names), as such
tools name them. Each layer file holds, in the nn.Linear layout (weight = (out, in)):
W_enc (d_transcoder, d_in), b_enc (d_transcoder,), W_dec (d_out, d_transcoder), b_dec (d_out,),
W_skip (d_out, d_in) when `skip`, and `threshold` (d_transcoder,) when `activation` is
"jumprelu". The function of raw activations x (any leading shape, last dim d_in) is

    pre = x @ W_enc.T + b_enc
    f   = TopK_k(pre) then ReLU        (activation "topk")
          ReLU(pre) * (pre > threshold) (activation "jumprelu")
    y   = f @ W_dec.T + b_dec (+ x @ W_skip.T)

which is what `interp.sae.load` computes for the same directory (scales and the input's centring
are folded in, as in the sae-lens files).
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import save as save_safetensors

from interp.atomic import write_bytes
from interp.errors import ConfigError
from interp.hooks import parse
from interp.sae import saving

FORMAT = "interp-transcoder-set"
VERSION = 1


def transcoder_dirs(run: str | Path) -> list[Path]:
    """The transcoder directories of a run: `run` itself, or its L<layer>/ subdirectories."""
    run = Path(run)
    if (run / saving.CFG).is_file():
        return [run]
    found = sorted((p.parent for p in run.glob(f"L*/{saving.CFG}")), key=lambda p: int(p.name[1:]))
    if not found:
        raise saving.MissingSAEFile(f"{run}: neither a transcoder directory ({saving.CFG}) nor a layered run "
                                    f"(L<layer>/{saving.CFG})")
    return found


def export_transcoders(run: str | Path | list[str | Path], out_dir: str | Path) -> Path:
    """Write the transcoders of `run` (a layered run directory such as
    saes/zoo-dense-transcoders, one transcoder directory, or a list of them) as a transcoder
    set in `out_dir` (config.json + layer_<L>.safetensors); returns `out_dir`. Refused with a
    `ConfigError` naming the directory when one is an SAE, an interp-only variant (top_afa),
    or when two share a layer or disagree on the hooks' names within the block."""
    dirs = [Path(p) for p in run] if isinstance(run, list) else transcoder_dirs(run)
    entries, files, points, model_name = [], {}, set(), None
    for path in dirs:
        raw = saving.read_config(path)
        sae = saving.load(path)
        cfg, meta = sae.cfg, raw.get("metadata") or {}
        if not cfg.is_transcoder:
            raise ConfigError(f"{path}: kind={cfg.kind!r}; a transcoder set holds transcoders only")
        arch = sae.variant.sae_lens_architecture
        if arch not in ("topk", "jumprelu"):
            raise ConfigError(f"{path}: variant {cfg.variant!r} encodes with its own rule (no TopK or JumpReLU "
                              "form); a transcoder set holds topk and thresholded (jumprelu) transcoders")
        parsed_in, parsed_out = parse(meta.get("hook_name") or ""), parse(meta.get("hook_name_out") or "")
        if parsed_in is None or parsed_out is None or parsed_in[0] != parsed_out[0]:
            raise ConfigError(f"{path}/cfg.json: hook_name={meta.get('hook_name')!r} and hook_name_out="
                              f"{meta.get('hook_name_out')!r} must be hooks of one block (blocks.<layer>.<hook>)")
        layer = parsed_in[0]
        if layer in files:
            raise ConfigError(f"{path}: layer {layer} twice in the set (also {files[layer]})")
        points.add((parsed_in[1], parsed_out[1]))
        model_name = model_name or meta.get("model_name")
        state = sae.folded_state()
        tensors = {"W_enc": state["W_enc"].T, "b_enc": state["b_enc"], "W_dec": state["W_dec"].T,
                   "b_dec": state["b_dec"]}
        if "W_skip" in state:
            tensors["W_skip"] = state["W_skip"]
        entry = {"id": f"L{layer}", "layer": layer, "filepath": f"layer_{layer}.safetensors", "d_in": cfg.d_in,
                 "d_out": cfg.d_out, "d_transcoder": cfg.n_latents, "activation": arch, "skip": "W_skip" in state,
                 "source": str(path)}
        if arch == "topk":
            entry["k"] = cfg.k
        else:
            tensors["threshold"] = state["threshold"].clamp(min=0)
        files[layer] = save_safetensors({k: v.detach().float().contiguous().cpu() for k, v in tensors.items()})
        entries.append(entry)
    if len(points) > 1:
        raise ConfigError(f"the transcoders read and write different hooks per layer: {sorted(points)}; a set "
                          "has one input hook and one output hook name")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for layer, data in files.items():
        write_bytes(out / f"layer_{layer}.safetensors", data)
    (feature_in, feature_out), = points
    config = {"format": FORMAT, "version": VERSION, "model_name": model_name, "feature_input_hook": feature_in,
              "feature_output_hook": feature_out, "transcoders": sorted(entries, key=lambda e: e["layer"])}
    write_bytes(out / "config.json", (json.dumps(config, indent=1) + "\n").encode())
    return out
