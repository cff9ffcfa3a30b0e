"""Our evaluation against sae-lens's own, on the held-out evaluation text: the shipped SAE's CE
with the SAE spliced in, clean and zero-ablated, and KL, from `sae_lens.evals.get_recons_loss`;
a shipped skip-transcoder spliced in through sae-lens's own forward (sae-lens's evals splice at
one hook, so the transcoder's read-here/write-there splice is written out by hand)."""

import pytest
import sae_lens
import torch
from sae_lens.evals import get_recons_loss
from sae_lens.training.activation_scaler import ActivationScaler

import interp.sae.sae_lens_classes  # noqa: F401  (registers topk_skip_transcoder)
from interp import resources
from interp.sae import saving
from interp.sae.evaluate import evaluate_details
from interp.sae.job import heldout_sets

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prose(zoo_dense):
    return heldout_sets(zoo_dense, 2048, 128, 1000)["prose"]


def test_sae_lens_evals_agree_with_ours_on_held_out_prose(zoo_dense, prose):
    path = resources.sae_path()
    hook = saving.read_config(path)["metadata"]["hook_name"]
    ours = evaluate_details(saving.load(path), zoo_dense, prose, hook).metrics.iloc[0]
    theirs = get_recons_loss(sae_lens.SAE.load_from_disk(str(path)), zoo_dense, ActivationScaler(), prose,
                             compute_kl=True, compute_ce_loss=True, hook_name=hook)
    for ours_key, their_key in (("ce_sae", "ce_loss_with_sae"), ("ce_clean", "ce_loss_without_sae"),
                                ("ce_zero", "ce_loss_with_ablation")):
        assert ours[ours_key] == pytest.approx(float(theirs[their_key].mean()), abs=1e-4), ours_key
    assert ours["kl"] == pytest.approx(float(theirs["kl_div_with_sae"][:, :-1].mean()), abs=1e-4)


def test_a_shipped_transcoder_spliced_through_sae_lens_agrees_with_ours(zoo_dense, prose):
    path = resources.sae_path("zoo-dense-transcoders/L2")
    meta = saving.read_config(path)["metadata"]
    hook, target = meta["hook_name"], meta["hook_name_out"]
    ours = evaluate_details(saving.load(path), zoo_dense, prose, hook, target_hook=target).metrics.iloc[0]
    theirs = sae_lens.SAE.load_from_disk(str(path))
    held = {}

    def read(x, hook):
        held["x"] = x

    def write(y, hook):
        return theirs(held.pop("x")).to(y.dtype)

    with torch.no_grad():
        loss = zoo_dense.run_with_hooks(prose, fwd_hooks=[(hook, read), (target, write)], return_type="loss")
    assert ours["ce_sae"] == pytest.approx(float(loss), abs=1e-4)
