"""``method="auto"`` on stiff problems whose stiff modes are complex (oscillatory).

User report: with eigenvalues like −10³ ± 10³i beside a slow mode, ``auto`` never left Tsit5 (5127 steps where
``rodas5p`` takes 80). Its stability-limited steps cycle around the boundary (S = 0.88, 0.88, 1.05, 1.17),
so the rule, 10 *consecutive* steps with S > 0.9, was reset every few steps; nearer the imaginary axis
(−200 ± 2000i) Tsit5's boundary itself lies at S = 0.79. Now a step is stiff above the boundary of the least
stable direction with damping ratio ≥ 0.1 (S > 0.713) when the solution moves slowly on the step's scale, and
a majority of the last 19 accepted steps switches (see :mod:`sciml.solvers.ode.auto`). References are
scipy's LSODA at rtol 1e-12 (within 1e-10 of Radau's there)."""

import math

import numpy as np
import pytest
import torch
from sciml.problems import ode
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import solve
from sciml.solvers.solution import Status
from scipy.integrate import solve_ivp

pytestmark = pytest.mark.usefixtures("one_thread")

D = torch.float64
RTOL, ATOL = 1e-6, 1e-9


def _linear(re, im):
    """``y' = Ay``: the complex stiff pair ``re ± i·im`` (a scaled rotation) feeding a slow mode (−1); also
    the field and Jacobian in numpy, for the reference."""
    A = np.array([[re, im, 0.0], [-im, re, 0.0], [1.0, 0.0, -1.0]])
    At = torch.tensor(A, dtype=D)
    p = ODEProblem(lambda t, y: At @ y, torch.tensor([1.0, 0.5, 0.2], dtype=D), (0.0, 10.0))
    return p, (lambda t, y: A @ y), (lambda t, y: A)


def _spring(k=1e6, c=1e3):
    """A mass on a stiff, hardening, damped spring ``x'' = −k(1 + d²)d − c(x' − u')``, ``d = x − u``, pulled
    by a Van der Pol oscillator ``(u, v)`` with μ = 1: eigenvalues near −500 ± 866i, a non-normal Jacobian."""

    def f(t, y):
        u, v, x, w = y.unbind(-1)
        d = x - u
        return torch.stack([v, (1 - u * u) * v - u, w, -k * (1 + d * d) * d - c * (w - v)], dim=-1)

    def f_np(t, y):
        u, v, x, w = y
        d = x - u
        return np.array([v, (1 - u * u) * v - u, w, -k * (1 + d * d) * d - c * (w - v)])

    def jac_np(t, y):
        u, v, x, w = y
        dk = k * (1 + 3 * (x - u) ** 2)
        return np.array([[0, 1, 0, 0], [-2 * u * v - 1, 1 - u * u, 0, 0], [0, 0, 0, 1], [dk, c, -dk, -c]])

    return ODEProblem(f, torch.tensor([2.0, 0.0, 2.1, 0.0], dtype=D), (0.0, 20.0)), f_np, jac_np


COMPLEX_STIFF = {
    "-1e3±1e3i": lambda: _linear(-1e3, 1e3),  # 135°: the user's case
    "-200±2000i": lambda: _linear(-200.0, 2000.0),  # damping ratio 0.0995: near the edge of the sector
    "stiff-spring": _spring,
}


def _reference(p, f, jac, ts):
    s = solve_ivp(f, p.t_span, p.y0.numpy(), method="LSODA", jac=jac, t_eval=ts, rtol=1e-12, atol=1e-14)
    assert s.success
    return torch.as_tensor(s.y.T)


def _error(sol, ref):
    """Largest error over the save times, relative to each component's largest size."""
    return ((sol.ys - ref).abs() / ref.abs().amax(0)).max().item()


