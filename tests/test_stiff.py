"""Stiff ODE methods: Rosenbrock convergence orders, stiff problems against published references and scipy
Radau, differentiable solutions and error estimates (float64 gradchecks), batched and user Jacobians,
``method="auto"`` switching, and the stiff problem definitions."""

import math

import numpy as np
import pytest
import torch
from sciml.problems import ode
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import reference_solution, solve
from sciml.solvers.solution import SolveError, Status

ROSENBROCK = {"rosenbrock23": 2, "rodas4": 4, "rodas5p": 5}

# End values from the IVP test set (Mazzia & Magherini, Bari, release 2.4), computed there with RADAU5 at
# very tight tolerances; Robertson at t = 40 from Hairer & Wanner II, IV.1.
PUBLISHED = {
    "robertson": [0.7158270687193267, 9.185534764557572e-6, 0.2841637457458589],
    "van_der_pol_stiff": [1.706167732170483, -0.8928097010248125],
    "hires": [
        0.7371312573325668e-3, 0.1442485726316185e-3, 0.5888729740967575e-4, 0.1175651343283149e-2,
        0.2386356198831331e-2, 0.6238968252742796e-2, 0.2849998395185769e-2, 0.2850001604814231e-2,
    ],
    "pollu": [0.5646255480022769e-1, 0.1342484130422339, 0.4139734331099427e-8, 0.5523140207484359e-2],
}  # fmt: skip


def _slope(ns, errors):
    return -np.polyfit(np.log(ns), np.log(errors), 1)[0]


@pytest.mark.parametrize("method,order", ROSENBROCK.items())
@pytest.mark.parametrize("problem", ["forced_linear", "lotka_volterra"])
def test_rosenbrock_convergence_order(method, order, problem):
    """Fixed steps on a non-autonomous linear and a nonlinear problem: the log-log slope is the order."""
    p = ode.get(problem).replace(t_span=(0.0, 2.0))
    ts = torch.tensor([0.0, 2.0], dtype=torch.float64)
    ref = reference_solution(p, ts)[-1]
    ns = [8, 16, 32, 64] if order >= 4 else [16, 32, 64, 128]  # errors well above round-off
    errors = [(solve(p, method, dt=2.0 / n, saveat=ts).ys[-1] - ref).abs().max().item() for n in ns]
    assert order - 0.3 < _slope(ns[-2:], errors[-2:]) < order + 0.8  # the finest pair: asymptotic


@pytest.mark.parametrize("method", ROSENBROCK)
def test_dense_output_matches_reference_between_steps(method):
    p = ode.van_der_pol()
    ts = torch.linspace(0.0, 10.0, 41, dtype=torch.float64)
    sol = solve(p, method, rtol=1e-6, atol=1e-8, saveat=ts)
    steps = solve(p, method, rtol=1e-6, atol=1e-8, save_steps=True)
    ref = reference_solution(p, ts)
    assert steps.stats.n_accepted > 40  # most save times fall inside steps: interpolated
    # interpolating between steps costs at most a small factor over the error the steps themselves make
    assert (sol.ys - ref).abs().max().item() < 5 * (steps.ys[-1] - ref[-1]).abs().max().item() + 1e-7


@pytest.mark.parametrize(
    "name,method",
    [
        ("robertson", "rodas5p"), ("robertson", "rodas4"), ("robertson", "rosenbrock23"),
        ("van_der_pol_stiff", "rodas5p"),
        pytest.param("van_der_pol_stiff", "rodas4", marks=pytest.mark.slow),
        pytest.param("van_der_pol_stiff", "rosenbrock23", marks=pytest.mark.slow),
    ],
)  # fmt: skip
def test_stiff_problems_against_published_values(method, name):
    p = ode.get(name)
    rtol = 1e-7 if method != "rosenbrock23" else 1e-5
    sol = solve(p, method, rtol=rtol, atol=rtol * 1e-3)
    expected = torch.tensor(PUBLISHED[name], dtype=torch.float64)
    scale = expected.abs().clamp_min(1e-6 if name == "robertson" else 1e-3)
    assert sol.success
    assert ((sol.ys[-1] - expected).abs() / scale).max().item() < 200 * rtol
    assert sol.stats.njev >= sol.stats.n_accepted > 0 and sol.stats.nlu >= sol.stats.njev


