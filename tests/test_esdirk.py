"""ESDIRK methods (kvaerno3, kvaerno5): tableaus against the order conditions, convergence orders, stiff
problems against published values, Jacobian reuse, Newton failures, and derivatives of the converged Newton
stages by the implicit function theorem (float64 gradchecks, backprop against central differences)."""

import math
from functools import cache

import numpy as np
import pytest
import torch
from sciml.problems import ode
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import reference_solution, solve
from sciml.solvers.ode.esdirk import ESDIRK, KVAERNO3, KVAERNO5, ESDIRKTableau
from sciml.solvers.solution import SolveError, Status

KVAERNO = {"kvaerno3": KVAERNO3, "kvaerno5": KVAERNO5}
PUBLISHED = {  # IVP test set end values (RADAU5, very tight); Robertson at t = 40 from Hairer & Wanner II
    "robertson": [0.7158270687193267, 9.185534764557572e-6, 0.2841637457458589],
    "van_der_pol_stiff": [1.706167732170483, -0.8928097010248125],
    "hires": [
        0.7371312573325668e-3, 0.1442485726316185e-3, 0.5888729740967575e-4, 0.1175651343283149e-2,
        0.2386356198831331e-2, 0.6238968252742796e-2, 0.2849998395185769e-2, 0.2850001604814231e-2,
    ],
}  # fmt: skip


# ------------------------------------------------------------------------------------------ tableaus
@cache
def _trees(order: int) -> tuple:
    """Rooted trees with ``order`` vertices, each a sorted tuple of its children's trees."""
    if order == 1:
        return ((),)
    out = set()

    def forests(n, max_tree):  # multisets of trees with n vertices in total, in non-increasing order
        if n == 0:
            yield ()
            return
        for k in range(n, 0, -1):
            for t in _trees(k):
                if max_tree is not None and (k, t) > max_tree:
                    continue
                for rest in forests(n - k, (k, t)):
                    yield ((k, t),) + rest

    for forest in forests(order - 1, None):
        out.add(tuple(sorted(t for _, t in forest)))
    return tuple(sorted(out))


def _size(t) -> int:
    return 1 + sum(_size(c) for c in t)


def _density(t) -> int:
    return _size(t) * math.prod(_density(c) for c in t)


def _stage_weights(t, A: np.ndarray) -> np.ndarray:
    g = np.ones(len(A))
    for child in t:
        g = g * (A @ _stage_weights(child, A))
    return g


def _order_residuals(b, A, order):
    return [
        float(np.dot(b, _stage_weights(t, A)) - 1.0 / _density(t))
        for q in range(1, order + 1)
        for t in _trees(q)
    ]


def test_tree_count():
    assert [len(_trees(q)) for q in range(1, 7)] == [1, 1, 2, 4, 9, 20]


@pytest.mark.parametrize("name", KVAERNO)
def test_tableau_satisfies_the_order_conditions(name):
    """Every order condition up to the method's order (float64, from the tableau), the embedded method's up
    to its order, and not the next order (the orders are exact)."""
    tab = KVAERNO[name]
    A = tab.full_matrix()
    assert max(map(abs, _order_residuals(np.array(tab.b), A, tab.order))) < 1e-13
    assert max(map(abs, _order_residuals(np.array(tab.b_embedded), A, tab.error_order))) < 1e-13
    assert max(map(abs, _order_residuals(np.array(tab.b), A, tab.order + 1))) > 1e-6
    assert max(map(abs, _order_residuals(np.array(tab.b_embedded), A, tab.error_order + 1))) > 1e-6
    np.testing.assert_allclose(A.sum(1), tab.c, atol=1e-15)


def test_kvaerno5_abscissae_match_the_published_ones():
    published = [0.0, 0.52, 1.230333209967908, 0.8957659843500759, 0.43639360985864756, 1.0, 1.0]
    np.testing.assert_allclose(KVAERNO5.c, published, rtol=0, atol=1e-14)
    assert KVAERNO3.c == pytest.approx([0.0, 2 * KVAERNO3.gamma, 1.0, 1.0], abs=1e-15)


@pytest.mark.parametrize("name", KVAERNO)
def test_tableau_is_l_stable(name):
    """``R(z) = 1 + z bᵀ(I − zA)⁻¹ 1``: |R| ≤ 1 on the imaginary axis and R(−∞) = 0."""
    tab = KVAERNO[name]
    A, b, one = tab.full_matrix(), np.array(tab.b), np.ones(tab.n_stages)

    def R(z):
        return 1 + z * b @ np.linalg.solve(np.eye(len(A)) - z * A, one)

    assert max(abs(R(1j * y)) for y in np.logspace(-3, 4, 200)) <= 1 + 1e-12
    assert abs(R(-1e9)) < 1e-7


