import json
import shutil

import pytest

from interp import load_model
from interp.models import ModelLoadError
from interp.zoo.registry import get


@pytest.fixture
def model_copy(tmp_path):
    directory = tmp_path / "m"
    shutil.copytree(get("zoo-dense").directory, directory)
    return directory


def test_unknown_name_lists_the_zoo():
    with pytest.raises(ModelLoadError, match="'nope'.*zoo-dense, zoo-moe"):
        load_model("nope")


def test_loads_a_model_directory(model_copy, zoo_dense):
    model = load_model(model_copy)
    toks = zoo_dense.to_tokens("When Mary and John went to the store")
    assert (model(toks) == zoo_dense(toks)).all()


def test_truncated_weights_name_the_file(model_copy):
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="model.safetensors.*truncated or corrupt"):
        load_model(model_copy)


def test_config_that_does_not_match_weights(model_copy):
    config = json.loads((model_copy / "config.json").read_text())
    config["architecture"]["d_mlp"] = 256
    (model_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"does not match .*config.json.*blocks\.0\.mlp\.W_in"):
        load_model(model_copy)


def test_missing_weights(model_copy):
    (model_copy / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="model.safetensors is missing"):
        load_model(model_copy)


def test_pretrained_name_offline_says_so(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        load_model("gpt2")
    except ModelLoadError as e:
        assert "not available offline" in str(e) and "zoo-dense" in str(e)
    else:  # the weights happen to be in the local cache: loading by name works
        pass
