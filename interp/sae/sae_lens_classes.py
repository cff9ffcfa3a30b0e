"""TopK transcoders for sae-lens, which has TopK SAEs and ReLU / JumpReLU transcoders but no
TopK transcoder. Importing this module registers two sae-lens architectures, so that
`sae_lens.SAE.load_from_disk` loads interp's TopK (and g-SAE plain-mode) transcoders:

- `topk_transcoder`: y_hat = W_dec^T TopK(W_enc^T x + b_enc) + b_dec;
- `topk_skip_transcoder`: the same plus W_skip x.

They are sae-lens's `Transcoder` / `SkipTranscoder` with sae-lens's own `TopK` activation
(the k largest pre-activations, then ReLU), which is the code `interp.sae` computes. Mutual and
Feature Choice transcoders need nothing from here: they are written as sae-lens's own
`jumprelu_transcoder` / `jumprelu_skip_transcoder`.

    import interp.sae.sae_lens_classes  # noqa: F401  (registers the architectures)
    from sae_lens import SAE
    tc = SAE.load_from_disk("saes/zoo-dense-transcoders/L2")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sae_lens import register_sae_class
from sae_lens.registry import SAE_CLASS_REGISTRY
from sae_lens.saes.topk_sae import TopK
from sae_lens.saes.transcoder import SkipTranscoder, SkipTranscoderConfig, Transcoder, TranscoderConfig


@dataclass
class TopKTranscoderConfig(TranscoderConfig):
    k: int = 100
    """Active latents per token."""

    @classmethod
    def architecture(cls) -> str:
        return "topk_transcoder"


@dataclass
class TopKSkipTranscoderConfig(SkipTranscoderConfig):
    k: int = 100
    """Active latents per token."""

    @classmethod
    def architecture(cls) -> str:
        return "topk_skip_transcoder"


class _TopKActivation:
    """sae-lens's TopK(k) as the activation, and `from_dict` building the class's own config."""

    config_class: type

    def get_activation_fn(self):
        return TopK(self.cfg.k)

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any]):
        return cls(cls.config_class.from_dict(config_dict))


class TopKTranscoder(_TopKActivation, Transcoder):
    """A sae-lens transcoder whose activation is TopK(k)."""

    config_class = TopKTranscoderConfig


class TopKSkipTranscoder(_TopKActivation, SkipTranscoder):
    """A sae-lens skip-transcoder whose activation is TopK(k)."""

    config_class = TopKSkipTranscoderConfig


ARCHITECTURES = {"topk_transcoder": (TopKTranscoder, TopKTranscoderConfig),
                 "topk_skip_transcoder": (TopKSkipTranscoder, TopKSkipTranscoderConfig)}

for _name, (_sae_cls, _cfg_cls) in ARCHITECTURES.items():
    if _name not in SAE_CLASS_REGISTRY:  # importing twice (or a reload) registers once
        register_sae_class(_name, _sae_cls, _cfg_cls)
