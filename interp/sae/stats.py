"""Running per-latent statistics of training: tokens since each latent last fired (dead-latent
tracking in tokens, Gao et al.) and an EMA of each latent's firing density."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class LatentStats:
    tokens_since_fired: torch.Tensor
    """(n,) int64 training tokens since the latent last fired."""
    density: torch.Tensor
    """(n,) float32 EMA (per step) of the fraction of tokens on which the latent fired."""
    steps: int = 0

    @classmethod
    def new(cls, n_latents: int, device: torch.device | str | None = None) -> "LatentStats":
        """Fresh statistics of `n_latents` latents on `device` (default cpu)."""
        return cls(torch.zeros(n_latents, dtype=torch.int64, device=device), torch.zeros(n_latents, device=device))

    def to(self, device: torch.device | str) -> "LatentStats":
        """These statistics with their tensors on `device`."""
        return LatentStats(self.tokens_since_fired.to(device), self.density.to(device), self.steps)

    def observe(self, fired_N: torch.Tensor, n_tokens: int, momentum: float) -> None:
        """Account one step: `fired_N` (n,) tokens on which each latent fired out of `n_tokens`."""
        fired_N = fired_N.to(self.tokens_since_fired.device)
        self.tokens_since_fired += n_tokens
        self.tokens_since_fired.masked_fill_(fired_N > 0, 0)  # no data-dependent shape: no host sync
        fraction_N = fired_N.float() / n_tokens
        m = momentum if self.steps else 0.0
        self.density = m * self.density + (1 - m) * fraction_N
        self.steps += 1

    def dead_mask(self, dead_tokens: int) -> torch.Tensor:
        """(n,) bool: latents that have not fired for `dead_tokens` tokens."""
        return self.tokens_since_fired >= dead_tokens

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}tokens_since_fired": self.tokens_since_fired.clone(),
                f"{prefix}density": self.density.clone(),
                f"{prefix}steps": torch.tensor(self.steps)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str) -> "LatentStats":
        return cls(tensors[f"{prefix}tokens_since_fired"].clone(), tensors[f"{prefix}density"].clone(),
                   int(tensors[f"{prefix}steps"]))


def fired_counts(code, n_latents: int, threshold: float) -> torch.Tensor:
    """(n,) int64 tokens of a batch code on which each latent's value exceeded `threshold`."""
    from interp.sae.module import code_entries

    _, cols_E, values_E = code_entries(code)
    hit_E = (values_E.detach() > threshold).long()  # counted, not indexed: no data-dependent shape
    return torch.zeros(n_latents, dtype=torch.int64, device=cols_E.device).index_add_(0, cols_E, hit_E)
