import pytest
import torch

from bench.core.config import build_run_config


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def smoke_config():
    """A factory for smoke-profile run configs on the synthetic data."""
    def make(method="vae", dataset="synthetic", **overrides):
        return build_run_config(method, dataset, "smoke", 0, overrides)
    return make
