"""One naming scheme for the nodes of every patching method.

A *site* is one activation tensor of the model (a TransformerLens hook, or the latents of
an SAE spliced in at a hook); a *node* is one (position, unit) slice of a site:

| component   | hook                          | units per position | node name             |
|-------------|-------------------------------|--------------------|-----------------------|
| `resid_pre` | `blocks.L.hook_resid_pre`     | 1 (whole d_model)  | `resid_pre.L2.P5`     |
| `attn_out`  | `blocks.L.hook_attn_out`      | 1 (whole d_model)  | `attn_out.L2.P5`      |
| `mlp_out`   | `blocks.L.hook_mlp_out`       | 1 (whole d_model)  | `mlp_out.L2.P5`       |
| `head`      | `blocks.L.attn.hook_z`        | n_heads (d_head)   | `head.L2.H1.P5`       |
| `neuron`    | `blocks.L.mlp.hook_post`      | d_mlp              | `neuron.L2.U17.P5`    |
| `sae`       | the SAE's hook (its latents)  | n_latents          | `sae.L2.U123.P5`      |
| `tc`        | a transcoder's target hook    | n_latents          | `tc.L2.U123.P5`       |

A transcoder (`SAEHook` with a `target`) reads its input hook and its latents are spliced in
at the hook it predicts (typically `blocks.L.hook_mlp_out`): a `tc` node's layer is the
target's.

Every site's activation is viewed as (B, T, U, R): batch, position, unit, and the R numbers
that one node owns (d_model for a component, d_head for a head, 1 for a neuron or latent).
Scores of all methods come back as one tidy DataFrame with the columns of `COLUMNS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import pandas as pd
import torch

from interp.hooks import parse, probe

COLUMNS = ["node", "component", "layer", "position", "head", "unit", "score", "method"]

HOOKS = {
    "resid_pre": "blocks.{layer}.hook_resid_pre",
    "attn_out": "blocks.{layer}.hook_attn_out",
    "mlp_out": "blocks.{layer}.hook_mlp_out",
    "head": "blocks.{layer}.attn.hook_z",
    "neuron": "blocks.{layer}.mlp.hook_post",
}
LATENTS = ("sae", "tc")
"""Components whose units are a dictionary's latents (an SAE's, a transcoder's)."""
COMPONENTS = (*HOOKS, *LATENTS)
DEFAULT_COMPONENTS = ("resid_pre", "attn_out", "mlp_out")
_NODE_RE = re.compile(r"^(?P<component>[a-z_]+)\.L(?P<layer>\d+)(?:\.H(?P<head>\d+))?(?:\.U(?P<unit>\d+))?\.P(?P<pos>\d+)$")


@dataclass(frozen=True)
class SAEHook:
    """An SAE and the hook whose activations it reconstructs (spliced in with an error term,
    so the model's forward is unchanged; see `interp.patching.runner`), or a transcoder: it
    reads `hook` and its prediction of `target` is spliced in at `target`."""

    sae: torch.nn.Module = field(compare=False, hash=False, repr=False)
    hook: str = ""
    target: str | None = None
    """The hook a transcoder predicts (None: an SAE)."""

    def __post_init__(self):
        for name in ("hook", "target"):
            value = getattr(self, name)
            if (value is not None or name == "hook") and hook_layer(value or "") is None:
                raise ValueError(f"{name}={value!r} is not a per-layer hook; allowed: 'blocks.<layer>.<hook name>'")
        is_transcoder = bool(getattr(getattr(self.sae, "cfg", None), "is_transcoder", False))
        if is_transcoder != (self.target is not None):
            raise ValueError(f"target={self.target!r}: a transcoder needs the hook it predicts (target=...), an "
                             "SAE has none")

    @property
    def component(self) -> str:
        """The node component of its latents: "tc" for a transcoder, "sae" for an SAE."""
        return "sae" if self.target is None else "tc"

    @property
    def site_hook(self) -> str:
        """Where its latents are spliced in: the target for a transcoder, the hook for an SAE."""
        return self.hook if self.target is None else self.target

    @classmethod
    def load(cls, path) -> "SAEHook":
        """Load an SAE or transcoder written by `interp.sae.save` with the hooks named in its
        cfg.json (metadata.hook_name, and a transcoder's metadata.hook_name_out)."""
        from interp.sae import load
        from interp.sae.saving import read_config

        meta = read_config(path).get("metadata") or {}
        if not meta.get("hook_name"):
            raise ValueError(f"{path}/cfg.json has no metadata.hook_name; build SAEHook(sae, hook=...) yourself")
        sae = load(path)
        if sae.cfg.is_transcoder and not meta.get("hook_name_out"):
            raise ValueError(f"{path}/cfg.json is a {sae.cfg.kind} without metadata.hook_name_out; build "
                             "SAEHook(sae, hook=..., target=...) yourself")
        return cls(sae, meta["hook_name"], meta.get("hook_name_out") if sae.cfg.is_transcoder else None)


