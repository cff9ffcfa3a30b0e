"""FeatureDashboard on a shipped skip-transcoder: latents indexed on the hook it reads, logit
effects of what it writes, and steering that adds a latent's decoder row to the MLP output it
predicts (the residual stream after its block)."""

import pytest
import torch

from interp import resources
from interp.sae import features, load

TC = resources.sae_path("zoo-dense-transcoders/L2")
IN, OUT = "blocks.2.ln2.hook_normalized", "blocks.2.hook_mlp_out"


@pytest.fixture(scope="module")
def store(zoo_dense, tmp_path_factory):
    import interp.cache

    return interp.cache.write(zoo_dense, [IN, OUT], 4096, tmp_path_factory.mktemp("tc-dash") / "store",
                              progress=False)


def test_a_transcoder_dashboard_reads_its_input_and_steers_its_output(zoo_dense, store):
    from interp.steering import Steering, steer
    from interp.widgets import FeatureDashboard

    tc = load(TC)
    with pytest.raises(ValueError, match="pass target_hook="):
        FeatureDashboard(tc, zoo_dense, store, hook=IN)
    dash = FeatureDashboard(tc, zoo_dense, store, hook=IN, target_hook=OUT, n_contexts=4, max_new_tokens=4,
                            background=False)
    assert dash.hook == IN and (dash.steer_layer, dash.steer_site) == (2, "resid_post")
    latent = int(dash.latent.value)
    assert dash.view(latent).top.value.max() > 0  # indexed on the input hook's activations
    effects = features.logit_effects(tc, zoo_dense, latent, k=3)
    assert len(effects) == 6

    # the steering the dashboard builds adds the row to resid_post of block 2: the same as adding it to mlp_out
    c = dash.residual_coefficient(latent, 5.0)
    row = tc.W_dec[latent].detach() / tc.W_dec[latent].norm().detach()
    tokens = zoo_dense.to_tokens("User: hello\nAssistant:")
    spec = Steering(direction=features_direction(tc, latent), layers=[2], coefficients=c, positions="all",
                    site="resid_post")
    with torch.no_grad():
        with steer(zoo_dense, spec):
            steered = zoo_dense(tokens)
        by_hand = zoo_dense.run_with_hooks(tokens, fwd_hooks=[(OUT, lambda y, hook: y + c * row)])
    torch.testing.assert_close(steered, by_hand, atol=1e-4, rtol=1e-4)
    unsteered, steered_text = dash.generate(5.0)
    assert isinstance(steered_text, str) and isinstance(unsteered, str)


def features_direction(sae, latent):
    from interp.steering import Direction

    return Direction.from_sae_latent(sae, latent)