@pytest.mark.parametrize("name", COMPLEX_STIFF)
def test_auto_switches_on_complex_stiff_modes(name):
    p, f, jac = COMPLEX_STIFF[name]()
    ts = np.linspace(*p.t_span, 21)
    saveat = torch.tensor(ts, dtype=D)
    auto = solve(p, "auto", rtol=RTOL, atol=ATOL, saveat=saveat)
    rodas = solve(p, "rodas5p", rtol=RTOL, atol=ATOL, saveat=saveat)
    assert [m for _, m in auto.switches] == ["tsit5", "rodas5p"]  # once, early, and no switching back
    assert auto.switches[1][0] < 0.2
    assert auto.stats.n_steps <= 1.5 * rodas.stats.n_steps + 50  # measured 106/80, 513/409, 465/415
    # Tsit5 needs more than 10x auto's steps (5127, 7641, 7566 against 106, 513, 465)
    tsit5 = solve(p, "tsit5", rtol=RTOL, atol=ATOL, max_steps=10 * auto.stats.n_steps, throw=False)
    assert tsit5.status is Status.MAX_STEPS
    ref = _reference(p, f, jac, ts)
    assert _error(auto, ref) <= 5 * _error(rodas, ref) + 1e-9  # measured 8.8e-8 / 1.3e-7, ...
    assert _error(auto, ref) < 1e-5


def test_auto_on_the_user_report_problem_now_finishes():
    """Eigenvalues −10⁴ ± 10⁴i at atol 1e-8: stayed on Tsit5 and hit max_steps=3000 (30000 did not
    suffice either); now about 94 steps."""
    A = torch.tensor([[-1e4, 1e4, 0.0], [-1e4, -1e4, 0.0], [1.0, 0.0, -1.0]], dtype=D)
    p = ODEProblem(lambda t, y: A @ y, torch.tensor([1.0, 0.5, 0.2], dtype=D), (0.0, 20.0))
    sol = solve(p, "auto", rtol=1e-6, atol=1e-8, max_steps=3000)
    assert [m for _, m in sol.switches] == ["tsit5", "rodas5p"] and sol.stats.n_steps < 200
    exact = torch.linalg.matrix_exp(A * 20.0) @ p.y0
    assert torch.allclose(sol.ys[-1], exact, rtol=1e-4, atol=1e-8)


def test_auto_on_robertson_at_loose_tolerance_switches():
    """Robertson at rtol 1e-3: the stability-limited Tsit5 steps cycled around S = 0.9, the consecutive
    count never reached 10, and Tsit5 ended in a step-size underflow at t = 3.09 after 3358 steps."""
    sol = solve(ode.robertson(), "auto", rtol=1e-3, atol=1e-6)
    assert [m for _, m in sol.switches] == ["tsit5", "rodas5p"] and sol.stats.n_steps < 100
    expected = torch.tensor([0.7158270687193267, 9.185534764557572e-6, 0.2841637457458589], dtype=D)
    assert ((sol.ys[-1] - expected).abs() / expected.clamp_min(1e-6)).max().item() < 1e-2


def _kepler(e=0.5):
    def f(t, y):
        q1, q2, p1, p2 = y.unbind(-1)
        r3 = (q1 * q1 + q2 * q2) ** 1.5
        return torch.stack([p1, p2, -q1 / r3, -q2 / r3], dim=-1)

    y0 = torch.tensor([1 - e, 0.0, 0.0, math.sqrt((1 + e) / (1 - e))], dtype=D)
    return ODEProblem(f, y0, (0.0, 20.0))


def _arenstorf():
    mu = 0.012277471
    mp = 1 - mu

    def f(t, y):
        y1, y2, v1, v2 = y.unbind(-1)
        d1 = ((y1 + mu) ** 2 + y2**2) ** 1.5
        d2 = ((y1 - mp) ** 2 + y2**2) ** 1.5
        a1 = y1 + 2 * v2 - mp * (y1 + mu) / d1 - mu * (y1 - mp) / d2
        return torch.stack([v1, v2, a1, y2 - 2 * v1 - mp * y2 / d1 - mu * y2 / d2], dim=-1)

    y0 = torch.tensor([0.994, 0.0, 0.0, -2.00158510637908252240537862224], dtype=D)
    return ODEProblem(f, y0, (0.0, 17.0652165601579625588917206249))


