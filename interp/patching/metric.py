"""Metrics: a callable logits (B, T, V) -> scalar tensor, and the normalised logit difference.

Every method evaluates a metric through `metric_value`, which rejects anything but a scalar.
Batched patching evaluates the metric on slices of the same batch size and order as the
prompts, so a metric may use per-prompt answer ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

Metric = Callable[[torch.Tensor], torch.Tensor]


def metric_value(metric: Metric, logits: torch.Tensor) -> torch.Tensor:
    """metric(logits) checked to be a one-element float tensor; returned as a 0-d tensor."""
    value = metric(logits)
    if not isinstance(value, torch.Tensor) or value.numel() != 1 or not value.is_floating_point():
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"metric must return a scalar float tensor (one number for the batch, e.g. a mean); "
                         f"it returned {shape}")
    return value.reshape(())


def logit_diff(logits: torch.Tensor, answer_ids: torch.Tensor, wrong_ids: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of logit(answer) - logit(wrong) at the last position: a scalar
    (the batch mean of the task's per-prompt `interp.tasks.ioi.logit_diff`)."""
    from interp.tasks.ioi import logit_diff as per_prompt

    return per_prompt(logits, answer_ids, wrong_ids).mean()


@dataclass
class NormalisedLogitDiff:
    """[paper] m = (LD - LD_corrupt) / (LD_clean - LD_corrupt), LD = mean logit difference
    (answer - wrong) at the last position: 1 on the clean run, 0 on the corrupt run."""

    answer_ids: torch.Tensor
    wrong_ids: torch.Tensor
    clean_value: float
    corrupt_value: float

    def __post_init__(self):
        if self.answer_ids.shape != self.wrong_ids.shape or self.answer_ids.ndim != 1:
            raise ValueError(f"answer_ids {tuple(self.answer_ids.shape)} and wrong_ids "
                             f"{tuple(self.wrong_ids.shape)} must both be (B,)")
        if abs(self.clean_value - self.corrupt_value) < 1e-6:
            raise ValueError(f"clean_value={self.clean_value} equals corrupt_value={self.corrupt_value}: the "
                             "model does not tell clean from corrupt, so the metric cannot be normalised")

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        ld = logit_diff(logits, self.answer_ids.to(logits.device), self.wrong_ids.to(logits.device))
        return (ld - self.corrupt_value) / (self.clean_value - self.corrupt_value)

    @classmethod
    @torch.no_grad()
    def calibrate(cls, model, clean_tokens: torch.Tensor, corrupt_tokens: torch.Tensor,
                  answer_ids: torch.Tensor, wrong_ids: torch.Tensor) -> "NormalisedLogitDiff":
        """The metric normalised on this model's clean and corrupt runs."""
        clean = logit_diff(model(clean_tokens), answer_ids, wrong_ids).item()
        corrupt = logit_diff(model(corrupt_tokens), answer_ids, wrong_ids).item()
        return cls(answer_ids, wrong_ids, clean, corrupt)
