"""Bugs a torchdiffeq user reported against sciml.solvers.ode (each test failed before its fix)."""

import pytest
import torch
import torchdiffeq
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import SolveError, odeint, odeint_adjoint, odeint_event, solve

import sciml

F64 = torch.float64


class Spiral(torch.nn.Module):
    """torchdiffeq's ode_demo field ``dy/dt = (y**3) @ A``."""

    def __init__(self, dtype):
        super().__init__()
        self.A = torch.nn.Parameter(torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=dtype))

    def forward(self, t, y):
        return (y**3) @ self.A


class Tanh(torch.nn.Module):
    def __init__(self, dtype=F64):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(2, 2, dtype=dtype)

    def forward(self, t, y):
        return torch.tanh(self.lin(y))


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


# ------------------------------------------------------------------ odeint_adjoint refused non-stiff problems
@pytest.mark.parametrize("second", [0.0, 1e-3])
def test_float32_adjoint_with_default_tolerances_matches_float64_reference(second):
    # a zero (or tiny) component made the drift scale atol = 1e-9, far below float32 round-off: refused
    t = torch.linspace(0, 50, 20)  # the tester's case
    y0 = [[2.0, second]]
    f64 = Spiral(F64)
    ys = odeint(f64, torch.tensor(y0, dtype=F64), t.double(), rtol=1e-10, atol=1e-12)
    (ref,) = torch.autograd.grad(ys.pow(2).sum(), f64.A)
    f32 = Spiral(torch.float32)
    (g,) = torch.autograd.grad(odeint_adjoint(f32, torch.tensor(y0), t).pow(2).sum(), f32.A)
    assert _rel(g.double(), ref) < 1e-4  # ours 2.9e-5, torchdiffeq's 1.4e-5 (second = 0)


@pytest.mark.parametrize("y0", [[0.0, 2.0], [2.0, 0.0]])
def test_lsoda_adjoint_accepts_a_component_that_starts_at_zero(y0):
    # the drift allowance scaled each entry by its forward value at the save time alone, 1e4·atol for an
    # entry that is 0 there though of order one on the way: scipy's LSODA (errors ~20× dopri5's at the
    # same tolerance) ended 4.5× past it on torchdiffeq's test_against_dopri5 and was refused
    f64 = Spiral(F64)
    t = torch.linspace(0, 30, 12, dtype=F64)  # old code: 2.55× and 2.64× past the allowance
    y = torch.tensor([y0], dtype=F64)
    (ref,) = torch.autograd.grad(odeint(f64, y, t, rtol=1e-11, atol=1e-13).sum(), f64.A)
    ys = odeint_adjoint(f64, y, t, method="scipy_solver")
    (g,) = torch.autograd.grad(ys.sum(), f64.A)
    assert _rel(g, ref) < 1e-3


def test_adjoint_allows_for_the_looser_forward_tolerance():
    # loose forward, tight backward tolerances: the drift includes the forward error; it was measured
    # against the backward tolerance alone and refused
    f = Tanh()
    y0 = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(1))
    t = torch.linspace(0, 1, 3, dtype=F64)
    (ref,) = torch.autograd.grad(odeint(f, y0, t, rtol=1e-12, atol=1e-12).sum(), f.lin.weight)
    ys = odeint_adjoint(f, y0, t, rtol=1e-3, atol=1e-4, adjoint_rtol=1e-10, adjoint_atol=1e-12)
    (g,) = torch.autograd.grad(ys.sum(), f.lin.weight)
    assert _rel(g, ref) < 1e-4


@pytest.mark.parametrize("options", [{}, {"step_size": 0.01}])
def test_fixed_step_adjoint_returns_torchdiffeq_gradients(options):
    # fixed steps meet no rtol/atol, yet their re-solve was compared with them and refused as "stiff"
    f, t = Tanh(), torch.linspace(0, 1, 11, dtype=F64)
    y0 = torch.randn(5, 2, dtype=F64, generator=torch.Generator().manual_seed(0))
    grads = []
    for lib in (torchdiffeq, sciml):
        ys = lib.odeint_adjoint(f, y0, t, method="euler", options=options)
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(ys.sum(), list(f.parameters()))]))
    assert _rel(grads[1], grads[0]) < 1e-6
    (ref,) = torch.autograd.grad(odeint(f, y0, t, rtol=1e-12, atol=1e-12).sum(), f.lin.weight)
    h = options.get("step_size", 0.1)
    assert _rel(grads[1][:4].view(2, 2), ref) < h  # Euler: first order


def test_fixed_step_adjoint_still_refuses_a_diverging_backward_solve():
    # rk4 with h·λ = -2.5 is stable forwards, but grows ~11× per step backwards: y is lost
    lam = torch.tensor(-50.0, dtype=F64, requires_grad=True)
    ys = odeint_adjoint(lambda t, y: lam * y, torch.ones(1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64),
                        method="rk4", options={"step_size": 0.05}, adjoint_params=(lam,))  # fmt: skip
    with pytest.raises(SolveError, match="lost the forward solution.*step_size"):
        ys[-1].sum().backward()


