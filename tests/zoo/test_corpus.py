import re

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
