"""Token highlighting HTML shared by the dashboards."""

import re

import pytest

from interp.widgets.tokens_html import highlight, printable, token_span


def alphas(html: str) -> list[float]:
    return [float(a) for a in re.findall(r"rgba\([\d, ]+, ([\d.]+)\)", html)]


def test_opacity_follows_the_value_and_is_clamped():
    line = highlight(["a", "b", "c"], [0.0, 1.0, 5.0], 2.0)
    assert alphas(line) == [0.0, 0.5, 1.0]
    assert line.count('class="interp-tok"') == 3


def test_negative_values_use_the_other_colour_and_emphasis_marks_one_token():
    line = highlight(["x", "y"], [-1.0, 1.0], 1.0, emphasis=1)
    spans = re.findall(r'<span class="interp-tok" style="([^"]*)"', line)
    assert "30, 120, 255" in spans[0] and "255, 140, 0" in spans[1]
    assert "bold" in spans[1] and "bold" not in spans[0]


def test_tokens_and_titles_are_escaped():
    span = token_span("<b>\n", 1.0, 1.0, title='say "hi"')
    assert "<b>" not in span and "&lt;b&gt;\u21b5" in span and 'title="say &quot;hi&quot;"' in span
    assert printable("\t&") == "\u21e5&amp;"


def test_length_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"tokens \(2\), values \(1\)"):
        highlight(["a", "b"], [1.0], 1.0)


def test_token_labels_show_spaces_and_replies_end_at_eos():
    from interp.widgets.tokens_html import EOS_MARK, reply_html, token_label, until_eos

    assert token_label(" Mary") == "\u2423Mary" and token_label("\n") == "\u21b5"
    assert until_eos(" Sure.<|endoftext|>User: hi", "<|endoftext|>") == (" Sure.", True)
    assert until_eos(" Sure.", "<|endoftext|>") == (" Sure.", False) and until_eos("a", None) == ("a", False)
    assert reply_html("<b><|endoftext|>x", "<|endoftext|>") == "&lt;b&gt;" + EOS_MARK
    assert reply_html("a\nb", "<|endoftext|>") == "a\u21b5b"