def _kinetics(k, dtype):
    def f(t, y):
        a, b, c = y.unbind(-1)
        fast = k[1] * b * b
        return torch.stack([-k[0] * a + k[2] * b * c, k[0] * a - k[2] * b * c - fast, fast], -1)

    return ODEProblem(f, torch.tensor([1.0, 0.0, 0.0], dtype=dtype), (0.0, 1.0))


@pytest.mark.parametrize("method", ["rodas5p", "kvaerno5"])
def test_float32_stiff_adjoint_is_still_refused(method):
    # the round-off allowance must not hide a genuine loss: this gradient came back 4-6x off (reference
    # 0.0324) before the check
    k = torch.tensor([0.04, 3e3, 1e2], requires_grad=True)
    sol = solve(_kinetics(k, torch.float32), method, rtol=1e-5, atol=1e-8, saveat=[1.0], adjoint="continuous",
                adjoint_params=(k,))  # fmt: skip
    with pytest.raises(SolveError, match=r"lost the forward solution.*float64.*adjoint='backprop'"):
        sol.ys[-1][1].backward()


# ------------------------------------------------------------------------------------------------ empty y0
@pytest.mark.parametrize("method", ["dopri5", "rk4", "radauIIA5"])
@pytest.mark.parametrize("adjoint", [False, True])
def test_empty_state_gives_an_empty_solution(method, adjoint):
    w = torch.nn.Parameter(torch.tensor(2.0, dtype=F64))
    y0 = torch.ones(3, 0, dtype=F64, requires_grad=True)
    solver = odeint_adjoint if adjoint else odeint
    ys = solver(lambda t, y: -w * y, y0, torch.linspace(0, 1, 4, dtype=F64), method=method,
                **({"adjoint_params": (w,)} if adjoint else {}))  # fmt: skip
    assert ys.shape == (4, 3, 0)
    g_y0, g_w = torch.autograd.grad(ys.sum(), (y0, w))  # zero gradients, not "unused" errors
    assert g_y0.shape == (3, 0) and g_w.item() == 0.0


def test_empty_part_of_a_tuple_state_and_solve():
    w = torch.nn.Parameter(torch.tensor(2.0, dtype=F64))
    t = torch.linspace(0, 1, 3, dtype=F64)
    y0 = (torch.ones(0, dtype=F64), torch.ones(2, dtype=F64))
    empty, x = odeint(lambda t, y: tuple(-w * v for v in y), y0, t)  # the empty part broke the split
    assert empty.shape == (3, 0)
    torch.testing.assert_close(x[-1], torch.full((2,), torch.e**-2.0, dtype=F64), rtol=1e-6, atol=0)
    sol = solve(ODEProblem(lambda t, y: -y, torch.ones(0), (0.0, 1.0)), save_steps=True)
    assert sol.success and sol.ys.shape == (2, 0) and sol.ts.tolist() == [0.0, 1.0] and sol.stats.nfe == 1
    with pytest.raises(ValueError, match="`y0` has no entries"):
        odeint_event(lambda t, y: -y, torch.ones(0), torch.tensor(0.0), event_fn=lambda t, y: t - 0.5)


# ------------------------------------------------------------------------------------------------ NFE counts
@pytest.mark.parametrize("method", ["tsit5", "dp5", "bs3"])
def test_continuous_adjoint_counts_every_call_of_f(method):
    calls = []

    class Counted(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))

        def forward(self, t, y):
            calls.append(1)
            return self.net(y)

    y0 = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    for adjoint in ("backprop", "continuous"):
        calls.clear()
        sol = solve(ODEProblem(Counted(), y0, (0.0, 1.0)), method, rtol=1e-7, atol=1e-7, adjoint=adjoint)
        assert sol.stats.nfe == len(calls)  # continuous: 32 reported for 33 calls (tsit5)
        calls.clear()
        sol.ys[-1].sum().backward()
        assert sol.stats.nfe_adjoint == (len(calls) if adjoint == "continuous" else 0)


@pytest.mark.parametrize("method", ["rosenbrock23", "rodas5p"])
def test_rosenbrock_continuous_adjoint_matches_the_matrix_exponential(method):
    # the backward solve has a larger state than the forward one: a W-method's kept Jacobian must not carry
    # over to it
    A0 = torch.tensor([[-1.0, 0.5, 0.0], [0.0, -2.0, 0.3], [0.1, 0.0, -3.0]], dtype=torch.float64)
    A = A0.clone().requires_grad_(True)
    y0 = torch.tensor([1.0, 0.5, -0.2], dtype=torch.float64, requires_grad=True)
    problem = ODEProblem(lambda t, y: A @ y, y0, (0.0, 1.0))
    sol = solve(problem, method, rtol=1e-8, atol=1e-10, adjoint="continuous", adjoint_params=[A])
    grads = torch.autograd.grad(sol.ys[-1].sum(), [A, y0])
    Ae = A0.clone().requires_grad_(True)
    ye = y0.detach().clone().requires_grad_(True)
    exact = torch.autograd.grad((torch.linalg.matrix_exp(Ae) @ ye).sum(), [Ae, ye])
    for g, e in zip(grads, exact):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)