def test_tsit5_on_stiff_problem_names_auto():
    p = ode.robertson()
    sol = solve(p, "tsit5", rtol=1e-6, atol=1e-10, max_steps=3000, throw=False)
    assert sol.status is Status.MAX_STEPS
    assert "method='auto'" in sol.message


@pytest.mark.parametrize("name", ["hires", "pollu"])
def test_test_set_problems_against_published_values(name):
    sol = solve(ode.get(name), "rodas5p", rtol=1e-8, atol=1e-12)
    expected = torch.tensor(PUBLISHED[name], dtype=torch.float64)
    got = sol.ys[-1, : len(expected)]
    assert ((got - expected).abs() / expected.abs()).max().item() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("name", ["robertson", "van_der_pol_stiff", "hires", "orego", "pollu"])
def test_rodas5p_against_scipy_radau_reference(name):
    p = ode.get(name)
    ts = torch.linspace(*p.t_span, 11, dtype=torch.float64)
    ref = reference_solution(p, ts, rtol=1e-11, atol=1e-13)
    sol = solve(p, "rodas5p", rtol=1e-8, atol=1e-10, saveat=ts)
    scale = ref.abs().amax(0).clamp_min(1e-12)
    assert ((sol.ys - ref).abs() / scale).max().item() < 1e-5


def test_brusselator_mol_against_scipy_radau():
    p = ode.brusselator_1d(n=20).replace(t_span=(0.0, 2.0))
    ts = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    ref = reference_solution(p, ts, rtol=1e-10, atol=1e-12)
    sol = solve(p, "rodas5p", rtol=1e-7, atol=1e-9, saveat=ts)
    assert (sol.ys - ref).abs().max().item() < 1e-5


# ------------------------------------------------------------------------------------------ gradients
def _kinetics(y, k):
    a, b, c = y.unbind(-1)
    return torch.stack([-k[0] * a + k[2] * b * c, k[0] * a - k[2] * b * c - k[1] * b * b, k[1] * b * b], -1)


