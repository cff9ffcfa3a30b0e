"""GitHub-flavoured markdown tables of DataFrames, for the reports the library writes
(`saes/RESULTS.md`, `results/*.md`, `interp steer sweep`). pandas' own `to_markdown` needs
the optional `tabulate` package; this needs nothing."""

from __future__ import annotations

import math

import pandas as pd


def table(df: pd.DataFrame, floatfmt: str = "{:.3f}", nan: str | None = None) -> str:
    """The columns of `df` (not its index) as a markdown table, one line per row, no trailing
    newline. Floats go through `floatfmt`; NaN is written as `nan` (None: like any float)."""
    def cell(v) -> str:
        if isinstance(v, float):
            return nan if nan is not None and math.isnan(v) else floatfmt.format(v)
        return str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
