"""The ODE core: accuracy against exact/reference solutions, orders, accounting, gradients, bad input."""

import math

import numpy as np
import pytest
import torch
import torchdiffeq
from sciml.problems import ode
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import (
    TABLEAUS,
    ConstantSteps,
    PIDController,
    SolveError,
    Status,
    Tableau,
    odeint,
    odeint_adjoint,
    reference_solution,
    solve,
)

ADAPTIVE = ["tsit5", "dp5", "bs3"]
NONSTIFF = [name for name, make in ode.ODE_PROBLEMS.items() if not make().stiff]


def _slope(hs, errors):
    return np.polyfit(np.log(hs), np.log(errors), 1)[0]


# ------------------------------------------------------------------------------------------ tableaus
def test_tableau_stability_sizes_match_the_literature():
    assert TABLEAUS["dp5"].stability_size == pytest.approx(3.3066, abs=1e-4)
    assert TABLEAUS["tsit5"].stability_size == pytest.approx(3.5068, abs=1e-4)
    assert TABLEAUS["rk4"].stability_size == pytest.approx(2.7853, abs=1e-4)
    assert TABLEAUS["euler"].stability_size == pytest.approx(2.0, abs=1e-9)
    assert [TABLEAUS[m].fsal for m in ("bs3", "dp5", "tsit5", "rk4")] == [True, True, True, False]


def test_tableau_rejects_inconsistent_coefficients():
    with pytest.raises(ValueError, match="sums to"):
        Tableau(name="bad", c=(0.0, 0.5), a=((), (0.4,)), b=(0.0, 1.0), order=2)
    with pytest.raises(ValueError, match="`b` sums"):
        Tableau(name="bad", c=(0.0, 0.5), a=((), (0.5,)), b=(0.5, 0.6), order=2)
    with pytest.raises(ValueError, match="b_error"):
        Tableau(
            name="bad", c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0), order=2, b_error=(0.1, 0.0), error_order=1
        )


# ------------------------------------------------------------------------------------------ accuracy
@pytest.mark.parametrize("method", ADAPTIVE)
@pytest.mark.parametrize("name", NONSTIFF)
def test_every_adaptive_method_on_every_problem(method, name):
    problem = ode.get(name)
    ts = torch.linspace(*problem.t_span, 7, dtype=torch.float64)
    sol = solve(problem, method, rtol=1e-8, atol=1e-10, saveat=ts)
    reference = reference_solution(problem, ts)
    scale = reference.abs().max()
    error = ((sol.ys - reference).abs().max() / scale).item()
    assert sol.success and torch.equal(sol.ts, ts)
    # global error of a tolerance-proportional solve: a modest multiple of rtol over these horizons
    assert error < (3e-5 if method == "bs3" else 3e-6), error


@pytest.mark.parametrize("method", list(TABLEAUS))
def test_convergence_order_by_log_log_slope(method):
    problem = ode.get("forced_linear")
    order = TABLEAUS[method].order
    hs = [0.1, 0.05, 0.025] if order < 5 else [0.2, 0.1, 0.05] if order < 8 else [0.4, 0.3, 0.25]
    errors = []
    for h in hs:
        sol = solve(problem, method, dt=h)
        errors.append((sol.ys[-1] - problem.solution(sol.ts[-1:])[0]).abs().max().item())
    assert _slope(hs, errors) == pytest.approx(order, abs=0.25), errors


@pytest.mark.parametrize("method", ADAPTIVE)
def test_dense_output_converges_at_the_method_order(method):
    problem = ode.get("forced_linear")
    hs = [0.2, 0.1, 0.05]
    errors = []
    for h in hs:
        ts = torch.arange(0, 9.9, h, dtype=torch.float64) + 0.37 * h  # strictly inside the steps
        sol = solve(problem, method, dt=h, saveat=ts)
        errors.append((sol.ys - problem.solution(ts)).abs().max().item())
    assert _slope(hs, errors) == pytest.approx(TABLEAUS[method].order, abs=0.35), errors


@pytest.mark.parametrize("method", ADAPTIVE)
def test_embedded_error_estimate_has_the_embedded_order(method):
    problem = ode.get("harmonic_oscillator")
    tab = TABLEAUS[method]
    hs = [0.1, 0.05, 0.025]
    norms = [solve(problem, method, dt=h, rtol=1, atol=1).error_estimates[0].item() for h in hs]
    assert _slope(hs, norms) == pytest.approx(tab.error_order + 1, abs=0.3)


