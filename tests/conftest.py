"""Shared test settings: a private reference cache, and deterministic threads."""

import os

import pytest
import torch


def pytest_configure(config):
    """Under pytest-xdist, the worker processes share the cores: each gets its part of torch's threads
    (two workers with all cores each would oversubscribe them)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, torch.get_num_threads() // workers))


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Cached references go to a temporary directory, never to the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SCIML_CACHE_DIR", str(tmp_path_factory.mktemp("sciml-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of small-tensor tests (threads only add overhead and contention on a
    shared machine); a module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def heat_problem():
    """``heat_problem(constraint=None)``: ``u_t = u_xx / π²`` on [0, 1] × [0, 1] with ``u = exp(−t) sin(πx)``
    (Dirichlet walls, initial value)."""
    return _heat_problem


def _heat_problem(constraint=None):
    import math

    from sciml.problems.pde import Box, Dirichlet, InitialValue, PDEProblem

    return PDEProblem(
        "heat-test",
        Box(("x", "t"), (0.0, 0.0), (1.0, 1.0), time="t"),
        ("u",),
        lambda x, d, p: d["u_t"] - d["u_xx"] / math.pi**2,
        (Dirichlet(on=("x-", "x+")), InitialValue(value=lambda x: torch.sin(math.pi * x[:, 0]))),
        exact=lambda x: torch.exp(-x[:, 1]) * torch.sin(math.pi * x[:, 0]),
        constraint=constraint,
        test_shape=(21, 11),
    )


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


@pytest.fixture
def interrupted_trainer():
    """``interrupted_trainer(checkpoint, iteration)``: a ``Trainer`` subclass whose loss raises
    ``KeyboardInterrupt`` once ``checkpoint`` holds the state of ``iteration`` (a run stopped by hand right
    after that checkpoint, to test ``resume``)."""
    from sciml.pinn import Trainer

    def make(checkpoint, iteration: int):
        class Interrupted(Trainer):
            def loss(self, points):
                if checkpoint.exists():
                    if torch.load(checkpoint, weights_only=True)["iteration"] == iteration:
                        raise KeyboardInterrupt
                return super().loss(points)

        return Interrupted

    return make
