import pytest

from interp.tasks import refusal


@pytest.fixture(scope="session")
def refusal_train():
    """(harmful, benign) plain training prompts, 64 each."""
    return ([p.prompt for p in refusal.generate(64, "harmful", "train")],
            [p.prompt for p in refusal.generate(64, "benign", "train")])


@pytest.fixture(scope="session")
def refusal_direction(zoo_dense, refusal_train):
    from interp.steering import Direction

    return Direction.mean_difference(zoo_dense, *refusal_train, layer=2)
