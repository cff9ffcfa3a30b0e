"""The refusal task's chat formats: the zoo's, and a chat template's (Llama-3-style, on the
zoo tokenizer with the turn tokens added; Qwen-style, with no BOS in the template)."""

import pytest

from interp.errors import ConfigError
from interp.generation import greedy
from interp.tasks import refusal
from interp.tasks.chat import CHAT_COMPLIANCE, CHAT_REFUSALS, REFUSAL, ZOO_CHAT, ChatFormat, chat_format
from tests.tasks.task_tokenizers import LLAMA_TEMPLATE, tiny_model

QWEN_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_the_zoo_format(zoo_tokenizer):
    assert ZOO_CHAT.prompt("Hi?") == "User: Hi?\nAssistant:"
    assert ZOO_CHAT.refusal == REFUSAL == " I can't help with that."
    assert ZOO_CHAT.is_refusal(REFUSAL + " More.") and ZOO_CHAT.is_refusal("I can't help with that.")
    assert not ZOO_CHAT.is_refusal(" I can't") and not ZOO_CHAT.is_refusal("\n I can't help with that.")
    custom = chat_format(zoo_tokenizer, refusals=(" No.",))  # no template: the zoo format, another judge
    assert custom.template is None and custom.is_refusal(" No. Never.") and not custom.is_refusal(REFUSAL)


def test_a_llama_style_template(llama_tokenizer, llama_model):
    chat = chat_format(llama_model)
    assert chat == chat_format(llama_tokenizer) and chat.template == LLAMA_TEMPLATE
    prompt = chat.prompt("How do I fix my bike?")
    # the template's BOS text is removed: interp's tokenisation prepends the one BOS
    assert prompt == ("<|start_header_id|>user<|end_header_id|>\n\nHow do I fix my bike?<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\n")
    ids = llama_model.to_tokens(prompt)[0].tolist()
    bos = llama_tokenizer.bos_token_id
    assert ids[0] == bos and ids.count(bos) == 1
    header = llama_tokenizer.convert_tokens_to_ids("<|start_header_id|>")
    assert ids[1] == header and ids.count(header) == 2  # the turn tokens are single special tokens
    assert (chat.refusals, chat.compliance) == (CHAT_REFUSALS, CHAT_COMPLIANCE)


def test_generated_prompts_carry_their_format(llama_model):
    chat = chat_format(llama_model)
    for kind in refusal.KINDS:
        plain, chatted = refusal.generate(30, kind, "heldout", 2), refusal.generate(30, kind, "heldout", 2, chat=chat)
        assert [p.request for p in plain] == [p.request for p in chatted]  # the requests are the task's
        assert all(p.prompt == chat.prompt(p.request) and p.chat is chat for p in chatted)
        assert all(p.text == p.prompt + p.answer for p in chatted)
    harmful = refusal.generate(3, "harmful", chat=chat)
    assert all(p.answer == "I can't" for p in harmful)
    assert refusal.generate(1, "benign", chat=chat)[0].answer.startswith("Sure! Here is how to ")


def test_a_template_without_bos_is_kept_whole(zoo_tokenizer):
    tok = zoo_tokenizer.__class__.from_pretrained(zoo_tokenizer.name_or_path, add_bos_token=True)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = QWEN_TEMPLATE
    assert chat_format(tok).prompt("Hi") == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                                             "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_judge_with_a_template(llama_model):
    chat = chat_format(llama_model, refusals=("I'm sorry", "I cannot"))
    assert chat.refusal == "I'm sorry"
    assert chat.is_refusal("I'm sorry, I can't.") and chat.is_refusal("\n\nI cannot do that")
    assert not chat.is_refusal("Sure! I'm sorry") and not chat.is_refusal("I can't")
    assert refusal.is_refusal("I cannot", chat) and not refusal.is_refusal("I cannot")
    assert chat.reply_tokens(llama_model) == max(len(llama_model.to_tokens(r, prepend_bos=False)[0])
                                                 for r in chat.refusals)
    assert refusal.reply_tokens(llama_model) == len(llama_model.to_tokens(REFUSAL, prepend_bos=False)[0])


def test_refusal_rate_judges_with_the_prompts_format(llama_model):
    # The refusal here is what this random model says to the first prompt: so that one is
    # refused, and any prompt it answers otherwise is not.
    requests = refusal.generate(6, "harmful", "heldout", 1)
    chat = chat_format(llama_model)
    first = greedy(llama_model, [chat.prompt(requests[0].request)], 3)[0]
    chat = chat_format(llama_model, refusals=(first,))
    prompts = refusal.generate(6, "harmful", "heldout", 1, chat=chat)
    replies = greedy(llama_model, [p.prompt for p in prompts], chat.reply_tokens(llama_model))
    expected = sum(r.lstrip().startswith(first.strip()) for r in replies) / 6
    assert replies[0].startswith(first) and expected > 0
    assert refusal.refusal_rate(llama_model, prompts) == expected
    assert refusal.refusal_rate(llama_model, prompts[:1]) == 1.0


def test_bad_formats(llama_tokenizer):
    with pytest.raises(ConfigError, match=r"ChatFormat.refusals=\(\) is not allowed"):
        ChatFormat(refusals=())
    with pytest.raises(ConfigError, match=r"ChatFormat.refusals=\"I can't\" is not allowed: a list of strings"):
        ChatFormat(refusals="I can't")
    with pytest.raises(ConfigError, match=r"ChatFormat.refusals=\('I cannot', ''\) is not allowed"):
        chat_format(llama_tokenizer, refusals=("I cannot", ""))
    with pytest.raises(ConfigError, match="ChatFormat.tokenizer=NoneType is not allowed with a template"):
        ChatFormat(template=LLAMA_TEMPLATE)
    with pytest.raises(ConfigError, match="adds nothing with add_generation_prompt=True"):
        ChatFormat(template="{% for m in messages %}{{ m['content'] }}{% endfor %}", tokenizer=llama_tokenizer)
    with pytest.raises(ConfigError, match="cannot render a single user turn: TemplateError: needs a system turn"):
        ChatFormat(template="{{ raise_exception('needs a system turn') }}", tokenizer=llama_tokenizer)
    with pytest.raises(ConfigError, match="does not write the user's message"):
        ChatFormat(template="{% if add_generation_prompt %}A:{% endif %}", tokenizer=llama_tokenizer)
    with pytest.raises(ConfigError, match="chat=str is not allowed: an interp.tasks.chat.ChatFormat"):
        refusal.generate(2, "harmful", chat="zoo")
    with pytest.raises(ConfigError, match="tokenizer=str is not allowed"):
        chat_format("zoo-dense")


def test_two_formats_in_one_rate(llama_model):
    # zoo-format and template prompts in one call: each reply judged by its own prompt's format
    zoo = refusal.generate(2, "harmful", "heldout")
    chat = chat_format(llama_model)
    both = zoo + refusal.generate(2, "harmful", "heldout", chat=chat)
    n = max(ZOO_CHAT.reply_tokens(llama_model), chat.reply_tokens(llama_model))
    replies = greedy(llama_model, [p.prompt for p in both], n)
    expected = sum(p.chat.is_refusal(r) for p, r in zip(both, replies)) / 4
    assert refusal.refusal_rate(llama_model, both) == expected


def test_tiny_model_helper_is_deterministic(llama_tokenizer):
    a, b = tiny_model(llama_tokenizer, seed=3), tiny_model(llama_tokenizer, seed=3)
    assert all((pa == pb).all() for pa, pb in zip(a.parameters(), b.parameters()))
