import numpy as np
import torch

from interp.cache import sources

BOS = 0


def test_pack_starts_every_row_with_bos_and_keeps_every_token():
    docs = [[BOS, 1, 2, 3], [BOS, 4, 5, 6, 7, 8, 9], [BOS, 10]]
    rows = sources.pack(docs, 4, BOS)
    assert rows.tolist() == [[BOS, 1, 2, 3], [BOS, 4, 5, 6], [BOS, 7, 8, 9]]  # BOS prepended mid-document
    stream = [t for d in docs for t in d if t != BOS]
    assert [t for r in rows.tolist() for t in r if t != BOS] == stream[:len(stream) - 1]  # the last partial row dropped
    assert sources.pack(docs, 4, BOS, max_rows=2).shape == (2, 4)
    assert sources.pack(docs, 4, None).tolist() == [[BOS, 1, 2, 3], [BOS, 4, 5, 6], [7, 8, 9, BOS]]


def test_zoo_corpus_source_is_deterministic_and_sized(model):
    a = sources.resolve(500, model, 16, seed=0)
    b = sources.resolve(500, model, 16, seed=0)
    c = sources.resolve(500, model, 16, seed=1)
    assert a.tokens.shape == (32, 16) and torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)
    assert (a.tokens[:, 0] == model.tokenizer.bos_token_id).all()
    assert a.source["crc32"] == b.source["crc32"] != c.source["crc32"]


def test_dataset_directory_source(model, tmp_path):
    import datasets

    datasets.Dataset.from_dict({"input_ids": [[1] * 16, [2] * 16]}).save_to_disk(str(tmp_path / "ids"))
    rows = sources.resolve(tmp_path / "ids", model, 16, seed=0)
    assert rows.tokens.tolist() == [[1] * 16, [2] * 16] and rows.source["column"] == "input_ids"
    datasets.Dataset.from_dict({"text": ["Mary went to the store. " * 10]}).save_to_disk(str(tmp_path / "text"))
    assert sources.resolve(tmp_path / "text", model, 16, seed=0).source["column"] == "text"


def test_out_of_vocabulary_ids_are_rejected(model):
    import pytest

    with pytest.raises(ValueError, match=r"vocabulary is \[0, 1536\)"):
        sources.resolve(torch.full((2, 8), 5000), model, None, seed=0)
    with pytest.raises(TypeError, match="integer tensor"):
        sources.resolve(torch.zeros(2, 8), model, None, seed=0)


def test_streaming_packer_matches_packing_the_whole_stream_at_once(monkeypatch):
    import numpy as np

    rng = np.random.default_rng(0)
    docs = [[BOS, *rng.integers(1, 50, rng.integers(1, 30)).tolist()] for _ in range(300)]
    stream = np.array([t for d in docs for t in d])
    whole, p = [], 0  # the packing rule applied to the whole stream in one go
    while True:
        take = 16 if stream[p] == BOS else 15
        if p + take > len(stream):
            break
        whole.append(stream[p:p + take].tolist() if take == 16 else [BOS, *stream[p:p + take].tolist()])
        p += take
    monkeypatch.setattr(sources, "_CHUNK_DOCUMENTS", 7)  # many chunk boundaries inside rows
    assert sources.pack(docs, 16, BOS).tolist() == whole
    assert sources.pack(docs, 16, BOS, max_rows=len(whole) - 3).tolist() == whole[:-3]


def test_text_file_rows_are_spilled_to_disk_not_held_in_memory(model, tmp_path, monkeypatch):
    import numpy as np

    text = "\n\n  \n".join(f"Mary and John went to the store number {i}.\nJohn gave a drink to Mary." for i in range(500))
    (tmp_path / "t.txt").write_text(text)
    monkeypatch.setattr(sources, "_CHUNK_DOCUMENTS", 64)
    in_memory = sources.resolve(tmp_path / "t.txt", model, 16, seed=0)
    spilled = sources.resolve(tmp_path / "t.txt", model, 16, seed=0, spill_dir=tmp_path / "spill")
    assert torch.equal(in_memory.tokens, spilled.tokens) and in_memory.source == spilled.source
    assert isinstance(spilled.tokens.numpy(), np.memmap) or spilled.tokens.numpy().base is not None
    assert list((tmp_path / "spill").iterdir()) == []  # the spill file is unlinked: nothing left behind
    documents = [d.strip() for d in text.split("\n\n  \n")]  # the documents, tokenized in one go
    assert torch.equal(in_memory.tokens, sources.pack(sources.tokenize_documents(documents, model.tokenizer), 16,
                                                      model.tokenizer.bos_token_id))


def test_documents_packed_counts_the_documents_the_first_rows_hold():
    """The first n rows are the same whatever follows the counted documents, and change (or run
    short) when the last counted one is replaced, even where the rows hold only its first token:
    exactly those documents are in them."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        docs = [[0, *rng.integers(1, 50, size=rng.integers(0, 40)).tolist()] for _ in range(rng.integers(1, 20))]
        ctx = int(rng.integers(2, 16))
        n = int(rng.integers(0, len(sources.pack(docs, ctx, 0)) + 1))
        k = sources.documents_packed(docs, ctx, n)
        first = sources.pack(docs, ctx, 0, max_rows=n)
        other = [[7, *[99] * 60]] * 3  # other tokens from the first on
        assert torch.equal(sources.pack(docs[:k] + other, ctx, 0, max_rows=n), first)
        if k:
            changed = sources.pack(docs[:k - 1] + other, ctx, 0, max_rows=n)
            assert not torch.equal(changed, first)