def test_integrating_backwards_in_time():
    problem = ode.get("harmonic_oscillator")  # neutral: errors neither grow nor decay backwards
    end = problem.solution(torch.tensor([10.0], dtype=torch.float64))[0]
    back = problem.replace(t_span=(10.0, 0.0), y0=end)
    ts = torch.tensor([10.0, 5.0, 0.0], dtype=torch.float64)
    sol = solve(back, "tsit5", rtol=1e-10, atol=1e-12, saveat=ts)
    np.testing.assert_allclose(sol.ys.numpy(), problem.solution(sol.ts).numpy(), atol=1e-7)
    assert (sol.step_sizes < 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batched_states_of_any_shape(dtype):
    A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=dtype)
    y0 = torch.randn(3, 4, 2, dtype=dtype)
    problem = ODEProblem(lambda t, y: y @ A.T, y0, (0.0, 2.0))
    single = dtype == torch.float32
    sol = solve(problem, "tsit5", rtol=1e-5 if single else 1e-9, atol=1e-7 if single else 1e-11)
    assert sol.ys.shape == (2, 3, 4, 2) and sol.ys.dtype == dtype
    exact = torch.linalg.matrix_exp(2.0 * A.double()) @ y0.double().unsqueeze(-1)
    torch.testing.assert_close(sol.ys[-1].double(), exact.squeeze(-1), atol=1e-4 if single else 1e-8, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    problem = ode.get("lotka_volterra")
    cpu = solve(problem, "tsit5", rtol=1e-8, atol=1e-10)
    gpu = solve(problem.replace(y0=problem.y0.cuda()), "tsit5", rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(gpu.ys.cpu(), cpu.ys, atol=1e-9, rtol=0)


def test_pid_controller_solves_as_accurately():
    problem = ode.get("van_der_pol")
    ts = torch.linspace(0, 10, 5, dtype=torch.float64)
    ref = reference_solution(problem, ts)
    sol = solve(problem, "tsit5", rtol=1e-7, atol=1e-9, saveat=ts, controller=PIDController())
    assert (sol.ys - ref).abs().max() < 1e-5
    with pytest.raises(ValueError, match="factor_min"):
        PIDController(factor_min=2.0)


# ------------------------------------------------------------------------------------------ accounting
@pytest.mark.parametrize("method", ADAPTIVE)
def test_nfe_and_step_accounting(method):
    calls = []
    base = ode.get("van_der_pol")

    def f(t, y, mu):
        calls.append(1)
        return base.f(t, y, mu)

    sol = solve(base.replace(f=f), method, rtol=1e-6, atol=1e-8, save_steps=True)
    st, tab = sol.stats, TABLEAUS[method]
    assert st.nfe == len(calls)
    assert st.n_steps == st.n_accepted + st.n_rejected and st.n_rejected > 0
    assert st.nfe == 2 + st.n_steps * tab.new_evaluations  # k1 + Hairer's initial step + stages
    n = st.n_accepted
    per_step = (sol.step_sizes, sol.step_ts, sol.error_estimates, sol.stiffness_estimates)
    assert [len(x) for x in per_step] == [n] * 4
    assert sol.step_ts[0] == 0.0 and sol.step_sizes.sum().item() == pytest.approx(10.0)
    torch.testing.assert_close(sol.step_ts[1:], (sol.step_ts + sol.step_sizes)[:-1])
    assert sol.ts.shape == (n + 1,) and (sol.error_estimates <= 1).all()


def test_fixed_step_methods_land_on_save_times():
    problem = ode.get("harmonic_oscillator").replace(t_span=(0.0, 1.0))
    ts = torch.tensor([0.0, 0.35, 1.0], dtype=torch.float64)
    sol = solve(problem, "rk4", dt=0.1, saveat=ts)
    np.testing.assert_allclose(sol.ys.numpy(), problem.solution(ts).numpy(), atol=1e-4)
    assert sol.stats.n_steps == 11  # 4 steps to 0.35 (the last shortened), 7 more to 1.0


# ------------------------------------------------------------------------------------------ gradients
def _regularized_outputs(y0, weight, method="tsit5", dt=0.05):
    """Solution, Σ E_j h_j and Σ S_j on a fixed step sequence (so finite differences see smooth maps)."""

    def f(t, y):
        return torch.tanh(y @ weight) - 0.1 * y * torch.sin(t)

    sol = solve(ODEProblem(f, y0, (0.0, 1.0)), method, dt=dt, rtol=1e-3, atol=1e-4)
    reg_error = (sol.error_estimates * sol.step_sizes.abs()).sum()
    reg_stiff = sol.stiffness_estimates.sum()
    return sol.ys[-1], reg_error, reg_stiff


@pytest.mark.parametrize("method", ["tsit5", "dp5"])
def test_gradients_of_solution_and_estimates_match_finite_differences(method):
    y0 = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    for index in range(3):

        def output(a, w, index=index):
            return _regularized_outputs(a, w, method)[index]

        assert torch.autograd.gradcheck(output, (y0, weight), eps=1e-6, atol=1e-7, rtol=1e-4)


def test_continuous_adjoint_matches_backprop():
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).double()

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, t, y):
            return self.net(y) * torch.cos(t)

    y0 = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    ts = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)  # t0 = 0 is not a save time
    grads = {}
    for adjoint in ("backprop", "continuous"):
        problem = ODEProblem(Field(), y0, (0.0, 2.0))
        sol = solve(problem, "tsit5", rtol=1e-10, atol=1e-10, saveat=ts, adjoint=adjoint)
        loss = (sol.ys**2).sum() + sol.ys[1].sin().sum()
        grads[adjoint] = torch.autograd.grad(loss, [y0, *net.parameters()])
        if adjoint == "continuous":
            assert sol.stats.nfe_adjoint > 0 and not sol.differentiable_estimates
    for a, b in zip(grads["backprop"], grads["continuous"]):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_estimates_carry_no_history_without_grad():
    problem = ode.get("lotka_volterra")
    with torch.no_grad():
        sol = solve(problem, "tsit5")
    assert not sol.differentiable_estimates and not sol.error_estimates.requires_grad


