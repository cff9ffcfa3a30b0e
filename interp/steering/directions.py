"""Steering directions: a unit vector in the residual stream with its provenance.

Four ways to get one:
* `Direction.mean_difference`: difference of means of the residual stream between two
  prompt sets at a layer and position [ours; the common "pre-computed refusal direction"].
* `Direction.embedding_refusal`: mean input embedding of the refusal-phrase tokens minus
  that of the compliance-phrase tokens [paper code]; the phrases are the refusal task's
  (`interp.tasks.chat.ChatFormat.refusal` / `.compliance`: the zoo's by default).
* `Direction.from_sae_latent`: an SAE latent's decoder column (`interp.sae.load`).
* `Direction.pca_of_differences`: first principal component of paired differences,
  signed to agree with their mean.

On disk a direction is a directory: `direction.safetensors` (the vector) and
`direction.json` (name, method, provenance).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from interp.artifacts import read_artifact, write_artifact
from interp.steering import readout
from interp.tasks.chat import ZOO_CHAT, ChatFormat, check_chat

VECTOR_FILE = "direction.safetensors"
META_FILE = "direction.json"
COMPLIANCE_PHRASE = ZOO_CHAT.compliance
"""The start of the zoo's compliant reply (`interp.tasks.refusal.ChatPrompt.answer`)."""