@dataclass(frozen=True)
class Site:
    """One activation tensor whose (position, unit) slices are nodes."""

    component: str
    layer: int
    hook: str
    n_units: int
    sae: SAEHook | None = field(default=None, compare=False, hash=False, repr=False)

    def view(self, act: torch.Tensor) -> torch.Tensor:
        """The activation as (B, T, U, R) (a view: writes go through)."""
        B, T = act.shape[:2]
        if self.component in ("resid_pre", "attn_out", "mlp_out"):
            return act.view(B, T, 1, -1)
        if self.component == "head":
            return act
        return act.view(B, T, -1, 1)

    def node(self, position: int, unit: int) -> str:
        head = f".H{unit}" if self.component == "head" else ""
        unit_part = f".U{unit}" if self.component in ("neuron", *LATENTS) else ""
        return f"{self.component}.L{self.layer}{head}{unit_part}.P{position}"


def hook_layer(hook: str) -> int | None:
    parsed = parse(hook)
    return parsed[0] if parsed else None


def sites(model, components: Sequence[str] = DEFAULT_COMPONENTS, sae: SAEHook | None = None,
          layers: Iterable[int] | None = None) -> list[Site]:
    """The sites of `components` at every layer (or `layers`), in forward order.

    `sae` is needed (and used) only when its latents are among the components: "sae" for an
    SAE, "tc" for a transcoder.
    """
    components = tuple(components)
    bad = [c for c in components if c not in COMPONENTS]
    if bad or not components:
        raise ValueError(f"components={components!r}: allowed are {COMPONENTS}")
    n_layers = model.cfg.n_layers
    layers = list(range(n_layers)) if layers is None else sorted(set(layers))
    for layer in layers:
        if not 0 <= layer < n_layers:
            raise ValueError(f"layer={layer} is out of range; the model has layers 0..{n_layers - 1}")
    units = {"resid_pre": 1, "attn_out": 1, "mlp_out": 1, "head": model.cfg.n_heads, "neuron": model.cfg.d_mlp}
    out = [Site(c, layer, HOOKS[c].format(layer=layer), units[c]) for layer in layers for c in components
           if c not in LATENTS]
    missing = [s.hook for s in out if s.hook not in model.hook_dict]
    if missing:  # e.g. "neuron" on an MoE model, whose MLP neurons live inside each expert
        component = next(s.component for s in out if s.hook == missing[0])
        here = [c for c in COMPONENTS if c in LATENTS or HOOKS[c].format(layer=0) in model.hook_dict]
        raise ValueError(f"components: {component!r} needs hook {missing[0]!r}, which this model does not have "
                         f"(allowed here: {', '.join(here)})")
    for c in LATENTS:
        if c not in components:
            continue
        if sae is None:
            raise ValueError(f"components include {c!r} but sae=None; pass an SAEHook (SAEHook.load(path))")
        if sae.component != c:
            raise ValueError(f"components include {c!r} but sae is {'a transcoder' if sae.target else 'an SAE'}: "
                             f"its latents are the component {sae.component!r}")
        for name in filter(None, (sae.hook, sae.target)):
            if name not in model.hook_dict:
                raise ValueError(f"sae hook {name!r} is not a hook of the model")
        if sae.target is not None:
            width = probe(model, [sae.target])[sae.target]
            if width != sae.sae.cfg.d_out:
                raise ValueError(f"the transcoder predicts {sae.target!r} with d_out={sae.sae.cfg.d_out}, but that "
                                 f"hook of this model has width {width}")
        out.append(Site(c, hook_layer(sae.site_hook), sae.site_hook, sae.sae.cfg.n_latents, sae))
    return sorted(out, key=lambda s: (s.layer, _ORDER[s.component]))


