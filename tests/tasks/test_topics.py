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
