"""``radau5`` (3-stage Radau IIA, RADAU5's algorithm): convergence order, stiff problems against references,
dense output, Jacobian reuse, Jacobian options, clear failures, and gradients by the implicit function
theorem (float64 gradchecks, backprop against central differences)."""

import numpy as np
import pytest
import torch
from sciml.problems import ode
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import reference_solution, solve
from sciml.solvers.ode.radau import RADAU5, RadauController
from sciml.solvers.solution import Status

# IVP test set end values (Mazzia & Magherini, release 2.4); Robertson at t = 40 from Hairer & Wanner II
PUBLISHED = {
    "robertson": [0.7158270687193267, 9.185534764557572e-6, 0.2841637457458589],
    "van_der_pol_stiff": [1.706167732170483, -0.8928097010248125],
    "hires": [
        0.7371312573325668e-3, 0.1442485726316185e-3, 0.5888729740967575e-4, 0.1175651343283149e-2,
        0.2386356198831331e-2, 0.6238968252742796e-2, 0.2849998395185769e-2, 0.2850001604814231e-2,
    ],
}  # fmt: skip


def _kinetics(y, k):
    a, b, c = y.unbind(-1)
    return torch.stack([-k[0] * a + k[2] * b * c, k[0] * a - k[2] * b * c - k[1] * b * b, k[1] * b * b], -1)


def test_coefficients_are_the_collocation_method():
    """Row sums are the abscissae, the quadrature is exact to degree 4 (order 5 = 2s − 1) and the dense
    output passes through the stages (also checked at import)."""
    A, c = RADAU5.A, RADAU5.c
    b = A[-1]  # stiffly accurate
    for q in range(1, 6):
        assert b @ c ** (q - 1) == pytest.approx(1 / q, abs=1e-14)
    np.testing.assert_allclose(A @ c, c**2 / 2, atol=1e-14)  # stage order 3
    np.testing.assert_allclose(np.linalg.inv(RADAU5.TI), RADAU5.T, atol=1e-12)


@pytest.mark.parametrize("problem", ["exponential", "harmonic_oscillator"])
def test_convergence_order_five(problem):
    """Fixed steps on smooth problems with exact solutions: the log-log slope of the final error is 5."""
    p = ode.get(problem).replace(t_span=(0.0, 2.0))
    ts = torch.tensor([0.0, 2.0], dtype=torch.float64)
    exact = p.solution(ts)[-1]
    ns = [4, 8, 16]
    errors = [
        (solve(p, "radau5", dt=2.0 / n, saveat=ts, rtol=1e-13, atol=1e-13).ys[-1] - exact).abs().max().item()
        for n in ns
    ]
    slope = -np.polyfit(np.log(ns[-2:]), np.log(errors[-2:]), 1)[0]
    assert 4.7 < slope < 5.8, (errors, slope)


@pytest.mark.parametrize(
    "name", ["robertson", *(pytest.param(n, marks=pytest.mark.slow) for n in ("hires", "van_der_pol_stiff"))]
)
def test_stiff_problems_against_published_values(name):
    sol = solve(ode.get(name), "radau5", rtol=1e-8, atol=1e-12 if name != "van_der_pol_stiff" else 1e-8)
    expected = torch.tensor(PUBLISHED[name], dtype=torch.float64)
    assert ((sol.ys[-1] - expected).abs() / expected.abs()).max().item() < 2e-5
    assert sol.stats.njev > 0 and sol.stats.nlu > 0 and sol.stats.n_newton >= sol.stats.n_steps


@pytest.mark.slow
@pytest.mark.parametrize("name", ["orego", "pollu", "e5"])
def test_more_problems_against_scipy_radau_reference(name):
    p = ode.get(name, **({"t1": 1e5} if name == "e5" else {}))
    ts = torch.linspace(*p.t_span, 11, dtype=torch.float64)
    ref_atol = 1e-30 if name == "e5" else 1e-13
    ref = reference_solution(p, ts, rtol=1e-11, atol=ref_atol)
    sol = solve(p, "radau5", rtol=1e-8, atol=1e-24 if name == "e5" else 1e-10, saveat=ts)
    scale = ref.abs().amax(0).clamp_min(ref_atol)
    assert ((sol.ys - ref).abs() / scale).max().item() < 1e-5


def test_dense_output_between_steps():
    """Save times inside steps use the collocation polynomial: close to the reference between steps."""
    p = ode.van_der_pol().replace(t_span=(0.0, 5.0))
    ts = torch.linspace(0.0, 5.0, 21, dtype=torch.float64)
    sol = solve(p, "radau5", rtol=1e-6, atol=1e-8, saveat=ts)
    steps = solve(p, "radau5", rtol=1e-6, atol=1e-8, save_steps=True)
    ref = reference_solution(p, ts)
    assert steps.stats.n_accepted > 20  # most save times fall inside steps
    assert (sol.ys - ref).abs().max().item() < 5 * (steps.ys[-1] - ref[-1]).abs().max().item() + 1e-6
    # the interpolant reproduces the step ends exactly (the same steps: no interpolation test, which would
    # shorten steps for the save times inside the span)
    ends = solve(p, "radau5", rtol=1e-6, atol=1e-8, saveat=steps.ts.to(p.y0), dense_error=False)
    torch.testing.assert_close(ends.ys, steps.ys, rtol=0, atol=1e-12)