# ------------------------------------------------------------------------------------------ torchdiffeq API
def test_odeint_is_a_drop_in_for_torchdiffeq():
    problem = ode.get("lotka_volterra")
    t = torch.linspace(0, 10, 11, dtype=torch.float64)

    def func(t, y):
        return problem.rhs(t, y)

    ref = reference_solution(problem, t)
    ours = odeint(func, problem.y0, t)
    theirs = torchdiffeq.odeint(func, problem.y0, t)
    assert ours.shape == theirs.shape
    assert (ours - ref).abs().max() <= 2 * (theirs - ref).abs().max() + 1e-9
    rk4 = odeint(func, problem.y0, t, method="rk4", options={"step_size": 0.01})
    assert (rk4 - ref).abs().max() < 1e-6


def test_odeint_tuple_states_and_adjoint():
    w = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)

    class Osc(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(w.detach().clone())

        def forward(self, t, state):
            x, v = state
            return v, -(self.w**2) * x

    osc = Osc()
    t = torch.linspace(0, 1, 3, dtype=torch.float64)
    start = (torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64))
    x, v = odeint(osc, start, t)
    torch.testing.assert_close(x, torch.cos(2 * t), atol=1e-7, rtol=0)
    xa, _ = odeint_adjoint(osc, start, t)
    (grad,) = torch.autograd.grad(xa[-1], osc.w)
    assert grad.item() == pytest.approx(-math.sin(2.0) * 1.0, rel=1e-5)  # d/dw cos(w t) at t = 1


