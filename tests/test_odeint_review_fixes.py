"""Fixes from the review of odeint's torchdiffeq compatibility (``options["dtype"]``, ``max_num_steps`` per
output interval, ``adjoint_*`` arguments without the adjoint): each test failed before its fix."""

from __future__ import annotations

import importlib

import pytest
import torch
import torchdiffeq
from sciml.solvers.solution import SolveError
from torch import nn

import sciml


class _Concat(nn.Module):
    """A float32 field that concatenates ``t`` to the state (a common neural ODE); records t's dtype."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 2)
        self.t_dtypes: set[torch.dtype] = set()

    def forward(self, t, y):
        self.t_dtypes.add(t.dtype)
        return torch.tanh(self.lin(torch.cat([y, t.expand(y.shape[0], 1)], -1)))


def _rotation(t, y):
    return torch.stack([y[..., 1], -y[..., 0]], -1)


# ----------------------------------------------------------------------------- options["dtype"]
def test_func_gets_t_in_the_state_dtype_under_a_wider_options_dtype():
    f, t = _Concat(), torch.linspace(0, 1, 3)
    y0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    ys = sciml.odeint(f, y0, t, options={"dtype": torch.float64})
    assert f.t_dtypes == {torch.float32} and ys.dtype == torch.float32
    expected = torchdiffeq.odeint(f, y0, t, options={"dtype": torch.float64})
    assert torch.allclose(ys, expected, atol=1e-5)


def test_options_dtype_with_a_tuple_state_gives_func_the_state_dtype():
    seen = []

    def f(t, y):
        seen.append(t.dtype)
        return -y[0], y[0] - y[1]

    y0 = (torch.ones(2), torch.zeros(2))
    sciml.odeint(f, y0, torch.linspace(0, 1, 3), options={"dtype": torch.float64})
    assert set(seen) == {torch.float32}


# ----------------------------------------------------------------------------- max_num_steps
def test_max_num_steps_counts_per_output_interval_as_in_torchdiffeq():
    t, y0 = torch.linspace(0, 10, 11, dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    kw = dict(rtol=1e-8, atol=1e-10, options={"max_num_steps": 20})
    expected = torchdiffeq.odeint(_rotation, y0, t, **kw)  # 10 intervals of at most 20 steps each
    ys = sciml.odeint(_rotation, y0, t, **kw)
    assert torch.allclose(ys, expected, atol=1e-7)


def test_the_step_limit_message_says_per_output_interval():
    t, y0 = torch.linspace(0, 10, 11, dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    with pytest.raises(SolveError, match=r"max_num_steps=2 per output interval \(20 steps in all\)"):
        sciml.odeint(_rotation, y0, t, rtol=1e-8, atol=1e-10, options={"max_num_steps": 2})


def test_the_default_step_limit_caps_the_whole_solve(monkeypatch):
    monkeypatch.setattr(importlib.import_module("sciml.solvers.ode.odeint"), "MAX_NUM_STEPS", 20)
    t, y0 = torch.linspace(0, 10, 11, dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    with pytest.raises(SolveError, match=r"max_num_steps=20 \(the default, a cap on the whole solve\)"):
        sciml.odeint(_rotation, y0, t, rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------- adjoint_* without adjoint
@pytest.mark.parametrize(
    "name", ["adjoint_params", "adjoint_rtol", "adjoint_atol", "adjoint_method", "adjoint_options"]
)
def test_adjoint_arguments_without_the_adjoint_are_refused(name):
    f = _Concat()
    value = {"adjoint_params": tuple(f.parameters()), "adjoint_rtol": 1e-3, "adjoint_atol": 1e-4,
             "adjoint_method": "rk4", "adjoint_options": {"norm": "seminorm"}}[name]  # fmt: skip
    with pytest.raises(TypeError, match=rf"{name}.*adjoint=True.*odeint_adjoint"):
        sciml.odeint(f, torch.randn(4, 2), torch.linspace(0, 1, 3), **{name: value})


@pytest.mark.parametrize("steps", [0, -3, "10", True, float("inf")])
def test_a_bad_max_num_steps_is_named_as_the_option(steps):
    with pytest.raises(ValueError, match=r"options\['max_num_steps'\] must be a number"):
        sciml.odeint(_rotation, torch.ones(2), torch.linspace(0, 1, 3), options={"max_num_steps": steps})


def test_max_num_steps_as_a_numpy_integer_counts_as_a_number():
    import numpy as np

    t, y0 = torch.linspace(0, 10, 11, dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    kw = dict(rtol=1e-8, atol=1e-10)
    expected = sciml.odeint(_rotation, y0, t, options={"max_num_steps": 20}, **kw)
    ys = sciml.odeint(_rotation, y0, t, options={"max_num_steps": np.int64(20)}, **kw)
    assert torch.equal(ys, expected)