def test_tableau_errors():
    with pytest.raises(ValueError, match="i entries"):
        ESDIRKTableau("bad", 0.5, ((), (0.5, 0.1)), (0.0, 1.0), 1, 1)
    with pytest.raises(ValueError, match="c = 1"):
        ESDIRKTableau("bad", 0.5, ((), (0.2,)), (0.0, 1.0), 1, 1)
    with pytest.raises(ValueError, match="max_newton"):
        ESDIRK(KVAERNO5, max_newton=1)
    with pytest.raises(ValueError, match="jacobian_rate"):
        ESDIRK(KVAERNO5, jacobian_rate=1.5)
    with pytest.raises(ValueError, match="newton_kappa"):
        ESDIRK(KVAERNO5, newton_kappa=0.0)
    with pytest.raises(ValueError, match="`jac` must be one of"):
        solve(ode.robertson(), "kvaerno5", jac="dense-ish")


# ------------------------------------------------------------------------------------------ accuracy
def _slope(ns, errors):
    return -np.polyfit(np.log(ns), np.log(errors), 1)[0]


@pytest.mark.parametrize("name", KVAERNO)
@pytest.mark.parametrize("problem", ["forced_linear", pytest.param("lotka_volterra", marks=pytest.mark.slow)])
def test_convergence_order(name, problem):
    """Fixed steps (Newton converged to round-off, far below the truncation error; up to 30 iterations as
    the predictors are poor at these step sizes): the log-log slope is the order."""
    order = KVAERNO[name].order
    method = ESDIRK(KVAERNO[name], max_newton=30)
    p = ode.get(problem).replace(t_span=(0.0, 2.0))
    ts = torch.tensor([0.0, 2.0], dtype=torch.float64)
    ref = reference_solution(p, ts)[-1]
    ns = [16, 32, 64]
    errors = [
        (solve(p, method, dt=2.0 / n, saveat=ts, rtol=1e-13, atol=1e-15).ys[-1] - ref).abs().max().item()
        for n in ns
    ]
    assert order - 0.3 < _slope(ns[-2:], errors[-2:]) < order + 0.8


@pytest.mark.parametrize(
    "name,method,rtol",
    [
        ("robertson", "kvaerno5", 1e-7), ("robertson", "kvaerno3", 1e-6), ("hires", "kvaerno5", 1e-7),
        ("van_der_pol_stiff", "kvaerno5", 1e-5),
        pytest.param("hires", "kvaerno3", 1e-6, marks=pytest.mark.slow),
    ],
)  # fmt: skip
def test_stiff_problems_against_published_values(name, method, rtol):
    sol = solve(ode.get(name), method, rtol=rtol, atol=rtol * 1e-3)
    expected = torch.tensor(PUBLISHED[name], dtype=torch.float64)
    scale = expected.abs().clamp_min(1e-6 if name == "robertson" else 1e-3)
    assert sol.success
    assert ((sol.ys[-1] - expected).abs() / scale).max().item() < 200 * rtol
    st = sol.stats
    assert st.n_newton >= 2 * st.n_steps and st.nlu >= st.njev > 0


@pytest.mark.parametrize("name", ["robertson", pytest.param("hires", marks=pytest.mark.slow)])
def test_jacobian_and_factorisation_are_reused(name):
    sol = solve(ode.get(name), "kvaerno5", rtol=1e-6, atol=1e-10)
    st = sol.stats
    assert st.njev < 0.35 * st.n_steps  # one Jacobian serves several steps
    assert st.nlu < st.n_steps  # and one factorisation several steps (h changed by < 20 %)
    assert st.nfe > st.n_newton  # every Newton iteration evaluates f once; FSAL: no extra per step


def test_dense_output_and_saveat():
    """The cubic Hermite dense output (third order) between steps: its error is a cubic's interpolation
    error at these step sizes, bounded by the h^4 term of the steps it interpolates."""
    p = ode.van_der_pol()
    ts = torch.linspace(0.0, 10.0, 41, dtype=torch.float64)
    sol = solve(p, "kvaerno5", rtol=1e-6, atol=1e-8, saveat=ts)
    steps = solve(p, "kvaerno5", rtol=1e-6, atol=1e-8, save_steps=True)
    ref = reference_solution(p, ts)
    assert steps.stats.n_accepted > 30 and sol.ts.shape == (41,)
    h = steps.step_sizes.abs().max().item()
    at_steps = (steps.ys[-1] - ref[-1]).abs().max().item()
    between = (sol.ys - ref).abs().max().item()
    assert at_steps < 1e-4 and between < 0.05 * h**4 + at_steps