@pytest.mark.parametrize("method", ["rodas5p", "rosenbrock23"])
def test_gradcheck_solution_and_error_regularizer(method):
    """Rosenbrock stages are linear solves with one LU factorisation: autograd through them is exact, so the
    solution and Σ E_j |h_j| have the finite-difference gradients with respect to y0 and the rate constants
    (fixed steps: the step sizes are constants, as in adaptive solves)."""
    k = torch.tensor([0.04, 30.0, 10.0], dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([1.0, 0.1, 0.05], dtype=torch.float64, requires_grad=True)  # |y| smooth: no zeros

    def output(y0, k):
        p = ODEProblem(lambda t, y, k: _kinetics(y, k), y0, (0.0, 0.5), k)
        sol = solve(p, method, dt=0.05, rtol=1e-4, atol=1e-6)
        reg = (sol.error_estimates * sol.step_sizes.abs().to(y0)).sum()
        return sol.ys[-1], reg, sol.stiffness_estimates.sum()

    # eps 1e-5: E_j is a difference of two solutions, so its round-off (~1e-13) over eps 1e-6 was already
    # 1e-7, the size of atol (it failed on some CPUs); at 1e-5 it is 1e-8, and the truncation error smaller
    assert torch.autograd.gradcheck(output, (y0, k), eps=1e-5, atol=1e-7, rtol=1e-4)


# (method, t1, dt, rtol, atol, gradient rtol, gradient atol) for the batched-vs-dense gradient comparison
_BATCHED_GRADIENTS = [
    ("rodas5p", 0.5, 0.1, 1e-3, 1e-5, 1e-10, 1e-12),
    ("radau5", 0.2, 0.05, 1e-12, 1e-12, 1e-8, 1e-10),
    ("kvaerno5", 0.5, 0.1, 1e-9, 1e-11, 1e-8, 1e-12),
]


@pytest.mark.parametrize("method,t1,dt,rtol,atol,grad_rtol,grad_atol", _BATCHED_GRADIENTS)
def test_batched_jacobian_gradients_equal_dense_ones(method, t1, dt, rtol, atol, grad_rtol, grad_atol):
    """The block-diagonal path differentiates like the dense one (whose gradients are gradchecked)."""
    k = torch.tensor([0.04, 30.0, 10.0], dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([[1.0, 0.1, 0.05], [0.8, 0.02, 0.2]], dtype=torch.float64, requires_grad=True)
    grads = []
    for jac in ("batched", None):
        p = ODEProblem(lambda t, y, k: _kinetics(y, k), y0, (0.0, t1), k)
        sol = solve(p, method, dt=dt, jac=jac, rtol=rtol, atol=atol)
        grads.append(torch.autograd.grad(sol.ys[-1].sum() + sol.error_estimates.sum(), (y0, k)))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=grad_rtol, atol=grad_atol)


@pytest.mark.parametrize("method,t1", [("rodas5p", 4.0), ("radau5", 1.0), ("kvaerno5", 4.0)])
def test_adaptive_gradient_matches_finite_difference_of_solution(method, t1):
    """Adaptive solves of Robertson: d y(t1) / d k1 by backprop agrees with a central difference of two
    tightly solved problems."""
    base = torch.tensor([0.04, 3e7, 1e4], dtype=torch.float64)

    def final(k):
        p = ODEProblem(lambda t, y, k: _kinetics(y, k), torch.tensor([1.0, 0.0, 0.0]).double(), (0, t1), k)
        return solve(p, method, rtol=1e-9, atol=1e-13).ys[-1, 0]

    k = base.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(final(k), k)
    d = 1e-6 * base[0]
    fd = (final(base + torch.tensor([d, 0, 0])) - final(base - torch.tensor([d, 0, 0]))) / (2 * d)
    assert g[0].item() == pytest.approx(fd.item(), rel=1e-4)


@pytest.mark.parametrize("method", ["rodas5p", "radau5", "kvaerno5"])
def test_continuous_adjoint_with_implicit_method_matches_backprop(method):
    """The backward solve of the continuous adjoint (a larger augmented system) gets its own Jacobian."""
    p = ode.exponential().replace(t_span=(0.0, 2.0))
    y0 = p.y0.clone().requires_grad_(True)
    q = p.replace(y0=y0)
    g = []
    for adjoint in ("backprop", "continuous"):
        sol = solve(q, method, rtol=1e-9, atol=1e-11, adjoint=adjoint, adjoint_params=())
        g.append(torch.autograd.grad(sol.ys[-1].sum(), y0)[0])
    torch.testing.assert_close(g[0], g[1], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("method", ["rodas5p", "kvaerno5"])
def test_continuous_adjoint_refuses_stiff_dynamics_it_cannot_retrace(method):
    # Robertson-like rates: re-solving y backwards amplifies the fast decaying mode, so y (and ∂f/∂y) at the
    # start are meaningless; the gradient used to come back 10⁶× off without an error
    k = torch.tensor([0.04, 3e3, 1e2], dtype=torch.float64, requires_grad=True)
    p = ODEProblem(
        lambda t, y: _kinetics(y, k), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), (0.0, 1.0)
    )
    sol = solve(p, method, rtol=1e-5, atol=1e-8, saveat=[1.0], adjoint="continuous", adjoint_params=(k,))
    with pytest.raises(SolveError, match="adjoint='backprop'"):
        sol.ys[-1][1].backward()
    sol = solve(p, method, rtol=1e-5, atol=1e-8, saveat=[1.0])  # backprop: the IFT through each Newton solve
    (g,) = torch.autograd.grad(sol.ys[-1][1], k)
    assert g[0].item() == pytest.approx(0.0324188, rel=1e-3)  # central difference at rtol 1e-11


# ------------------------------------------------------------------------------------------ Jacobians
def _batched_robertson(batch: int):
    rates = torch.tensor([0.04, 3e7, 1e4], dtype=torch.float64) * (1 + 0.1 * torch.rand(batch, 3).double())
    y0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).repeat(batch, 1)

    def f(t, y, k):
        return _kinetics(y, k.T)

    return ODEProblem(f, y0, (0.0, 40.0), rates, stiff=True)


