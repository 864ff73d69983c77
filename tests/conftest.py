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


@pytest.fixture
def crash_at_epoch():
    """``with crash_at_epoch(n): train(...)`` raises "simulated crash" at the start of training epoch ``n``
    (1-based), the way a killed run stops: the checkpoint of epoch ``n - 1`` is what is left."""
    import contextlib

    import sciml.neural_de.training as training

    @contextlib.contextmanager
    def crash(epoch: int):
        calls, real = [], training.batches

        def batches(data, batch_size, shuffle):
            if shuffle is not None:  # a training epoch (evaluation passes no shuffle generator)
                calls.append(1)
                if len(calls) == epoch:
                    raise RuntimeError("simulated crash")
            return real(data, batch_size, shuffle)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(training, "batches", batches)
            yield

    return crash
