import pytest
import torch

from interp.tasks import ioi


def test_deterministic_in_seed():
    assert ioi.generate(50, "train", seed=3) == ioi.generate(50, "train", seed=3)
    assert ioi.generate(50, "train", seed=3) != ioi.generate(50, "train", seed=4)


def test_splits_share_no_names_or_templates():
    train, held = ioi.generate(300, "train"), ioi.generate(300, "heldout")
    assert {p.io for p in train} | {p.s for p in train} <= set(ioi.names("train"))
    assert {p.io for p in held} | {p.s for p in held} <= set(ioi.names("heldout"))
    assert not set(ioi.names("train")) & set(ioi.names("heldout"))
    assert not {p.template for p in train} & {p.template for p in held}
    assert len(ioi.names("train")) + len(ioi.names("heldout")) >= 100


def test_pair_structure():
    for p in ioi.generate(100, "train", seed=1):
        assert p.io != p.s
        assert p.prompt.count(p.io) == 1 and p.prompt.count(p.s) == 2  # IO once, S repeated
        assert p.corrupt.count(p.io) == 2 and p.corrupt.count(p.s) == 1  # the roles swap
        assert p.answer == " " + p.io
    orders = [p.order for p in ioi.generate(10)]
    assert orders.count("ABBA") == orders.count("BABA") == 5


def test_logit_diff():
    logits = torch.zeros(2, 3, 5)
    logits[0, -1, 1], logits[1, -1, 2] = 2.0, 5.0
    diff = ioi.logit_diff(logits, torch.tensor([1, 3]), torch.tensor([0, 2]))
    assert diff.tolist() == [2.0, -5.0]


def test_bad_input():
    with pytest.raises(ValueError, match="split='test'"):
        ioi.generate(5, "test")
    with pytest.raises(ValueError, match="n=0"):
        ioi.generate(0)
    with pytest.raises(ValueError, match="not a train template"):
        ioi.generate(5, "train", template=ioi.HELDOUT_TEMPLATES[0])


def test_names_from_another_split():
    mixed = ioi.generate(60, "heldout", names_split="train")
    assert {p.template for p in mixed} <= set(ioi.templates("heldout"))
    assert {p.io for p in mixed} | {p.s for p in mixed} <= set(ioi.names("train"))
    assert [p.prompt for p in ioi.generate(20, "train", names_split="train")] == \
        [p.prompt for p in ioi.generate(20, "train")]


def test_scores_match_one_prompt_at_a_time(zoo_dense):
    prompts = ioi.generate(12, "heldout", seed=5)
    io, s = ioi.answer_ids(zoo_dense, prompts)
    one_by_one = torch.cat([ioi.logit_diff(zoo_dense(zoo_dense.to_tokens(p.prompt)), io[i:i + 1], s[i:i + 1])
                            for i, p in enumerate(prompts)])
    scores = ioi.ioi_scores(zoo_dense, prompts, batch_size=5)
    assert scores.accuracy == (one_by_one > 0).float().mean().item()
    assert scores.logit_diff == pytest.approx(one_by_one.mean().item(), abs=1e-4)
    accuracy, logit_diff = scores  # a named tuple: unpacks as (accuracy, mean logit difference)
    assert accuracy > 0.9 and logit_diff > 0


def test_scores_need_prompts(zoo_dense):
    with pytest.raises(ValueError, match="prompts is empty"):
        ioi.ioi_scores(zoo_dense, [])


# --- other tokenizers ---------------------------------------------------------------------------

def test_names_are_those_the_tokenizer_keeps_whole(split_tokenizer):
    for split in ("train", "heldout"):
        kept, every = ioi.names(split, split_tokenizer), ioi.names(split)
        dropped = [n for n in every if n not in kept]
        assert len(kept) >= 8 and len(dropped) >= 8  # the fixture splits about half of them
        assert list(kept) == [n for n in every if n in kept]  # the lists' order is kept
        for name in dropped:  # each dropped name really is several tokens in a sentence
            assert len(split_tokenizer.tokenize(f"to {name}")) > 2
        for name in kept:
            assert len(split_tokenizer.tokenize(f"to {name}")) == 2