# ------------------------------------------------------------------------------------------ bad input
def test_bad_input_is_named():
    problem = ode.get("exponential")
    with pytest.raises(ValueError, match="`y0` must be finite"):
        problem.replace(y0=torch.tensor([float("nan")]))
    with pytest.raises(ValueError, match="t_span"):
        problem.replace(t_span=(1.0, 1.0))
    with pytest.raises(ValueError, match="strictly increasing"):
        solve(problem, saveat=torch.tensor([0.0, 2.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="floating-point"):
        solve(problem, saveat=torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="within t_span"):
        solve(problem, saveat=[0.0, 6.0])
    with pytest.raises(ValueError, match="`rtol` must be"):
        solve(problem, rtol=-1.0)
    with pytest.raises(ValueError, match="both 0"):
        solve(problem, rtol=0.0, atol=0.0)
    with pytest.raises(ValueError, match="`atol` of shape"):
        solve(problem, atol=torch.ones(3))
    with pytest.raises(ValueError, match="unknown method 'rk45'"):
        solve(problem, "rk45")
    with pytest.raises(ValueError, match="no error estimate"):
        solve(problem, "rk4")
    with pytest.raises(TypeError):
        solve(problem, rtoll=1e-3)  # typos are errors, not warnings
    with pytest.raises(ValueError, match="unsupported option"):
        odeint(problem.rhs, problem.y0, torch.linspace(0, 1, 3, dtype=torch.float64), options={"step": 0.1})
    with pytest.raises(ValueError, match="returned shape"):
        solve(problem.replace(f=lambda t, y, p: y[:2]))
    with pytest.raises(ValueError, match="returned torch.float32"):
        solve(problem.replace(f=lambda t, y, p: y.float()))
    with pytest.raises(ValueError, match="not finite"):
        solve(problem.replace(f=lambda t, y, p: y / 0.0))
    with pytest.raises(ValueError, match="adjoint_params"):
        solve(problem, adjoint="continuous")
    with pytest.raises(ValueError, match="`dt` must be a positive"):
        ConstantSteps(dt=-1.0)
    for bad in (float("nan"), 0.0, -0.1):
        with pytest.raises(ValueError, match="`dt0` must be a positive finite"):
            solve(problem, dt0=bad)
    with pytest.raises(ValueError, match="within t_span"):  # beyond float32 rounding of t1
        solve(problem, saveat=torch.tensor([0.0, problem.t_span[1] * 1.0001]))
    t32 = solve(problem.replace(t_span=(0.0, 0.3)), saveat=torch.tensor([0.1, 0.3]))  # float32(0.3) != 0.3
    assert t32.ts.tolist()[-1] == 0.3


def test_fixed_steps_that_reach_nan_report_a_non_finite_status():
    problem = ODEProblem(
        lambda t, y: -y if t < 0.5 else y * float("nan"), torch.tensor([1.0], dtype=torch.float64), (0.0, 1.0)
    )
    sol = solve(problem, "rk4", dt=0.1, throw=False)
    assert sol.status is Status.NON_FINITE and not sol.success and "smaller `dt`" in sol.message
    with pytest.raises(SolveError, match="non-finite"):
        solve(problem, "rk4", dt=0.1)
    with pytest.raises(SolveError, match="non-finite"):
        odeint(problem.rhs, problem.y0, torch.tensor([0.0, 1.0], dtype=torch.float64), method="rk4",
               options={"step_size": 0.1})  # fmt: skip


def test_max_steps_returns_partial_solution_and_detects_stiffness():
    with pytest.raises(SolveError, match="appears stiff"):
        solve(ode.get("robertson"), "tsit5", max_steps=1500)
    sol = solve(ode.get("robertson"), "tsit5", max_steps=1500, throw=False)
    assert sol.status is Status.MAX_STEPS and not sol.success
    assert "max_steps=1500" in sol.message and "method='auto'" in sol.message
    assert sol.stiffness_estimates[-50:].median() > 0.5
    nonstiff = solve(ode.get("lotka_volterra"), "tsit5")
    assert nonstiff.stiffness_estimates.median() < 0.5


def test_blow_up_gives_a_non_finite_status():
    # y = 1/(1 - t) blows up at t = 1
    problem = ODEProblem(lambda t, y: y**2, torch.tensor([1.0], dtype=torch.float64), (0.0, 2.0))
    sol = solve(problem, "tsit5", throw=False)
    assert sol.status in (Status.NON_FINITE, Status.STEP_SIZE_UNDERFLOW)
    assert sol.stats.n_accepted > 0 and 0.99 < sol.step_ts[-1] + sol.step_sizes[-1] < 1.001
    assert "t=" in sol.message


def test_parameters_that_enter_after_t0_are_differentiated():
    # k1 = f(t0, y0) has no autograd history, later stages do: the solve must leave the reused buffers
    p = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    problem = ODEProblem(
        lambda t, y: -y if t < 0.5 else -p * y, torch.tensor([1.0], dtype=torch.float64), (0.0, 1.0)
    )
    sol = solve(problem, "tsit5", rtol=1e-10, atol=1e-10)
    (grad,) = torch.autograd.grad(sol.ys[-1].sum(), p)
    exact = math.exp(-1.5)  # y(1) = exp(-0.5) exp(-p/2) at p = 2; dy/dp = -y(1)/2
    assert sol.ys[-1].item() == pytest.approx(exact, rel=1e-6)
    assert grad.item() == pytest.approx(-exact / 2, rel=1e-6)


def test_saveat_requiring_grad_is_refused_not_silently_detached():
    p = ODEProblem(lambda t, y: -y, torch.ones(1, dtype=torch.float64), (0.0, 1.0))
    ts = torch.linspace(0, 1, 5, dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"saveat.detach\(\), or use sciml.solvers.ode.odeint"):
        solve(p, "tsit5", saveat=ts)
    sol = solve(p, "tsit5", saveat=ts.detach())
    with torch.no_grad():
        torch.testing.assert_close(solve(p, "tsit5", saveat=ts).ys, sol.ys)  # nothing to differentiate
