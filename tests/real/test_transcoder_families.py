"""A skip-transcoder on a real architecture, as a user gets one: `interp train-sae
--target-hook` on a random-weight checkpoint of each family, `interp eval-sae` on the run,
sae-lens loading it with identical outputs, and a circuit over its latents found with RelP
and verified by exact patching."""

import json

import pytest
import sae_lens
import torch

import interp.sae.sae_lens_classes  # noqa: F401  (registers topk_skip_transcoder for sae-lens)
from interp.cli import main
from interp.fixtures import FAMILIES, build_checkpoint
from interp.models import load_model
from interp.patching import SAEHook, relevance_patching, verify
from interp.patching.pairs import pair_inputs, read_pairs
from interp.sae import saving

pytestmark = pytest.mark.slow

IN, OUT = "blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out"
PAIRS = [{"clean": "When Mary and John went to the store, John gave a drink to",
          "corrupt": "When Mary and John went to the store, Mary gave a drink to", "answer": " Mary",
          "wrong": " John"}]


@pytest.mark.parametrize("family", FAMILIES)
def test_a_skip_transcoder_from_one_command_is_a_circuit_basis(family, tmp_path, capsys):
    path = str(build_checkpoint(family, tmp_path / family))
    runs = tmp_path / "saes"
    assert main(["train-sae", "--model", path, "--hook", IN, "--target-hook", OUT, "--kind", "skip_transcoder",
                 "--cache-tokens", "4096", "--cache-dir", str(tmp_path / "cache"), "--eval-tokens", "1024",
                 "--out-dir", str(runs), "--run", "tc", "--n-latents", "128", "--k", "8", "--batch-size", "256",
                 "--n-tokens", "4096", "--init-tokens", "1024", "--no-progress"]) == 0
    run = runs / "tc"
    row = json.loads((run / "metrics.json").read_text())[0]
    assert row["kind"] == "skip_transcoder" and row["l0"] <= 8 and row["skip_fve"] <= 1
    capsys.readouterr()
    assert main(["eval-sae", str(run), "--model", path, "--eval-tokens", "1024"]) == 0
    assert "skip_transcoder" in capsys.readouterr().out

    ours, theirs = saving.load(run), sae_lens.SAE.load_from_disk(str(run))
    x = torch.randn(16, ours.cfg.d_in)
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), ours(x), atol=1e-5, rtol=1e-5)

    model = load_model(path, device="cpu")
    (pair,) = read_pairs_of(tmp_path)
    inputs = pair_inputs(model, [pair])
    tc = SAEHook.load(run)
    args = (model, inputs.clean, inputs.corrupt, inputs.metric)
    relp = relevance_patching(*args, components=("tc",), sae=tc)
    assert relp["node"].str.startswith("tc.L1.U").all() and len(relp) == inputs.clean.shape[1] * 128
    report = verify(relp, 3, *args, sae=tc)
    assert len(report.table) == 3 and report.table["exact"].notna().all()


def read_pairs_of(tmp_path):
    file = tmp_path / "pairs.jsonl"
    file.write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    return read_pairs(file)