def test_jacobian_options_agree():
    """Dense AD, block-diagonal (independent rows), an analytic jac= and finite differences give the same
    solution (the Jacobian only steers Newton: the converged stages do not depend on it)."""
    rates = torch.tensor([[0.04, 3e7, 1e4], [0.05, 2e7, 1e4]], dtype=torch.float64)
    y0 = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.0, 0.1]], dtype=torch.float64)

    def f(t, y):
        return _kinetics(y, rates.T)

    def jac(t, y):
        a, b, c = y.unbind(-1)
        k1, k2, k3 = rates.unbind(-1)
        z = torch.zeros_like(a)
        rows = [
            torch.stack([-k1, k3 * c, k3 * b], -1),
            torch.stack([k1, -k3 * c - 2 * k2 * b, -k3 * b], -1),
            torch.stack([z, 2 * k2 * b, z], -1),
        ]
        return torch.stack(rows, -2)

    p = ODEProblem(f, y0, (0.0, 1.0))
    sols = {j: solve(p, "kvaerno5", rtol=1e-8, atol=1e-12, jac=j) for j in (None, "batched", "fd", jac)}
    base = sols[None].ys[-1]
    for s in sols.values():
        torch.testing.assert_close(s.ys[-1], base, rtol=1e-6, atol=1e-11)
    assert sols["batched"].stats.njev == sols[None].stats.njev
    assert sols[jac].stats.nfe == sols[None].stats.nfe


def test_newton_failure_shrinks_the_step_and_fixed_steps_end_non_finite():
    p = ODEProblem(lambda t, y: -1e4 * y**3, torch.tensor([1.0], dtype=torch.float64), (0.0, 10.0))
    sol = solve(p, ESDIRK(KVAERNO3, max_newton=2), rtol=1e-6, atol=1e-9)
    assert sol.success and sol.stats.n_newton_fail > 0  # failures rejected steps, not the solve
    assert sol.ys[-1].item() == pytest.approx((1 + 2e4 * 10.0) ** -0.5, rel=1e-4)
    fixed = solve(p, ESDIRK(KVAERNO3, max_newton=2), dt=5.0, throw=False)
    assert fixed.status is Status.NON_FINITE and "did not converge" in fixed.message
    with pytest.raises(SolveError):
        solve(p, ESDIRK(KVAERNO3, max_newton=2), dt=5.0)


# ------------------------------------------------------------------------------------------ gradients
def _kinetics(y, k):
    a, b, c = y.unbind(-1)
    return torch.stack([-k[0] * a + k[2] * b * c, k[0] * a - k[2] * b * c - k[1] * b * b, k[1] * b * b], -1)


@pytest.mark.parametrize("name", ["kvaerno5", pytest.param("kvaerno3", marks=pytest.mark.slow)])
def test_gradcheck_solution_and_error_regularizer(name):
    """The stages are converged without autograd history and differentiated by the implicit function
    theorem: the solution and Σ E_j |h_j| have the finite-difference gradients with respect to y0 and the
    rate constants (fixed steps; Newton converged far below the differences (κ = 1e-6), and a
    difference step of 1e-4: the estimates are differences of converged stages, in which Newton errors of
    ~1e-15 weigh ~1e-6 relative, too much for steps of 1e-6)."""
    k = torch.tensor([0.04, 30.0, 10.0], dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([1.0, 0.1, 0.05], dtype=torch.float64, requires_grad=True)

    def output(y0, k):
        p = ODEProblem(lambda t, y, k: _kinetics(y, k), y0, (0.0, 0.5), k)
        sol = solve(p, ESDIRK(KVAERNO[name], max_newton=30, newton_kappa=1e-6), dt=0.1, rtol=1e-9, atol=1e-11)
        return sol.ys[-1], (sol.error_estimates * sol.step_sizes.abs().to(y0)).sum()

    assert torch.autograd.gradcheck(output, (y0, k), eps=1e-4, atol=1e-6, rtol=1e-4)


def test_no_newton_iteration_is_recorded_by_autograd():
    """Tracked and untracked solves take the same steps and iterations and give the same values (the
    derivative is attached once per stage, not unrolled)."""
    k = torch.tensor([0.04, 3e7, 1e4], dtype=torch.float64)
    p = ODEProblem(lambda t, y, k: _kinetics(y, k), torch.tensor([1.0, 0.0, 0.0]).double(), (0, 4.0), k)
    with torch.no_grad():
        plain = solve(p, "kvaerno5", rtol=1e-6, atol=1e-10)
    tracked = solve(p.replace(params=k.clone().requires_grad_(True)), "kvaerno5", rtol=1e-6, atol=1e-10)
    assert tracked.ys.requires_grad and tracked.error_estimates.requires_grad
    assert tracked.stats == plain.stats
    torch.testing.assert_close(tracked.ys.detach(), plain.ys, rtol=0, atol=0)
