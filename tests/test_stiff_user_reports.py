"""User-reported defects of the stiff ODE solvers (ESDIRK Newton with a kept Jacobian, the Rosenbrock
methods' ∂f/∂t, failure messages, counters, gradients with a finite-difference Jacobian), as reported."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from sciml.problems import ode
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import SolveError, solve
from sciml.solvers.ode.jacobian import MAX_DENSE

# x(2) of Van der Pol in ε-form from y0 = (2, -0.66): scipy Radau, rtol = atol = 1e-10, exact Jacobian
VDP_X2 = {1e-6: 1.7062, 1e-9: 1.7056}


def _vdp_eps(eps: float) -> ODEProblem:
    def f(t, y):
        x, v = y[..., 0], y[..., 1]
        return torch.stack([v, ((1 - x * x) * v - x) / eps], -1)

    return ODEProblem(f, torch.tensor([2.0, -0.66], dtype=torch.float64), (0.0, 2.0))


# ------------------------------------------------------------------------- 1. ESDIRK with a kept Jacobian
@pytest.mark.parametrize(
    "method, eps, tol", [("kvaerno3", 1e-6, 1e-3), ("kvaerno3", 1e-6, 1e-4), ("kvaerno5", 1e-9, 1e-4)]
)
def test_kvaerno_van_der_pol_does_not_report_success_with_a_wrong_solution(method, eps, tol):
    """A stale kept Jacobian made the stage Newton iterations accept on a small first correction while the
    stage equation was far from solved: x(2) = -1.20 instead of +1.706 (the second relaxation jump
    missed), reported as SUCCESS."""
    s = solve(_vdp_eps(eps), method, rtol=tol, atol=tol)
    assert s.success
    assert abs(float(s.ys[-1, 0]) - VDP_X2[eps]) < 5e-3


def test_kvaerno3_shipped_van_der_pol_stiff():
    p = ode.van_der_pol_stiff(mu=1e3)
    s = solve(p, "kvaerno3", rtol=1e-3, atol=1e-3)
    assert abs(float(s.ys[-1, 0]) - VDP_X2[1e-6]) < 5e-3  # the shipped problem is the ε = 1e-6 form


def test_newton_stage_with_a_stale_matrix_fails_instead_of_accepting():
    """A linear stage equation whose kept iteration matrix mistakes the slow direction: the first correction
    is below κ but the iterate is far from the solution; with ``kept`` the contraction rate is measured and
    the stage fails (the ESDIRK stepper then retries with a fresh Jacobian)."""
    from sciml.solvers.ode.newton import newton_stage

    dt = torch.float64
    hg = 1.0
    J = torch.diag(torch.tensor([-1e6, 0.0], dtype=dt))  # the stage's true Jacobian: one stiff component
    J_kept = torch.diag(torch.tensor([-1e6, -1e5], dtype=dt))  # an earlier step's: the slow one stiff too
    A = torch.eye(2, dtype=dt) - hg * J
    W = torch.eye(2, dtype=dt) - hg * J_kept
    Y_star = torch.tensor([1.0, 2.0], dtype=dt)
    R = A @ Y_star  # Y = R + hγ J Y has the solution Y_star
    scale = 1e-6 + 1e-6 * Y_star.abs()
    Y0 = Y_star + torch.tensor([0.0, 100.0], dtype=dt) * scale  # 100 tolerances off in the slow component

    def lin(v):
        return torch.linalg.solve(W, v)

    fresh = newton_stage(lambda z: J @ z, R, Y0, hg, lin, scale, 0.03, 0.02, 10)
    assert fresh.converged and ((fresh.Y - Y_star) / scale).abs().max() > 50  # the reported defect
    kept = newton_stage(lambda z: J @ z, R, Y0, hg, lin, scale, 0.03, 0.02, 10, kept=True)
    assert not kept.converged


# --------------------------------------------------------------------------------- 2. Rosenbrock ∂f/∂t
def _prothero_robinson(y0: float, t0: float = 0.0, lam: float = -1e6) -> ODEProblem:
    def f(t, y):
        return lam * (y - torch.cos(t)) - torch.sin(t)

    return ODEProblem(f, torch.tensor([y0], dtype=torch.float64), (t0, t0 + 10.0))


@pytest.mark.parametrize("method", ["rodas5p", "rodas4"])
def test_rosenbrock_time_dependence_not_lost_in_round_off_at_t0(method):
    """One probe at t0 with δ = √eps·max(|t0|, |h0|) saw no change of f (round-off) and dropped ∂f/∂t for
    the whole solve: MAX_STEPS."""
    s = solve(_prothero_robinson(1.5), method, rtol=1e-6, atol=1e-6, max_steps=2000, throw=False)
    assert s.success and s.stats.n_steps < 200
    assert abs(float(s.ys[-1, 0]) - math.cos(10.0)) < 1e-5


def test_rosenbrock_time_dependence_through_a_species_zero_at_t0():
    """The time dependence multiplies a species that is 0 at t0: the one-time probe saw none (50 -> 1161
    steps for rodas5p)."""

    def make(amp):
        def f(t, y):
            a, b, c, d = y.unbind(-1)
            r1, r2, r3 = 0.04 * a, 3e7 * b * b, 1e4 * b * c
            r4 = 0.5 * c * (1 + amp * torch.sin(t))
            return torch.stack([-r1 + r3, r1 - r2 - r3, r2 - r4, r4], -1)

        return f

    y0 = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    p = ODEProblem(make(0.1), y0, (0.0, 40.0))
    plain = solve(ODEProblem(make(0.0), y0, (0.0, 40.0)), "rodas5p", rtol=1e-6, atol=1e-10)
    s = solve(p, "rodas5p", rtol=1e-6, atol=1e-10)
    assert s.stats.n_steps < 3 * plain.stats.n_steps
    ref = solve(p, "radau5", rtol=1e-11, atol=1e-14)
    assert ((s.ys[-1] - ref.ys[-1]).abs() / (1e-10 + 1e-6 * ref.ys[-1].abs())).max() < 20


def test_rosenbrock23_time_derivative_step_does_not_grow_with_t():
    """The forward-difference step √eps·|t| was 0.015 at t ~ 1e6: 83 605 steps instead of 4 075."""
    near = solve(_prothero_robinson(1.0, lam=-1e4), "rosenbrock23", rtol=1e-5, atol=1e-5)
    far = solve(
        _prothero_robinson(math.cos(1e6), 1e6, lam=-1e4),
        "rosenbrock23",
        rtol=1e-5,
        atol=1e-5,
        max_steps=20000,
    )
    assert far.stats.n_steps < 1.5 * near.stats.n_steps
    assert abs(float(far.ys[-1, 0]) - math.cos(1e6 + 10.0)) < 1e-5


def test_rosenbrock_time_derivative_gradient_matches_differences():
    """∂f/∂t by forward-mode AD keeps the solve differentiable in the parameters of f."""

    def run(w):
        def f(t, y):
            return -50.0 * (y - torch.sin(w * t))

        p = ODEProblem(f, torch.tensor([0.0], dtype=torch.float64), (0.0, 1.0))
        return solve(p, "rodas4", dt=0.05).ys[-1, 0]

    w = torch.tensor(3.0, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(run(w), w)
    e = 1e-6
    with torch.no_grad():
        fd = (run(w + e) - run(w - e)) / (2 * e)
    assert abs(float(g - fd)) < 1e-6 * max(1.0, abs(float(fd)))


@pytest.mark.parametrize("method", ["rosenbrock23", "rodas5p"])
def test_continuous_adjoint_backward_skips_time_derivative_of_an_autonomous_field(method, monkeypatch):
    """The backward field takes plain float times, so by itself it could only get ∂f/∂t by a difference
    quotient (one more evaluation per Jacobian); where the forward solve found the field autonomous, the
    backward solve skips it. A field that reads t keeps its difference quotients."""
    from sciml.solvers.ode.rosenbrock import Rosenbrock

    probes = []
    difference = Rosenbrock._difference

    def counted(f, t, y, h, shape):
        probes.append(t)
        return difference(f, t, y, h, shape)

    monkeypatch.setattr(Rosenbrock, "_difference", staticmethod(counted))
    A = torch.tensor([[-1.0, 0.5, 0.0], [0.0, -2.0, 0.3], [0.1, 0.0, -3.0]], dtype=torch.float64)
    A.requires_grad_(True)
    y0 = torch.tensor([1.0, 0.5, -0.2], dtype=torch.float64)
    for forced, expect_probes in ((None, False), (torch.cos, True)):

        def f(t, y, forced=forced):
            out = A @ y
            return out if forced is None else out + forced(t) * torch.ones_like(y)

        sol = solve(ODEProblem(f, y0, (0.0, 1.0)), method, rtol=1e-8, atol=1e-10, adjoint="continuous",
                    adjoint_params=(A,))  # fmt: skip
        probes.clear()
        sol.ys[-1].sum().backward()
        assert bool(probes) == expect_probes, (forced, len(probes))
    with torch.no_grad():  # the gradient is still right: d(1ᵀ y(1))/dA against expm
        A.grad.zero_()
    sol = solve(ODEProblem(lambda t, y: A @ y, y0, (0.0, 1.0)), method, rtol=1e-8, atol=1e-10,
                adjoint="continuous", adjoint_params=(A,))  # fmt: skip
    sol.ys[-1].sum().backward()
    exact = torch.func.grad(lambda M: (torch.linalg.matrix_exp(M) @ y0).sum())(A.detach())
    assert torch.allclose(A.grad, exact, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", ["rosenbrock23", "rodas5p"])
def test_continuous_adjoint_forward_keeps_the_time_derivative(method):
    """The continuous adjoint's forward solve once ran inside an autograd.Function, where forward-mode AD is
    off: ∂f/∂t came back as "no tangent", and a field whose time dependence is flat at t0 (cos) was taken
    for autonomous, so Rodas5P lost its order and took 3939 steps instead of 70. Both forward solves are
    now the same solve."""
    A = torch.tensor([[-1.0, 0.5, 0.0], [0.0, -2.0, 0.3], [0.1, 0.0, -3.0]], dtype=torch.float64)
    A.requires_grad_(True)
    y0 = torch.tensor([1.0, 0.5, -0.2], dtype=torch.float64)

    def f(t, y):
        return A @ y + 20.0 * torch.cos(5.0 * t) * torch.ones_like(y)

    problem = ODEProblem(f, y0, (0.0, 3.0))
    runs = {"backprop": solve(problem, method, rtol=1e-6, atol=1e-8)}
    tol = dict(rtol=1e-6, atol=1e-8)
    runs["continuous"] = solve(problem, method, **tol, adjoint="continuous", adjoint_params=(A,))
    assert runs["continuous"].stats.n_steps == runs["backprop"].stats.n_steps
    assert torch.equal(runs["continuous"].ys.detach(), runs["backprop"].ys.detach())


def test_rosenbrock_without_forward_ad_never_calls_a_field_autonomous():
    """Where forward-mode AD is off (a solve inside the user's own autograd.Function), a field whose time
    dependence is flat at t0 still gets ∂f/∂t (by differences) and full order."""
    A = torch.tensor([[-1.0, 0.5], [0.0, -2.0]], dtype=torch.float64)
    y0 = torch.tensor([1.0, 0.5], dtype=torch.float64)

    def f(t, y):
        return A @ y + 20.0 * torch.cos(5.0 * t) * torch.ones_like(y)

    def run():
        return solve(ODEProblem(f, y0, (0.0, 3.0)), "rodas5p", rtol=1e-6, atol=1e-8)

    solved = []

    class Inside(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            solved.append(run())
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return g

    outside = run()
    Inside.apply(torch.zeros((), requires_grad=True))
    (sol,) = solved
    assert sol.stats.n_steps <= 1.2 * outside.stats.n_steps  # 70 and 70 (3939 when taken for autonomous)
    assert torch.allclose(sol.ys[-1], outside.ys[-1], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------- 3. messages
def test_auto_max_steps_message_hints_at_stiffness():
    """method='auto' stays with tsit5 on a stiff mode too lightly damped for its switching rule (damping ratio
    below auto.MIN_DAMPING): the max-steps message had no stiffness hint and began a sentence with a
    dangling 'Otherwise'. (-1e4 ± 1e4i, the first report, now switches: tests/test_auto_oscillatory.py.)"""
    D = torch.tensor([[-300.0, 1e4, 0.0], [-1e4, -300.0, 0.0], [1.0, 0.0, -1.0]], dtype=torch.float64)
    p = ODEProblem(lambda t, y: D @ y, torch.tensor([1.0, 0.5, 0.2], dtype=torch.float64), (0.0, 20.0))
    with pytest.raises(SolveError) as err:
        solve(p, "auto", rtol=1e-6, atol=1e-8, max_steps=3000)
    message = str(err.value)
    assert "stiff" in message and "method='rodas5p'" in message


def test_implicit_max_steps_message_has_no_dangling_otherwise():
    s = solve(ode.robertson(), "rodas5p", rtol=1e-6, atol=1e-10, max_steps=5, throw=False)
    assert s.status.name == "MAX_STEPS"
    assert "Otherwise" not in s.message and "Raise `max_steps`" in s.message


@pytest.mark.parametrize("method", ["radau5", "kvaerno5", "kvaerno3"])
def test_fixed_step_newton_failure_stops_there_and_says_so(method):
    """A fixed-step implicit solve whose Newton iteration failed on the first step carried the NaN to the
    end; the message named t = t1 and blamed the vector field. (Fixed steps now iterate while Newton
    contracts, so the step is long enough to make it diverge for every method.)"""
    k = (0.04, 3e2, 1e2)

    def f(t, y):
        a, b, c = y.unbind(-1)
        return torch.stack(
            [-k[0] * a + k[2] * b * c, k[0] * a - k[2] * b * c - k[1] * b * b, k[1] * b * b], -1
        )

    p = ODEProblem(f, torch.tensor([0.8, 0.1, 0.1], dtype=torch.float64), (0.0, 5.0))
    s = solve(p, method, dt=1.0, throw=False)
    assert s.status.name == "NON_FINITE"
    assert "Newton" in s.message and "t=0 " in s.message and "dt" in s.message
    assert ("radauIIA5" in s.message) == (method != "radau5")  # the other methods point to Radau on the grid
    assert s.stats.n_newton_fail == 1 and float(s.ts[-1]) == 0.0


def test_dense_refusal_mentions_krylov():
    n = MAX_DENSE + 10
    d = -(1 + torch.arange(n, dtype=torch.float64))
    p = ODEProblem(lambda t, y: d * y, torch.ones(n, dtype=torch.float64), (0.0, 1.0))
    with pytest.raises(ValueError, match="krylov"):
        solve(p, "kvaerno5")


def test_analytic_sparse_jacobian_above_the_dense_limit_is_refused():
    """An analytic (sparse) Jacobian was densified and factorised densely with no size check."""
    n = MAX_DENSE + 10
    d = -(1 + torch.arange(n, dtype=torch.float64))
    idx = torch.arange(n)
    p = ODEProblem(lambda t, y: d * y, torch.ones(n, dtype=torch.float64), (0.0, 1.0))
    calls = []

    def jac(t, y):
        calls.append(1)
        return torch.sparse_coo_tensor(torch.stack([idx, idx]), d, (n, n), check_invariants=True)

    with pytest.raises(ValueError, match="dense Jacobian"):
        solve(p, "kvaerno5", jac=jac, max_steps=2)
    assert calls


def test_krylov_without_preconditioner_counts_no_factorisations():
    """nlu counts preconditioner set-ups (README); GMRES alone factorises nothing."""
    p = ode.brusselator_1d(n=50)
    with torch.no_grad():
        s = solve(p, "kvaerno5", rtol=1e-4, atol=1e-6, jac="krylov")
    assert s.success and s.stats.nlu == 0 and s.stats.njvp > 0


# ------------------------------------------------------------------- 4. gradients with jac='fd'
def _kinetics_final(k, method, jac, dt):
    def f(t, y):
        a, b, c = y.unbind(-1)
        return torch.stack(
            [-k[0] * a + k[2] * b * c, k[0] * a - k[2] * b * c - k[1] * b * b, k[1] * b * b], -1
        )

    y0 = torch.tensor([0.8, 0.1, 0.1], dtype=torch.float64)
    return solve(ODEProblem(f, y0, (0.0, 1.0)), method, dt=dt, jac=jac).ys[-1]


@pytest.mark.parametrize("method", ["rodas4", "rosenbrock23"])
def test_gradient_through_rosenbrock_with_fd_jacobian_warns(method):
    """With jac='fd' the Jacobian has no autograd history: the gradient is not the derivative of the
    computed solution (rodas4: 120 % off); a one-time warning names the fix."""
    k = torch.tensor([0.04, 3e3, 1e3], dtype=torch.float64, requires_grad=True)
    with pytest.warns(UserWarning, match="jac=None"):
        _kinetics_final(k, method, "fd", 0.02).sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            _kinetics_final(k, method, "fd", 0.02)  # no gradient wanted: no warning
        _kinetics_final(k, method, None, 0.02).sum().backward()  # autodiff Jacobian: no warning
