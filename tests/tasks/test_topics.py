from interp.tasks import topics


def test_labels_are_true():
    for s in topics.generate(100, seed=5):
        for topic, word in s.words.items():
            assert word in s.text.split() or word in s.text
            assert topics.topic_of(word) == topic
    assert topics.topic_of(" Red") == "colour"
    assert topics.topic_of("table") is None


def test_deterministic_and_split_templates():
    assert topics.generate(10, seed=1) == topics.generate(10, seed=1)
    assert not set(topics.TRAIN_TEMPLATES) & set(topics.HELDOUT_TEMPLATES)


def test_words_a_tokenizer_keeps_whole(split_tokenizer):
    tok = split_tokenizer
    sentences = topics.generate(200, "train", seed=2, tokenizer=tok)
    used = {w for s in sentences for w in s.words.values()}
    assert used and all(len(tok.tokenize(f"to {w}")) == 2 for w in used)  # each read off one position
    plain = {w for s in topics.generate(200, "train", seed=2) for w in s.words.values()}
    assert any(len(tok.tokenize(f"to {w}")) > 2 for w in plain)  # the fixture does split some