def test_prompts_for_a_tokenizer_that_splits_names(split_tokenizer):
    tok = split_tokenizer
    prompts = ioi.generate(200, "train", seed=1, tokenizer=tok)
    assert {p.io for p in prompts} | {p.s for p in prompts} <= set(ioi.names("train", tok))
    for p in prompts[:50]:
        prompt_ids = tok.encode(p.prompt, add_special_tokens=False)
        text_ids = tok.encode(p.prompt + p.answer, add_special_tokens=False)
        # the answer is one more token, read off the last position
        assert text_ids[:-1] == prompt_ids and tok.decode(text_ids[-1:]) == p.answer
    # every place and object is one token too: a template's prompts all have one token length
    tpl = ioi.TRAIN_TEMPLATES[5]
    lengths = {len(tok.encode(p.prompt, add_special_tokens=False))
               for p in ioi.generate(100, "train", template=tpl, tokenizer=tok)}
    assert len(lengths) == 1
    # and the plain lists would not: some prompt of theirs has a name this tokenizer splits
    assert any(p.io not in ioi.names("train", tok) for p in ioi.generate(50, "train"))


def test_too_few_whole_names_is_a_clear_error(tiny_bpe):
    from interp.errors import ConfigError

    with pytest.raises(ConfigError, match=r"tokenizer '.*tiny-bpe' keeps only 0 of the 123 IOI train names as one "
                                          r"token .*needs at least 2. It splits e.g. \['Mary'"):
        ioi.generate(5, "train", tokenizer=tiny_bpe)
    with pytest.raises(ConfigError, match="tokenizer=int is not allowed"):
        ioi.generate(5, "train", tokenizer=3)


def test_answer_ids_on_a_model_with_another_tokenizer(split_model):
    from interp.errors import ConfigError

    prompts = ioi.generate(20, "heldout", tokenizer=split_model)
    io, s = ioi.answer_ids(split_model, prompts)
    # the ids are the last token of prompt + answer, as the model sees it
    last = [split_model.to_tokens(p.prompt + p.answer)[0, -1].item() for p in prompts]
    assert io.tolist() == last
    assert all(split_model.to_str_tokens(" " + p.s, prepend_bos=False) == [" " + p.s] for p in prompts)
    assert s.tolist() == [split_model.to_single_token(" " + p.s) for p in prompts]
    unfiltered = ioi.generate(20, "heldout")
    with pytest.raises(ConfigError, match=r"IOI name '\w+' is several tokens for tokenizer '.*split-bpe'.*"
                                          r"tokenizer=model"):
        ioi.answer_ids(split_model, unfiltered)


def test_scores_on_a_model_with_another_tokenizer(split_model):
    prompts = ioi.generate(10, "train", seed=2, tokenizer=split_model)
    io, s = ioi.answer_ids(split_model, prompts)
    one_by_one = torch.cat([ioi.logit_diff(split_model(split_model.to_tokens(p.prompt)), io[i:i + 1], s[i:i + 1])
                            for i, p in enumerate(prompts)])
    scores = ioi.ioi_scores(split_model, prompts, batch_size=4)
    assert scores.logit_diff == pytest.approx(one_by_one.mean().item(), abs=1e-5)
    assert scores.accuracy == (one_by_one > 0).float().mean().item()


def test_answer_ids_on_the_zoo_are_its_single_tokens(zoo_dense):
    prompts = ioi.generate(40, "train", seed=4)
    io, s = ioi.answer_ids(zoo_dense, prompts)
    assert io.tolist() == [zoo_dense.to_single_token(" " + p.io) for p in prompts]
    assert s.tolist() == [zoo_dense.to_single_token(" " + p.s) for p in prompts]
