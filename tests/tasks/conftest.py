import pytest

from tests.tasks import task_tokenizers as tokenizers


@pytest.fixture(scope="session")
def zoo_tokenizer():
    return tokenizers.zoo_tokenizer()


@pytest.fixture(scope="session")
def split_tokenizer(tmp_path_factory):
    return tokenizers.split_tokenizer(tmp_path_factory.mktemp("tok") / "split-bpe")


@pytest.fixture(scope="session")
def tiny_bpe(tmp_path_factory):
    return tokenizers.tiny_bpe(tmp_path_factory.mktemp("tok") / "tiny-bpe")


@pytest.fixture(scope="session")
def llama_tokenizer():
    return tokenizers.llama_tokenizer()


@pytest.fixture(scope="session")
def split_model(split_tokenizer):
    return tokenizers.tiny_model(split_tokenizer)


@pytest.fixture(scope="session")
def llama_model(llama_tokenizer):
    return tokenizers.tiny_model(llama_tokenizer)
