"""What a user runs, on random-weight checkpoints of real architectures (`interp.fixtures`).

Each family is a `save_pretrained` directory, loaded through `interp.load_model` as a user's
downloaded checkpoint would be. On each: load (logits equal the Hugging Face model's),
`interp cache`, `interp train-sae` + `eval-sae`, `interp patch pairs` with RelP, AtP and AP, a
steering direction + `interp steer generate`, a controller forward; on the MoE families
`interp moe scan / ablate / force` on TransformerLens's MoE blocks.
"""

from __future__ import annotations

import json

import pytest
import torch

from interp import cache
from interp.cli import main
from interp.fixtures import FAMILIES, build_checkpoint
from interp.models import load_model

pytestmark = pytest.mark.slow

HOOK = "blocks.1.hook_resid_pre"
MOE = ("olmoe", "mixtral")
PAIRS = [
    {"clean": "When Mary and John went to the store, John gave a drink to",
     "corrupt": "When Mary and John went to the store, Mary gave a drink to", "answer": " Mary", "wrong": " John"},
    {"clean": "When Anna and Paul went to the park, Paul gave a ball to",
     "corrupt": "When Anna and Paul went to the park, Anna gave a ball to", "answer": " Anna", "wrong": " Paul"},
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    return {family: build_checkpoint(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("pairs") / "ioi.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    return path


@pytest.mark.parametrize("family", FAMILIES)
def test_loads_with_the_checkpoints_logits(family, checkpoints):
    from transformers import AutoModelForCausalLM

    model = load_model(checkpoints[family], device="cpu")
    expected = "TransformerBridge" if family == "gemma2" else "HookedTransformer"
    assert type(model).__name__ == expected
    hf = AutoModelForCausalLM.from_pretrained(checkpoints[family], attn_implementation="eager",
                                              local_files_only=True)  # the fixture directory: nothing is fetched
    tokens = model.to_tokens(PAIRS[0]["clean"])
    with torch.no_grad():
        ours, theirs = model(tokens), hf(tokens).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_what_a_user_runs(family, checkpoints, pairs_file, tmp_path, capsys):
    path = str(checkpoints[family])
    store = tmp_path / "store"
    assert main(["cache", "--model", path, "--hook", HOOK, "--tokens", "2048", "--out", str(store),
                 "--context-size", "32", "--device", "cpu"]) == 0
    assert cache.open_store(store).n_tokens == 2048

    runs = tmp_path / "saes"
    assert main(["train-sae", "--model", path, "--hook", HOOK, "--cache-tokens", "4096", "--cache-dir",
                 str(tmp_path / "job-cache"), "--eval-tokens", "1024", "--out-dir", str(runs), "--run", "r",
                 "--n-latents", "128", "--k", "8", "--batch-size", "256", "--n-tokens", "4096", "--init-tokens",
                 "1024", "--no-progress"]) == 0
    metrics = json.loads((runs / "r" / "metrics.json").read_text())
    assert metrics  # the job evaluated the SAE spliced into this model
    capsys.readouterr()
    assert main(["eval-sae", str(runs / "r"), "--model", path, "--eval-tokens", "1024"]) == 0
    assert "ce_recovered" in capsys.readouterr().out

    for method in ("relp", "atp", "ap"):
        assert main(["patch", "pairs", str(pairs_file), "--model", path, "--method", method,
                     "--out", str(tmp_path / "patch"), "--device", "cpu"]) == 0
        assert (tmp_path / "patch" / f"ioi-{family}-{method}.csv").is_file()

    from interp.steering import Direction

    model = load_model(path, device="cpu")
    direction = Direction.mean_difference(model, ["User: how do I pick a lock?\nAssistant:"],
                                          ["User: how do I bake bread?\nAssistant:"], layer=1)
    direction.save(tmp_path / "direction")
    capsys.readouterr()
    assert main(["steer", "generate", "Hello there", "--model", path, "--direction", str(tmp_path / "direction"),
                 "--layers", "1", "--coefficients", "4", "--max-new-tokens", "3"]) == 0
    assert "Hello there" in capsys.readouterr().out

    if family in MOE:
        # A random-weight model refuses nothing, so fTRI has one class: a clear error, not a score.
        assert main(["moe", "scan", "--model", path, "--train", "4", "--top", "3"]) == 2
        assert "both classes need at least one prompt" in capsys.readouterr().err
        small = ["--train", "4", "--heldout", "4", "--prose", "2", "--ioi", "4"]
        assert main(["moe", "ablate", "--model", path, "--experts", "0:1,1:2", *small]) == 0
        assert main(["moe", "force", "--model", path, "--experts", "1:0", "--train", "4", "--heldout", "4"]) == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_controller_forward(family, checkpoints):
    from interp.steering import ControllerConfig, ControllerSteering, SteeringController
    from interp.steering.apply import generate_steered
    from interp.steering.directions import Direction

    model = load_model(checkpoints[family], device="cpu")
    n_layers, d_model = model.cfg.n_layers, model.cfg.d_model
    direction = Direction(torch.randn(d_model, generator=torch.Generator().manual_seed(0)), "random", layer=1)
    controller = SteeringController(ControllerConfig(d_model=d_model, n_layers=n_layers, read_layers=(0, 1),
                                                     hidden=16), direction)
    for mode in ("paper", "reference"):  # a clean pass over the prompt; the current forward
        replies, trace = generate_steered(model, ControllerSteering(controller, mode=mode), ["Hello there", "Hi"],
                                          max_new_tokens=2)
        assert len(replies) == 2 and trace.last_output is not None


@pytest.mark.parametrize("family", MOE)
def test_moe_scan_scores_experts(family, checkpoints):
    from interp import moe

    model = load_model(checkpoints[family], device="cpu")
    prompts = ["When Mary and John went to the store", "How do I fix my bike?", "Hello there", "Tell me a story"]
    capture = moe.capture_routing(model, prompts)
    scores = moe.score_experts(capture, [True, False, True, False], "count")
    n_layers, n_experts, _ = moe.shape(model)
    assert len(scores) == n_layers * n_experts and scores.notna().all().all()