_ORDER = {"resid_pre": 0, "sae": 1, "head": 2, "attn_out": 3, "neuron": 4, "tc": 5, "mlp_out": 6}



@dataclass(frozen=True)
class NodeRef:
    """A parsed node name."""

    component: str
    layer: int
    position: int
    unit: int


def parse_node(name: str) -> NodeRef:
    """`'head.L2.H1.P5'` -> NodeRef('head', 2, 5, 1). Raises ValueError on anything else."""
    m = _NODE_RE.match(name)
    if not m or m["component"] not in COMPONENTS:
        raise ValueError(f"node={name!r} is not a node name; examples: 'resid_pre.L2.P5', 'head.L2.H1.P5', "
                         "'neuron.L0.U17.P3', 'sae.L2.U123.P5', 'tc.L2.U123.P5'")
    unit = m["head"] if m["component"] == "head" else m["unit"]
    needs_unit = m["component"] in ("head", "neuron", *LATENTS)
    if needs_unit != (unit is not None) or (m["head"] is not None and m["component"] != "head"):
        raise ValueError(f"node={name!r}: a {m['component']} node {'needs' if needs_unit else 'has no'} unit index")
    return NodeRef(m["component"], int(m["layer"]), int(m["pos"]), int(unit or 0))


def group_nodes(names: Iterable[str], all_sites: Sequence[Site], n_positions: int) -> dict[Site, list[tuple[int, int]]]:
    """Node names grouped by their site: {site: [(position, unit), ...]}; checks every index."""
    by_key = {(s.component, s.layer): s for s in all_sites}
    out: dict[Site, list[tuple[int, int]]] = {}
    for name in names:
        ref = parse_node(name)
        site = by_key.get((ref.component, ref.layer))
        if site is None:
            raise ValueError(f"node={name!r}: no {ref.component} site at layer {ref.layer} among the sites "
                             f"{[f'{s.component}.L{s.layer}' for s in all_sites]}")
        if not (0 <= ref.position < n_positions and 0 <= ref.unit < site.n_units):
            raise ValueError(f"node={name!r} is out of range: positions 0..{n_positions - 1}, "
                             f"units 0..{site.n_units - 1}")
        out.setdefault(site, []).append((ref.position, ref.unit))
    return out


def scores_frame(scores: dict[Site, torch.Tensor], method: str) -> pd.DataFrame:
    """Tidy DataFrame (COLUMNS) of per-site score maps, each (T, U)."""
    parts = []
    for site, s_TU in scores.items():
        T, U = s_TU.shape
        pos, unit = torch.meshgrid(torch.arange(T), torch.arange(U), indexing="ij")
        pos, unit = pos.reshape(-1).tolist(), unit.reshape(-1).tolist()
        is_head, has_unit = site.component == "head", site.component in ("neuron", *LATENTS)
        parts.append(pd.DataFrame({
            "node": [site.node(p, u) for p, u in zip(pos, unit)],
            "component": site.component, "layer": site.layer, "position": pos,
            "head": pd.array(unit if is_head else [None] * len(pos), dtype="Int64"),
            "unit": pd.array(unit if has_unit else [None] * len(pos), dtype="Int64"),
            "score": s_TU.detach().double().reshape(-1).cpu().numpy(), "method": method,
        }))
    return pd.concat(parts, ignore_index=True)[COLUMNS] if parts else pd.DataFrame(columns=COLUMNS)
