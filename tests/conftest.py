"""Shared test settings: a private reference cache, and deterministic threads."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Cached references go to a temporary directory, never to the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SCIML_CACHE_DIR", str(tmp_path_factory.mktemp("sciml-cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
