import warnings

import pytest
import torch

warnings.filterwarnings("ignore", category=DeprecationWarning)
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def zoo_dense():
    from interp import load_model

    return load_model("zoo-dense")


@pytest.fixture(scope="session")
def zoo_moe():
    from interp import load_model

    return load_model("zoo-moe")