def _tanh_mlp(seed=1, width=64, dim=4, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    W1 = torch.randn(width, dim, generator=g, dtype=D) * scale / math.sqrt(dim)
    b1 = torch.randn(width, generator=g, dtype=D) * 0.1
    W2 = torch.randn(dim, width, generator=g, dtype=D) * scale / math.sqrt(width)
    y0 = torch.randn(dim, generator=g, dtype=D)
    return ODEProblem(lambda t, y: W2 @ torch.tanh(W1 @ y + b1), y0, (0.0, 5.0))


NON_STIFF = {
    "lotka-volterra": ode.lotka_volterra,
    "kepler": _kepler,
    "arenstorf": _arenstorf,
    "harmonic-1": lambda: ode.harmonic_oscillator(omega=1.0),
    "harmonic-10": lambda: ode.harmonic_oscillator(omega=10.0),
    "harmonic-50": lambda: ode.harmonic_oscillator(omega=50.0),
    "tanh-mlp": _tanh_mlp,
}


@pytest.mark.parametrize("rtol", [1e-2, 1e-3, 1e-6])
@pytest.mark.parametrize("name", NON_STIFF)
def test_auto_on_non_stiff_problems_stays_on_tsit5_bit_for_bit(name, rtol):
    _assert_all_tsit5(NON_STIFF[name](), rtol)


@pytest.mark.parametrize("rtol", [1e-1, 3e-2])
@pytest.mark.parametrize("name", ["harmonic-10", "harmonic-50", "kepler", "arenstorf"])
def test_auto_on_oscillations_at_loose_tolerances_stays_on_tsit5(name, rtol):
    """Accuracy-limited steps at rtol 3e-2 or 0.1 reach |hω| ≈ 3 (S ≈ 0.85, the majority rule's threshold is
    0.713): not stiff, because the solution itself moves by O(1) per step."""
    _assert_all_tsit5(NON_STIFF[name](), rtol)


def _assert_all_tsit5(p, rtol):
    kw = dict(rtol=rtol, atol=rtol * 1e-3, save_steps=True)
    auto, tsit5 = solve(p, "auto", **kw), solve(p, "tsit5", **kw)
    assert auto.switches == ((0.0, "tsit5"),)
    assert auto.stats.njev == 0 and auto.stats.nfe == tsit5.stats.nfe
    assert auto.stats.n_steps == tsit5.stats.n_steps
    assert torch.equal(auto.ys, tsit5.ys) and torch.equal(auto.ts, tsit5.ts)


def test_sector_boundary_of_tsit5():
    from sciml.solvers.ode.auto import sector_boundary
    from sciml.solvers.ode.tableau import TSIT5

    assert sector_boundary(TSIT5, 1.0) == pytest.approx(TSIT5.stability_size, rel=1e-10)  # the real axis
    r = sector_boundary()  # damping ratio >= 0.1: smallest at the sector's edge, 95.74°
    assert r == pytest.approx(2.7779, abs=1e-4)
    theta = math.pi / 2 + math.asin(0.1)
    assert abs(TSIT5.stability_function(r * complex(math.cos(theta), math.sin(theta)))) == pytest.approx(1.0)
    for deg in (100, 120, 135, 150, 170):  # no direction of the sector has a smaller boundary
        z = complex(math.cos(math.radians(deg)), math.sin(math.radians(deg)))
        assert abs(TSIT5.stability_function(0.999 * r * z)) < 1
    with pytest.raises(ValueError, match="min_damping"):
        sector_boundary(TSIT5, 0.0)