@dataclass(frozen=True, eq=False)
class Direction:
    """A unit direction d̂ (d_model,) in the residual stream and where it came from.

    The vector is normalised on construction (float32, CPU); its norm before that is kept
    in `provenance["raw_norm"]`. `layer`/`site` say where it was measured, if anywhere.
    """

    vector: torch.Tensor
    method: str
    name: str = ""
    layer: int | None = None
    site: str | None = None
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        v = self.vector
        if not isinstance(v, torch.Tensor) or v.ndim != 1:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"vector must be a 1-D tensor (d_model,); got {got}")
        v = v.detach().float().cpu()
        norm = v.norm().item()
        if not torch.isfinite(v).all() or norm == 0.0:
            raise ValueError(f"vector must be finite and non-zero to define a direction (norm={norm})")
        # A vector already unit to float32 rounding is kept as it is, so that re-wrapping one
        # (load, negation) gives the identical tensor: v / ||v|| is not idempotent in float32.
        object.__setattr__(self, "vector", v.clone() if abs(norm - 1.0) <= 1e-6 else v / norm)
        object.__setattr__(self, "provenance", {"raw_norm": norm, **self.provenance})
        if self.site is not None:
            readout.check_site(self.site)

    @property
    def d_model(self) -> int:
        return self.vector.shape[0]

    def cosine(self, other: Direction) -> float:
        """Cosine similarity with another direction of the same width."""
        check_width(other, self.d_model)
        return float(self.vector @ other.vector)

    def __neg__(self) -> Direction:
        return Direction(-self.vector, self.method, f"-{self.name}" if self.name else "", self.layer, self.site,
                         {**self.provenance, "negated": not self.provenance.get("negated", False)})

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def mean_difference(cls, model, prompts_a: Sequence[str], prompts_b: Sequence[str], layer: int,
                        position: str = "last", site: str = "resid_post", name: str = "") -> Direction:
        """normalise(mean h_layer(a) − mean h_layer(b)) of the residual stream at `site` of
        block `layer`, read at `position` ("last" prompt token or "mean" over the prompt)."""
        prompts_a = readout.check_prompts(prompts_a, "prompts_a")
        prompts_b = readout.check_prompts(prompts_b, "prompts_b")
        a = readout.residuals(model, prompts_a, [layer], position, site)[:, 0]  # (Na, D)
        b = readout.residuals(model, prompts_b, [layer], position, site)[:, 0]  # (Nb, D)
        return cls(a.mean(0) - b.mean(0), "mean_difference", name, layer, site,
                   {"position": position, "n_a": len(prompts_a), "n_b": len(prompts_b),
                    "model": _model_name(model)})

    @classmethod
    def pca_of_differences(cls, model, prompts_a: Sequence[str], prompts_b: Sequence[str], layer: int,
                           position: str = "last", site: str = "resid_post", name: str = "") -> Direction:
        """First principal component of the paired differences h(a_i) − h(b_i) (uncentred,
        as in repeng), signed so that it agrees with their mean. Needs equally many a and b."""
        prompts_a = readout.check_prompts(prompts_a, "prompts_a")
        prompts_b = readout.check_prompts(prompts_b, "prompts_b")
        if len(prompts_a) != len(prompts_b):
            raise ValueError(f"prompts_a ({len(prompts_a)}) and prompts_b ({len(prompts_b)}) must pair up one to one")
        a = readout.residuals(model, prompts_a, [layer], position, site)[:, 0]
        b = readout.residuals(model, prompts_b, [layer], position, site)[:, 0]
        diffs_ND = a - b
        _, svals, vh = torch.linalg.svd(diffs_ND, full_matrices=False)
        pc = vh[0]
        if pc @ diffs_ND.mean(0) < 0:
            pc = -pc
        explained = (svals[0] ** 2 / (svals ** 2).sum()).item()
        return cls(pc, "pca_of_differences", name, layer, site,
                   {"position": position, "n_pairs": len(prompts_a), "explained_variance": explained,
                    "model": _model_name(model)})

    @classmethod
    def embedding_refusal(cls, model, refusal_phrase: str | None = None, compliance_phrase: str | None = None,
                          name: str = "", chat: ChatFormat | None = None) -> Direction:
        """normalise(mean W_E[refusal tokens] − mean W_E[compliance tokens]) in input-embedding
        space [paper code]. Defaults: `chat`'s refusal reply and the start of its compliant reply
        (`chat`: the refusal task's format, `interp.tasks.chat_format(model)`; None: the zoo's)."""
        chat = check_chat(chat)
        refusal_phrase = chat.refusal if refusal_phrase is None else refusal_phrase
        compliance_phrase = chat.compliance if compliance_phrase is None else compliance_phrase
        ids = {}
        for field_name, phrase in (("refusal_phrase", refusal_phrase), ("compliance_phrase", compliance_phrase)):
            if not phrase:
                raise ValueError(f"{field_name} is empty: give the phrase whose tokens define one side")
            ids[field_name] = model.to_tokens(phrase, prepend_bos=False)[0]
        W_E = model.W_E.detach().float().cpu()  # (V, D)
        vec = W_E[ids["refusal_phrase"].cpu()].mean(0) - W_E[ids["compliance_phrase"].cpu()].mean(0)
        return cls(vec, "embedding_refusal", name, None, None,
                   {"refusal_phrase": refusal_phrase, "compliance_phrase": compliance_phrase,
                    "model": _model_name(model)})

    @classmethod
    def from_sae_latent(cls, sae, latent_index: int, name: str = "") -> Direction:
        """The decoder row d_i (W_dec[i], d_out) of SAE latent `latent_index`, normalised.

        `sae`: a loaded `interp.sae.SparseAutoencoder`, or a checkpoint directory (then the
        hook it was trained on is recorded and its layer/site parsed from the hook name; for a
        transcoder the hook it predicts, e.g. blocks.2.hook_mlp_out, which adds to resid_post
        of its layer).
        """
        hook = None
        path = None
        if isinstance(sae, (str, Path)):
            from interp.sae import load
            from interp.sae.saving import read_config

            path = str(sae)
            meta = read_config(sae).get("metadata", {})
            sae = load(sae)
            # a transcoder's latent writes its target (an MLP's output): steer where that adds
            hook = meta.get("hook_name_out") if sae.cfg.is_transcoder else meta.get("hook_name")
        n_latents = sae.W_dec.shape[0]
        if isinstance(latent_index, bool) or not isinstance(latent_index, int) or not 0 <= latent_index < n_latents:
            raise ValueError(f"latent_index={latent_index!r} must be an int in [0, {n_latents}) for this SAE")
        layer, site = _parse_hook(hook)
        return cls(sae.W_dec[latent_index].detach(), "sae_latent", name or f"latent {latent_index}", layer, site,
                   {"latent_index": latent_index, "sae_variant": sae.cfg.variant, "n_latents": n_latents,
                    "sae_path": path, "hook_name": hook})

    # --- disk -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the direction as `path`/direction.safetensors + `path`/direction.json (atomic)."""
        meta = {"method": self.method, "name": self.name, "layer": self.layer, "site": self.site,
                "d_model": self.d_model, "provenance": self.provenance}
        return write_artifact(path, VECTOR_FILE, {"vector": self.vector.contiguous()}, META_FILE, meta)

    @classmethod
    def load(cls, path: str | Path) -> Direction:
        """Read a direction written by `save`."""
        path = Path(path)
        tensors, meta = read_artifact(path, VECTOR_FILE, META_FILE, "a direction directory")
        if "vector" not in tensors:
            raise ValueError(f"{path / VECTOR_FILE} has no 'vector' tensor")
        return cls(tensors["vector"], meta["method"], meta.get("name", ""), meta.get("layer"), meta.get("site"),
                   meta.get("provenance", {}))


def check_width(direction: Direction, d_model: int) -> None:
    """A clear error when `direction` does not fit a residual stream of width `d_model`."""
    if not isinstance(direction, Direction):
        raise ValueError(f"direction must be an interp.steering.Direction; got {type(direction).__name__}")
    if direction.d_model != d_model:
        raise ValueError(f"direction has dimension {direction.d_model} but the model's residual stream has "
                         f"d_model={d_model}; measure the direction on this model")


def _model_name(model) -> str:
    return getattr(model.cfg, "model_name", "") or ""


def _parse_hook(hook: str | None) -> tuple[int | None, str | None]:
    """(layer, residual site) a direction read at `hook` is added at (None, None) when none."""
    from interp.hooks import residual_equivalent

    found = residual_equivalent(hook) if hook else None
    if found is None or found[1] not in readout.SITES:
        return None, None
    return found
