"""A tiny random model saved as a model directory (config.json, model.safetensors, tokenizer),
so that in-process tests, CLI tests and torchrun subprocesses all load the same weights."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from interp.models import build_model
from interp.zoo import corpus
from interp.zoo import tokenizer as zoo_tokenizer

ARCHITECTURE = dict(n_layers=2, d_model=32, n_ctx=32, d_head=8, n_heads=4, d_mlp=64, act_fn="gelu",
                    normalization_type="LN", seed=0)
VOCAB = 1536  # the smallest size at which the zoo tokenizer keeps every task word whole on 500 documents


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny-model")
    tok = zoo_tokenizer.train(corpus.build(500, 0).documents, VOCAB)
    architecture = dict(ARCHITECTURE, d_vocab=len(tok))
    model = build_model(architecture, tok)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "model.safetensors"))
    zoo_tokenizer.save(tok, directory)
    (directory / "config.json").write_text(json.dumps({"architecture": architecture}))
    return directory


def load_tiny(directory):
    """The tiny model from its directory, built directly (the same weights `interp.load_model` reads)."""
    from safetensors.torch import load_file

    architecture = json.loads((directory / "config.json").read_text())["architecture"]
    model = build_model(architecture, zoo_tokenizer.load(directory))
    model.load_state_dict(load_file(str(directory / "model.safetensors")))
    return model.eval()


@pytest.fixture(scope="session")
def model(model_dir):
    return load_tiny(model_dir)


@pytest.fixture
def rows():
    """(24, 16) random token ids."""
    return torch.randint(1, 1000, (24, 16), generator=torch.Generator().manual_seed(0))
