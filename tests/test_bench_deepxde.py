"""The DeepXDE baseline of ``sciml bench pde``: optional (a clear message without deepxde), and, when
deepxde is installed, trained on our points at our resampling schedule, both phases run, its error the
trainer's own on the same test grid."""

from __future__ import annotations

import builtins
import copy
import math
import random
import sys

import pytest
import sciml.problems.pde as pde
import torch

from sciml.bench import deepxde_baseline
from sciml.pinn.presets import build_model, preset
from sciml.pinn.trainer import Trainer


def test_available_names_the_missing_package_and_the_fix(monkeypatch):
    real_import = builtins.__import__

    def no_deepxde(name, *args, **kwargs):
        if name == "deepxde" or name.startswith("deepxde."):
            raise ImportError("No module named 'deepxde'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "deepxde", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_deepxde)
    reason = deepxde_baseline.available()
    assert reason is not None and "deepxde is not installed" in reason and "pip install deepxde" in reason
    with pytest.raises(ImportError, match="pip install deepxde"):
        deepxde_baseline.train_deepxde(None, (8,), 1.0, 0)


def test_deepxde_trains_on_our_points_schedule_and_is_scored_like_ours():
    if deepxde_baseline.available() is not None:
        pytest.skip(deepxde_baseline.available())
    torch.set_num_threads(1)
    problem = pde.get("legendre")
    settings = preset("legendre")
    # Adam for half the budget, then L-BFGS; new points every 5 iterations
    config = settings.config("quick").replace(
        adam_iterations=50, lbfgs_iterations=50, resample_every=5, n_residual=64, seed=0
    )
    trainer = Trainer(problem, build_model(problem, "pinn", settings), config)
    result = deepxde_baseline.train_deepxde(trainer, (8, 8), 3.0, 0)
    assert result["adam_iterations"] > 0 and result["lbfgs_iterations"] > 0  # both phases ran
    assert result["iterations"] == result["adam_iterations"] + result["lbfgs_iterations"]
    assert 2.0 < result["cpu_seconds"] < 6.0  # stopped at the CPU budget
    # points redrawn at every 5th iteration in both phases (DeepXDE's L-BFGS asks for a batch only once
    # per `iter_per_step` iterations, so counting its calls would redraw far less often)
    blocks = result["iterations"] / config.resample_every
    assert blocks - 1 <= result["draws"] <= blocks + 2
    # its error is the trainer's own on the same test grid
    scored = Trainer(problem, result["net"], config.replace(engine="autograd"))
    assert math.isclose(scored.evaluate(), result["rel_l2"], rel_tol=1e-9)


@pytest.mark.parametrize("name", ["legendre", "lshape", "khronon"])
def test_deepxde_output_transform_is_our_hard_constraint(name):
    """DeepXDE's network with its output transform computes what Constrained computes around the same raw
    network (the L-shape: twice the outputs and the corner factor; khronon: the ansatz's trainable sound
    horizon, a parameter of DeepXDE's network)."""
    if deepxde_baseline.available() is not None:
        pytest.skip(deepxde_baseline.available())
    from sciml.problems.pde.examples import lshape_poisson

    from sciml.pinn.models import Constrained

    problem = lshape_poisson("auto") if name == "lshape" else pde.get(name)
    settings = preset(problem.name)
    config = settings.config("quick").replace(adam_iterations=2, lbfgs_iterations=0, n_residual=32)
    trainer = Trainer(problem, build_model(problem, "pinn", settings), config)
    assert isinstance(trainer.model, Constrained)
    assert (problem.constraint.corner is not None) == (name == "lshape")
    net = deepxde_baseline.train_deepxde(trainer, (8,), 0.05, 0)["net"]
    raw = copy.deepcopy(net)
    raw._output_transform = None
    x = problem.domain.sample(50, torch.Generator().manual_seed(2), dtype=trainer.dtype)
    ours = Constrained(raw, problem.constraint)
    scalars = dict(getattr(net, "ansatz_scalars", {}))
    assert set(scalars) == set(problem.constraint.parameters) == set(ours.scalars)
    assert all(any(v is p for p in net.parameters()) for v in scalars.values())  # trained with the network
    with torch.no_grad():
        for k, v in scalars.items():
            ours.scalars[k].copy_(v)
        torch.testing.assert_close(net(x), ours(x))


def test_deepxde_leaves_the_process_as_it_found_it():
    """DeepXDE sets torch's default dtype (float64 for khronon) and reseeds Python, NumPy and torch; the
    baseline puts them back, so models built after it in the same benchmark run start as without it."""
    if deepxde_baseline.available() is not None:
        pytest.skip(deepxde_baseline.available())
    import numpy as np

    problem = pde.get("khronon")
    settings = preset(problem.name)
    config = settings.config("quick").replace(adam_iterations=2, lbfgs_iterations=0, n_residual=32)
    assert config.dtype == "float64"
    trainer = Trainer(problem, build_model(problem, "pinn", settings), config)
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    expected = random.random(), np.random.rand(), torch.rand(()).item()
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    deepxde_baseline.train_deepxde(trainer, (8,), 0.05, 0)
    assert torch.get_default_dtype() == torch.float32
    assert (random.random(), np.random.rand(), torch.rand(()).item()) == expected


def test_a_diverged_seed_makes_the_summary_nan_instead_of_crashing():
    """DeepXDE's L-BFGS can end in NaN (high-wavenumber Helmholtz, seed 0): the bench's mean ± std of a
    model with such a seed is NaN (``statistics.stdev`` raised on it and lost the whole run's table)."""
    from sciml.bench.report import mean_std

    mean, std = mean_std([7.8e-2, math.nan, 8.0e-2])
    assert math.isnan(mean) and math.isnan(std)
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2)))
    assert mean_std([5.0]) == (5.0, 0.0)
