import os

import pytest
import torch

# Generated kernels go to a per-run cache unless the caller chose one (CI keeps one across tests).
os.environ.setdefault("NEURODYN_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "neurodyn"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def f64():
    """Run a test in float64 (tolerances near 1e-10 need it)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
