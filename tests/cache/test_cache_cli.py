"""`interp cache` and `interp cache verify` (named test_cache_cli: tests/test_cli.py exists)."""

import pytest
import torch

import interp.cache as cache
from interp.cache import writer
from interp.cli import main


@pytest.fixture
def loads_tiny(model, monkeypatch):
    """`interp cache --model NAME` loads by name; here every name gives the tiny model."""
    import interp.models

    monkeypatch.setattr(interp.models, "load_model", lambda name, **placement: model)


def test_cache_then_verify(loads_tiny, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["cache", "--model", "tiny", "--hook", "blocks.0.hook_resid_post", "--hook", "blocks.1.hook_resid_pre",
                 "--tokens", "1_000", "--out", str(out), "--grads", "--context-size", "16", "--batch-size", "8"]) == 0
    store = cache.open_store(out)
    assert store.n_tokens == 1008 and store.has_grads and store.manifest.model == "tiny"
    assert store.manifest.config["source"]["kind"] == "zoo_corpus"
    assert main(["cache", "verify", str(out)]) == 0
    assert "OK, 1 shards, 1,008 tokens" in capsys.readouterr().out
    (out / "shard_00000.bin").write_bytes(b"x")
    assert main(["cache", "verify", str(out)]) == 2
    assert "shard_00000.bin" in capsys.readouterr().err


def test_bad_input_is_a_clean_error(loads_tiny, tmp_path, capsys):
    assert main(["cache", "--hook", "blocks.0.hook_resid_post", "--out", str(tmp_path / "s")]) == 2
    assert "--tokens required" in capsys.readouterr().err
    assert main(["cache", "--hook", "blocks.9.hook_resid_post", "--tokens", "100", "--out", str(tmp_path / "s")]) == 2
    assert "nearest valid names" in capsys.readouterr().err
    assert main(["cache", "--hook", "blocks.0.hook_resid_post", "--tokens", str(tmp_path / "none.txt"),
                 "--out", str(tmp_path / "s")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_text_file_source(loads_tiny, model, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("The cat sat on the mat near the river.\n\nMary and John went to the store. " * 20)
    main(["cache", "--hook", "blocks.0.hook_resid_post", "--tokens", str(text), "--out", str(tmp_path / "s"),
          "--context-size", "16"])
    store = cache.open_store(tmp_path / "s")
    tokens = next(iter(store.batches(store.n_tokens, shuffle=False, with_tokens=True))).tokens.reshape(-1, 16)
    assert (tokens[:, 0] == model.tokenizer.bos_token_id).all()
    assert store.manifest.config["source"]["kind"] == "text_file"
