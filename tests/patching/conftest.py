import pytest


@pytest.fixture(scope="session")
def ioi_small(zoo_dense):
    """4 IOI train pairs of one template on zoo-dense, with the normalised metric."""
    from interp.patching.protocol import ioi_inputs

    return ioi_inputs(zoo_dense, n=4, split="train", template=0)


@pytest.fixture(scope="session")
def zoo_sae():
    from interp import resources
    from interp.patching import SAEHook

    return SAEHook.load(resources.sae_path())


@pytest.fixture(scope="session")
def ioi_moe(zoo_moe):
    """4 IOI train pairs of one template on zoo-moe, with the normalised metric."""
    from interp.patching.protocol import ioi_inputs

    return ioi_inputs(zoo_moe, n=4, split="train", template=0)
