"""A promise checked against a measured number, and the markdown table of such checks.

Every report that states whether a target is met (`interp zoo eval`, `results/relp_ioi.md`)
computes "met" here from the value and the bound, never by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

OPS = (">=", "<=")
"""The comparisons a target may state."""


@dataclass(frozen=True)
class Target:
    """A target is met when `value op bound` holds, e.g. Pearson r >= 0.9."""

    name: str
    """What is measured, as the report's table shows it."""
    value: float
    """The measured number."""
    op: str
    """'>=' (at least `bound`) or '<=' (at most `bound`)."""
    bound: float
    unit: str = ""
    """Written right after the bound: "x", " (difference)", ..."""

    def __post_init__(self):
        if self.op not in OPS:
            raise ValueError(f"op={self.op!r} for target {self.name!r}; allowed: {', '.join(OPS)}")

    @property
    def met(self) -> bool:
        return bool(self.value >= self.bound if self.op == ">=" else self.value <= self.bound)

    @property
    def bound_text(self) -> str:
        return f"{self.op} {self.bound:g}{self.unit}"


def table(targets: Sequence[Target], floatfmt: str = "{:.3f}") -> str:
    """Markdown table: target | value | bound | met ("yes" / "NO"), one row per target, no trailing newline."""
    lines = ["| target | value | bound | met |", "|---|---|---|---|"]
    lines += [f"| {t.name} | {floatfmt.format(t.value)} | {t.bound_text} | {'yes' if t.met else 'NO'} |"
              for t in targets]
    return "\n".join(lines)
