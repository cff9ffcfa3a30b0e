"""Zoo training: IOI documents and the name embeddings (`ZooRecipe.name_embeddings_from_ioi`)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from interp.models import build_model
from interp.tasks.vocab import NAMES, TRAIN_NAMES
from interp.zoo import registry, train
from interp.zoo import tokenizer as zoo_tokenizer


def _tiny_spec(**train_kwargs) -> registry.ZooSpec:
    cfg = registry.ZooRecipe(steps=3, warmup=0, n_documents=300, mix=(("ioi", 1),), weight_decay=0.0,
                               **train_kwargs)
    return registry.ZooSpec("zoo-tiny", "test", n_layers=1, d_model=16, n_heads=2, d_head=8, d_mlp=16,
                            n_ctx=24, train=cfg)


@pytest.mark.parametrize("from_ioi", [True, False])
def test_ioi_documents_train_name_embeddings_only_when_asked(tmp_path, monkeypatch, from_ioi):
    spec = _tiny_spec(name_embeddings_from_ioi=from_ioi)
    monkeypatch.setitem(registry.ZOO, spec.name, spec)
    out = train.train(spec.name, out_dir=tmp_path / "m", progress=False)

    tok = zoo_tokenizer.load(out.directory)
    architecture = json.loads((out.directory / "config.json").read_text())["architecture"]
    torch.manual_seed(spec.train.seed)
    initial = build_model(architecture, tok).W_E.detach()
    final = load_file(str(out.directory / "model.safetensors"))["embed.W_E"]
    names = [tok.encode(" " + n, add_special_tokens=False)[0] for n in TRAIN_NAMES]
    others = [tok.encode(w, add_special_tokens=False)[0] for w in (" and", " the", " to")]

    # The corpus is IOI prompts only, so every name occurrence is in an IOI document.
    name_moved = (final[names] - initial[names]).abs().amax(dim=1)
    if from_ioi:  # most training names occur in the 3 steps' windows
        assert (name_moved > 0).float().mean() > 0.5
    else:
        assert (name_moved == 0).all()
    assert ((final[others] - initial[others]).abs().amax(dim=1) > 0).all()


def test_corpus_marks_the_names_of_ioi_documents_only():
    spec = registry.ZooSpec("zoo-tiny", "test", n_ctx=24,
                            train=registry.ZooRecipe(n_documents=300, mix=(("ioi", 1), ("names", 1))))
    tok, data = train.tokenize_corpus(spec)
    marked = {tok.decode([int(t)]).strip() for t in data.tokens[data.ioi_name]}
    assert marked and marked <= set(NAMES)
    unmarked_names = {tok.decode([int(t)]).strip() for t in data.tokens[~data.ioi_name]} & set(NAMES)
    assert unmarked_names  # name stories mention names too, and are left alone
