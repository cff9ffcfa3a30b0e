import json
import shutil

import pytest
import torch

from interp import load_model
from interp.errors import ConfigError
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


def test_hub_name_not_in_the_cache_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelLoadError, match=r"'gpt2'.*zoo-dense, zoo-moe.*looked in .*hub.*holds no models.*never "
                                             "downloads"):
        load_model("gpt2", device="cpu")


def test_unavailable_device_is_refused_before_loading():
    with pytest.raises(ConfigError, match="device='cuda'.*allowed here: cpu"):
        load_model("zoo-dense", device="cuda" if not torch.cuda.is_available() else "cuda:99")
