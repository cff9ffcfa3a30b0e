"""HTML for token sequences coloured by a value per token (a latent's activation, a relevance
score, ...), shared by the dashboards. Pure string building: values come from the library.

Every token is a `<span class="interp-tok">` whose background opacity is |value| / max_value
(orange for positive values, blue for negative ones) and whose `title` is a tooltip.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

POSITIVE = "255, 140, 0"
NEGATIVE = "30, 120, 255"
_STYLE = ("font-family: monospace; white-space: pre; line-height: 1.7; overflow-x: auto; margin: 1px 0")


def printable(token: str) -> str:
    """A token as it should be shown: newlines and tabs made visible, everything escaped."""
    return html.escape(token.replace("\n", "\u21b5").replace("\t", "\u21e5"))


def token_span(token: str, value: float, max_value: float, *, title: str | None = None,
               emphasis: bool = False) -> str:
    """One token coloured by `value` relative to `max_value` (> 0)."""
    alpha = min(abs(value) / max_value, 1.0) if max_value > 0 else 0.0
    colour = POSITIVE if value >= 0 else NEGATIVE
    style = f"background: rgba({colour}, {alpha:.3f});"
    if emphasis:
        style += " font-weight: bold; text-decoration: underline;"
    tip = html.escape(title if title is not None else f"{value:.3g}", quote=True)
    return f'<span class="interp-tok" style="{style}" title="{tip}">{printable(token)}</span>'


def highlight(tokens: Sequence[str], values: Sequence[float], max_value: float, *,
              titles: Sequence[str] | None = None, emphasis: int | None = None, prefix: str = "") -> str:
    """One line (a `<div>`) of tokens coloured by their values; token `emphasis` is underlined.
    `prefix` (HTML) goes before the tokens, e.g. the value of the row."""
    if len(tokens) != len(values) or (titles is not None and len(titles) != len(tokens)):
        raise ValueError(f"tokens ({len(tokens)}), values ({len(values)}) and titles "
                         f"({'-' if titles is None else len(titles)}) must have the same length")
    spans = "".join(token_span(t, float(v), max_value, title=None if titles is None else titles[i],
                               emphasis=i == emphasis)
                    for i, (t, v) in enumerate(zip(tokens, values)))
    return f'<div class="interp-row" style="{_STYLE}">{prefix}{spans}</div>'


def value_badge(value: float) -> str:
    """A fixed-width label for the value of a row."""
    return (f'<span style="display: inline-block; width: 4.5em; color: #555; text-align: right; '
            f'margin-right: 0.6em">{value:.2f}</span>')


def token_label(token: str) -> str:
    """A token as a standalone label (tick, table cell, list), as plain text: spaces shown as
    `␣` so that " Mary" reads `␣Mary` and never loses its leading space to trimming."""
    return token.replace(" ", "\u2423").replace("\n", "\u21b5").replace("\t", "\u21e5")


def until_eos(text: str, eos: str | None) -> tuple[str, bool]:
    """(`text` up to its first `eos` string, whether it was cut there): a reply ends at the
    end-of-text token even where the decoding ran on past it."""
    if not eos or eos not in text:
        return text, False
    return text[:text.index(eos)], True


EOS_TEXT = "EOS"
"""What marks the end of a reply: plain letters, which every font has (a symbol such as U+23F9 is
a missing-glyph box in a browser without a font for it)."""
EOS_MARK = ('<span class="interp-eos" style="color: #888; font-size: 0.75em; border: 1px solid #bbb; '
            f'border-radius: 3px; padding: 0 2px" title="end of text: generation stops here">{EOS_TEXT}</span>')
"""What follows a reply that ended at the end-of-text token."""


def reply_html(text: str, eos: str | None) -> str:
    """A generated reply, escaped, cut at the end-of-text token (then marked with EOS_MARK)."""
    shown, ended = until_eos(text, eos)
    return printable(shown) + (EOS_MARK if ended else "")
