import re

import pytest

from interp.zoo import corpus


def test_deterministic_in_seed():
    a, b, c = corpus.build(300, seed=1), corpus.build(300, seed=1), corpus.build(300, seed=2)
    assert a.documents == b.documents and a.documents != c.documents


def test_mixes_every_kind():
    kinds = set(corpus.build(500).kinds)
    assert kinds == set(corpus.MIX)


def test_prose_splits_disjoint_and_nonempty():
    train, held = corpus.prose("train"), corpus.prose("heldout")
    assert len(held) >= 50 and len(train) > 5 * len(held)
    assert not set(train) & set(held)


def test_no_heldout_ioi_prompt_in_training_corpus():
    from interp.tasks import ioi

    docs = corpus.build(2000).documents
    held = re.compile("|".join(re.escape(t).replace(r"\{", "{").replace(r"\}", "}")
                               .replace("{A}", r"\w+").replace("{B}", r"\w+").replace("{S}", r"\w+")
                               .replace("{place}", r"\w+").replace("{obj}", r"\w+")
                               for t in ioi.HELDOUT_TEMPLATES))
    train = ioi.generate(50, "train")
    assert all(held.search(p.prompt) is None for p in train)
    assert any(held.search(p.prompt) for p in ioi.generate(5, "heldout"))  # the pattern can match
    assert not any(held.search(d) for d in docs)


def test_a_recipe_mix_reweights_kinds_and_copy_stories_hold_one_name():
    from interp.tasks.vocab import NAMES

    assert corpus.build(300).documents == corpus.build(300, mix=dict(corpus.MIX)).documents
    built = corpus.build(1000, mix=dict(corpus.MIX, copies=20, prose=0))
    assert set(built.kinds) == set(corpus.MIX) - {"prose"} | {"copies"}
    copies = [d for d, k in zip(built.documents, built.kinds) if k == "copies"]
    assert len(copies) > 100
    for doc in copies:
        names = {w.strip(".,") for w in doc.split()} & set(NAMES)
        assert len(names) == 1 and doc.endswith(f" to {names.pop()}.")  # copied, never an IOI choice


@pytest.mark.parametrize("mix, match", [({"prose": 1, "poems": 2}, "unknown: poems"), ({"prose": 0}, "not all 0"),
                                        ({"prose": -1, "ioi": 2}, "non-negative")])
def test_bad_mix_is_a_clear_error(mix, match):
    with pytest.raises(ValueError, match=match):
        corpus.build(10, mix=mix)


def test_recipe_mix_is_checked_where_it_is_written():
    from interp.zoo.registry import ZooRecipe

    with pytest.raises(ValueError, match="ZooRecipe.mix"):
        ZooRecipe(mix=(("poems", 3),))
