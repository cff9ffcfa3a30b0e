import pandas as pd

from interp.markdown import table


def test_table_formats_floats_and_nan_and_leaves_out_the_index():
    df = pd.DataFrame({"a": ["x", "y"], "b": [0.12345, float("nan")], "n": [1, 2]}, index=[7, 8])
    assert table(df).splitlines() == ["| a | b | n |", "|---|---|---|", "| x | 0.123 | 1 |", "| y | nan | 2 |"]
    assert table(df, "{:.4g}", nan="–").splitlines()[2:] == ["| x | 0.1235 | 1 |", "| y | – | 2 |"]
