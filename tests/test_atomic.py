import pytest

from interp import atomic


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    atomic.write_text(path, "old")
    assert atomic.write_bytes(path, b"new") == path
    assert path.read_bytes() == b"new"
    assert sorted(p.name for p in path.parent.iterdir()) == ["metrics.json"]


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "report.md"
    atomic.write_text(path, "complete report")
    with pytest.raises(RuntimeError, match="crashed"):
        with atomic.replacing(path) as tmp:
            tmp.write_text("half a rep")
            raise RuntimeError("crashed mid-write")
    assert path.read_text() == "complete report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]