def test_jacobian_and_factorisations_are_reused():
    """On Robertson most steps reuse the Jacobian (and many the factorisations)."""
    sol = solve(ode.robertson(), "radau5", rtol=1e-6, atol=1e-10)
    st = sol.stats
    assert st.njev * 3 < st.n_steps, (st.njev, st.n_steps)
    assert st.nlu < 2 * st.n_steps


def test_user_fd_and_batched_jacobians_agree():
    p = ode.robertson().replace(t_span=(0.0, 1.0))

    def jac(t, y):
        k1, k2, k3 = p.params
        a, b, c = y
        return torch.stack([
            torch.stack([-k1 + 0 * a, k3 * c, k3 * b]),
            torch.stack([k1 + 0 * a, -k3 * c - 2 * k2 * b, -k3 * b]),
            torch.stack([0 * a, 2 * k2 * b, 0 * a]),
        ])  # fmt: skip

    runs = {name: solve(p, "radau5", rtol=1e-7, atol=1e-11, jac=j) for name, j in
            (("auto", None), ("user", jac), ("fd", "fd"))}  # fmt: skip
    for name in ("user", "fd"):
        torch.testing.assert_close(runs[name].ys, runs["auto"].ys, rtol=1e-6, atol=1e-12)
    assert runs["user"].stats.nfe == runs["auto"].stats.nfe  # Jacobian calls of f are not counted as nfe
    rates = torch.tensor([[0.04, 3e7, 1e4], [0.05, 2e7, 2e4]], dtype=torch.float64)
    batch = ODEProblem(lambda t, y, k: _kinetics(y, k.T), p.y0.repeat(2, 1), (0.0, 1.0), rates)
    sol = solve(batch, "radau5", rtol=1e-7, atol=1e-11, jac="batched")
    for b in range(2):
        q = ODEProblem(lambda t, y, k: _kinetics(y, k), p.y0, (0.0, 1.0), rates[b])
        single = solve(q, "radau5", rtol=1e-9, atol=1e-13)
        torch.testing.assert_close(sol.ys[-1, b], single.ys[-1], rtol=1e-5, atol=1e-9)


def test_clear_errors_and_failures():
    p = ode.van_der_pol_stiff()
    with pytest.raises(ValueError, match="jac"):
        solve(p, "radau5", jac="sparse")
    with pytest.raises(ValueError, match="batched"):
        solve(p, "radau5", jac="batched")
    with pytest.raises(ValueError, match="must be positive"):
        solve(p, "radau5", rtol=-1.0)
    # a fixed step far too large for Newton: the solve stops with a non-finite status, not a wrong answer
    sol = solve(p.replace(t_span=(0.0, 2.0)), "radau5", dt=1.0, throw=False)
    assert sol.status in (Status.SUCCESS, Status.NON_FINITE)
    if sol.status is Status.NON_FINITE:
        assert "dt" in sol.message
    else:  # L-stable and converged: then the answer must be right
        ref = reference_solution(p.replace(t_span=(0.0, 2.0)), torch.tensor([0.0, 2.0]).double())[-1]
        assert (sol.ys[-1] - ref).abs().max().item() < 0.1


def test_default_controller_is_radau5s_and_others_work():
    p = ode.hires()
    sol = solve(p, "radau5", rtol=1e-5, atol=1e-9)
    pi = solve(p, "radau5", rtol=1e-5, atol=1e-9, controller=RadauController())  # without Newton info
    ref = torch.tensor(PUBLISHED["hires"], dtype=torch.float64)
    for s in (sol, pi):
        assert ((s.ys[-1] - ref).abs() / ref).max().item() < 1e-3


# ------------------------------------------------------------------------------------------ gradients
def test_gradcheck_solution_and_error_estimates():
    """Gradients by the implicit function theorem: the solution and Σ E_j |h_j| have the finite-difference
    gradients with respect to y0 and the rate constants (fixed steps, Newton converged to round-off)."""
    k = torch.tensor([0.04, 30.0, 10.0], dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([1.0, 0.1, 0.05], dtype=torch.float64, requires_grad=True)

    def output(y0, k):
        p = ODEProblem(lambda t, y, k: _kinetics(y, k), y0, (0.0, 0.2), k)
        sol = solve(p, "radau5", dt=0.05, rtol=1e-12, atol=1e-12)
        reg = (sol.error_estimates * sol.step_sizes.abs().to(y0)).sum()
        return sol.ys[-1], reg

    assert torch.autograd.gradcheck(output, (y0, k), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_method_of_lines_system_with_separate_factorisations():
    """70 unknowns (> FUSED_MAX): the real and the complex system are factorised separately."""
    p = ode.brusselator_1d(n=35).replace(t_span=(0.0, 0.5))
    ts = torch.tensor([0.0, 0.25, 0.5], dtype=torch.float64)
    ref = reference_solution(p, ts, rtol=1e-10, atol=1e-12)
    sol = solve(p, "radau5", rtol=1e-6, atol=1e-8, saveat=ts)
    assert (sol.ys - ref).abs().max().item() < 1e-5
    assert sol.stats.njev < sol.stats.n_steps
