"""Loading Hugging Face checkpoints: both TransformerLens classes agree, bad checkpoints are
clear errors, hub names resolve from the local cache only, and the library's paths keep
every tensor on the model's device."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from interp.errors import ConfigError
from interp.fixtures import build_checkpoint
from interp.models import ModelLoadError, load_model
from interp.patching.pairs import PromptPair, pair_inputs, score

PAIRS = [PromptPair("When Mary and John went to the store, John gave a drink to",
                    "When Mary and John went to the store, Mary gave a drink to", " Mary", " John"),
         PromptPair("When Anna and Paul went to the park, Paul gave a ball to",
                    "When Anna and Paul went to the park, Anna gave a ball to", " Anna", " Paul")]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return build_checkpoint("llama", tmp_path_factory.mktemp("ckpt") / "llama")


@pytest.fixture
def llama_copy(llama, tmp_path):
    return shutil.copytree(llama, tmp_path / "copy")


@pytest.mark.slow
def test_hooked_and_bridge_give_the_same_patching_scores(llama):
    hooked, bridge = load_model(llama, device="cpu", backend="hooked"), load_model(llama, device="cpu", backend="bridge")
    assert type(bridge).__name__ == "TransformerBridge"
    a, b = pair_inputs(hooked, PAIRS), pair_inputs(bridge, PAIRS)
    assert torch.equal(a.clean, b.clean)
    for method in ("relp", "atp", "ap"):
        sa = score(hooked, method, a, ("resid_pre", "attn_out", "mlp_out", "neuron"))
        sb = score(bridge, method, b, ("resid_pre", "attn_out", "mlp_out", "neuron"))
        assert list(sa["node"]) == list(sb["node"])
        torch.testing.assert_close(torch.tensor(sa["score"].values), torch.tensor(sb["score"].values),
                                   atol=1e-4, rtol=1e-4)


def test_a_directory_name_does_not_choose_the_family(llama, tmp_path):
    # TransformerLens keys some families on name substrings; a "gemma" directory holding a Llama loads as Llama.
    misleading = shutil.copytree(llama, tmp_path / "gemma-2-2b")
    assert load_model(misleading, device="cpu").cfg.original_architecture == "LlamaForCausalLM"


def test_missing_tokenizer_names_it(llama_copy):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (llama_copy / name).unlink()
    with pytest.raises(ModelLoadError, match="no tokenizer files.*tokenizer.json"):
        load_model(llama_copy, device="cpu")


def test_pickled_weights_are_refused(llama_copy):
    (llama_copy / "model.safetensors").rename(llama_copy / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match=r"model.safetensors is missing.*pytorch_model.bin.*pickle"):
        load_model(llama_copy, device="cpu")


def test_unknown_model_type_lists_the_families(llama_copy):
    config = json.loads((llama_copy / "config.json").read_text())
    config.update(model_type="frobnicator", architectures=["FrobnicatorForCausalLM"])
    (llama_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"'FrobnicatorForCausalLM'.*'frobnicator'.*supported families: gpt2.*llama"
                                             r".*TransformerBridge: .*Gemma2"):
        load_model(llama_copy, device="cpu")


def test_weights_that_do_not_match_the_config(llama_copy):
    config = json.loads((llama_copy / "config.json").read_text())
    config["intermediate_size"] = 2 * config["intermediate_size"]
    (llama_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"does not match .*config.json|cannot read the weights"):
        load_model(llama_copy, device="cpu")


def test_truncated_weights_name_the_file(llama_copy):
    weights = llama_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match=r"copy.*(truncated|corrupt|cannot read)"):
        load_model(llama_copy, device="cpu")


def test_hub_name_resolves_from_the_local_cache_only(llama, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    snapshot = cache / "models--acme--tiny-llama" / "snapshots" / "0123abc"
    shutil.copytree(llama, snapshot)
    (cache / "models--acme--tiny-llama" / "refs").mkdir()
    (cache / "models--acme--tiny-llama" / "refs" / "main").write_text("0123abc")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    model = load_model("acme/tiny-llama", device="cpu")
    assert model.cfg.n_layers == 2
    with pytest.raises(ModelLoadError, match=r"'acme/other'.*looked in .*hub; it holds acme/tiny-llama"):
        load_model("acme/other", device="cpu")


def test_an_unavailable_device_is_refused_before_loading(llama):
    with pytest.raises(ConfigError, match="device='cuda:7'"):
        load_model(llama, device="cuda:7")


@pytest.mark.parametrize("method", ["atp", "relp"])
def test_patching_computes_on_the_models_device(llama, method):
    """On `meta` (no data), forward and backward run to the end and fail only where the scores
    leave the device for the DataFrame; a tensor the library made on the CPU would fail earlier
    with a device mismatch."""
    from interp.patching import METHODS

    model = load_model(llama, device="meta")
    clean = model.to_tokens([PAIRS[0].clean]).to("meta")

    def metric(logits):
        return logits[:, -1, 5].mean() - logits[:, -1, 7].mean()

    with pytest.raises(NotImplementedError, match="Cannot copy out of meta tensor") as info:
        METHODS[method](model, clean, clean.clone(), metric, components=("resid_pre", "mlp_out", "neuron"))
    assert info.traceback[-1].name != "forward"  # got past the model
    assert any(entry.name == "scores_frame" for entry in info.traceback)