def test_batched_jacobian_equals_per_sample_solves():
    p = _batched_robertson(3).replace(t_span=(0.0, 4.0))
    sol = solve(p, "rodas5p", rtol=1e-8, atol=1e-12, jac="batched")
    for b in range(3):
        q = ODEProblem(lambda t, y, k: _kinetics(y, k), p.y0[b], p.t_span, p.params[b])
        single = solve(q, "rodas5p", rtol=1e-10, atol=1e-14)
        torch.testing.assert_close(sol.ys[-1, b], single.ys[-1], rtol=1e-5, atol=1e-10)
    dense = solve(p, "rodas5p", rtol=1e-8, atol=1e-12)  # the same Jacobian, assembled densely
    torch.testing.assert_close(sol.ys, dense.ys, rtol=1e-9, atol=1e-13)
    assert sol.stats.njev == dense.stats.njev


def test_user_jacobian_equals_autodiff():
    p = ode.robertson()

    def jac(t, y):
        k1, k2, k3 = p.params
        a, b, c = y
        return torch.stack(
            [
                torch.stack([-k1 + 0 * a, k3 * c, k3 * b]),
                torch.stack([k1 + 0 * a, -k3 * c - 2 * k2 * b, -k3 * b]),
                torch.stack([0 * a, 2 * k2 * b, 0 * a]),
            ]
        )

    user = solve(p, "rodas5p", rtol=1e-7, atol=1e-11, jac=jac)
    auto = solve(p, "rodas5p", rtol=1e-7, atol=1e-11)
    torch.testing.assert_close(user.ys, auto.ys, rtol=1e-10, atol=1e-14)
    assert user.stats.n_steps == auto.stats.n_steps
    assert user.stats.nfe == auto.stats.nfe  # Jacobian calls of f are not counted as nfe


def test_jacobian_option_errors():
    p = ode.robertson()
    with pytest.raises(ValueError, match="implicit methods only"):
        solve(p, "tsit5", jac="batched")
    with pytest.raises(ValueError, match="`jac` must be one of"):
        solve(p, "rodas5p", jac="sparse")
    with pytest.raises(ValueError, match="batch"):
        solve(p, "rodas5p", jac="batched")
    with pytest.raises(ValueError, match="expected"):
        solve(p, "rodas5p", jac=lambda t, y: torch.zeros(2, 2, dtype=torch.float64))


@pytest.mark.parametrize("tableau", ["rosenbrock23", "rodas5p"])
def test_w_method_flag_matches_order_with_a_wrong_jacobian(tableau):
    """A W-method keeps its order with any matrix in place of J (so it may keep a Jacobian across
    steps); Rodas5P's order needs the exact Jacobian and drops with a wrong one."""
    from sciml.solvers.ode.rosenbrock import ROSENBROCK_TABLEAUS, Rosenbrock

    tab = ROSENBROCK_TABLEAUS[tableau]
    p = ode.get("lotka_volterra").replace(t_span=(0.0, 2.0))
    ts = torch.tensor([0.0, 2.0], dtype=torch.float64)
    ref = reference_solution(p, ts)[-1]

    def wrong(t, y):
        return torch.tensor([[0.3, -1.0], [0.5, -0.7]], dtype=torch.float64)

    ns = [32, 64, 128]
    errors = [(solve(p, Rosenbrock(tab), dt=2.0 / n, saveat=ts, jac=wrong).ys[-1] - ref).abs().max().item()
              for n in ns]  # fmt: skip
    slope = _slope(ns[-2:], errors[-2:])
    if tab.w_method:
        assert tab.order - 0.3 < slope < tab.order + 0.5
    else:
        assert slope < tab.order - 2


