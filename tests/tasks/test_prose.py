import math

import pytest

from interp.tasks import prose


def test_prose_ce_is_the_mean_token_loss_over_heldout_paragraphs(zoo_dense):
    from interp.zoo import corpus

    texts = corpus.heldout_prose()[:2]
    assert texts != tuple(corpus.prose("heldout")[:2])  # the CRC split's 2nd paragraph shares text with training
    losses = [zoo_dense(zoo_dense.to_tokens(t)[:, :zoo_dense.cfg.n_ctx], return_type="loss", loss_per_token=True)
              for t in texts]
    expected = sum(loss.sum().item() for loss in losses) / sum(loss.numel() for loss in losses)
    assert prose.prose_ce(zoo_dense, 2) == pytest.approx(expected, rel=1e-6)
    assert prose.prose_ce(zoo_dense, 2) < math.log(zoo_dense.cfg.d_vocab)  # better than uniform


def test_prose_ce_needs_a_positive_count(zoo_dense):
    with pytest.raises(ValueError, match="n=0"):
        prose.prose_ce(zoo_dense, 0)


def test_prose_ce_refuses_more_paragraphs_than_are_held_out(zoo_dense):
    from interp.zoo import corpus

    with pytest.raises(ValueError, match=f"n={len(corpus.heldout_prose()) + 1} .* has {len(corpus.heldout_prose())}"):
        prose.prose_ce(zoo_dense, len(corpus.heldout_prose()) + 1)