def test_rosenbrock23_keeps_its_jacobian_where_it_pays():
    from sciml.solvers.ode.rosenbrock import ROSENBROCK23, Rosenbrock

    p = ode.pollu()  # 20 unknowns: a Jacobian costs more than four steps' evaluations
    ts = torch.linspace(*p.t_span, 5, dtype=torch.float64)
    ref = solve(p, "rodas5p", rtol=1e-7, atol=1e-13, saveat=ts).ys  # checked against Radau above
    kept = solve(p, Rosenbrock(ROSENBROCK23), rtol=1e-4, atol=1e-8, saveat=ts)
    fresh = solve(p, Rosenbrock(ROSENBROCK23, max_jacobian_age=1), rtol=1e-4, atol=1e-8, saveat=ts)
    assert fresh.stats.njev >= fresh.stats.n_accepted
    assert kept.stats.njev < fresh.stats.njev / 3
    scale = ref.abs().amax(0).clamp_min(1e-16)
    for sol in (kept, fresh):
        assert ((sol.ys - ref).abs() / scale).max().item() < 1e-3
    small = solve(ode.robertson(), "rosenbrock23", rtol=1e-4, atol=1e-10)  # n = 3: one per step start
    assert small.stats.njev == small.stats.n_accepted  # a rejected step's retry reuses its start's
    with pytest.raises(ValueError, match="max_jacobian_age"):
        Rosenbrock(ROSENBROCK23, max_jacobian_age=0)


# ------------------------------------------------------------------------------------------ auto
def test_auto_on_van_der_pol_costs_at_most_the_better_method_plus_20_percent():
    p = ode.van_der_pol(mu=1000.0).replace(t_span=(0.0, 3000.0))
    n = 2

    def work(sol):
        return sol.stats.nfe + n * sol.stats.njev

    rodas = solve(p, "rodas5p", rtol=1e-4, atol=1e-6)
    auto = solve(p, "auto", rtol=1e-4, atol=1e-6)
    # Tsit5 makes ≥ 6 evaluations a step: stopping it after work(rodas) / 6 steps bounds its work from below
    tsit5 = solve(p, "tsit5", rtol=1e-4, atol=1e-6, max_steps=work(rodas) // 6 + 1, throw=False)
    best = min(work(rodas), work(tsit5) if tsit5.success else math.inf)
    assert auto.success and work(auto) <= 1.2 * best
    assert auto.switches[0] == (0.0, "tsit5") and any(m == "rodas5p" for _, m in auto.switches)
    torch.testing.assert_close(auto.ys[-1], rodas.ys[-1], rtol=0.0, atol=5e-2)  # same tolerance, same answer


def test_auto_on_non_stiff_problem_stays_explicit():
    p = ode.lotka_volterra()
    auto = solve(p, "auto", rtol=1e-6, atol=1e-9)
    tsit5 = solve(p, "tsit5", rtol=1e-6, atol=1e-9)
    assert auto.switches == ((0.0, "tsit5"),)
    assert auto.stats.nfe == tsit5.stats.nfe and auto.stats.njev == 0
    torch.testing.assert_close(auto.ys, tsit5.ys)


def test_bench_equal_error_interpolation():
    """The bench's equal-error ratios interpolate log-log on our curve and refuse to extrapolate."""
    from sciml.bench.stiff import _at_error

    curve = [(1e-4, 100.0), (1e-6, 400.0), (1e-8, 1600.0)]  # work ∝ error^(-0.3)
    assert _at_error(curve, 1e-5) == pytest.approx(200.0)
    assert _at_error(curve, 1e-7) == pytest.approx(800.0)
    assert math.isnan(_at_error(curve, 1e-9)) and math.isnan(_at_error(curve, 1e-3))
    assert math.isnan(_at_error(curve[:1], 1e-4))
