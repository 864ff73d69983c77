"""The khronon reference inside the sound horizon (``x_s < x ≤ 2``), checked against an independent solution.

The independent solution does not use the reference's jet, integrator or matching: a Taylor series of the
regular solution at ``x_s`` to high order (computed here order by order from the equation), started at
``x_s ± δ`` for two offsets ``δ``, integrated by implicit Radau / LSODA (the reference uses an explicit
DOP853 from ``x_s + 10⁻⁴`` with a second-order jet), and an outer leg from ``x = 0.02`` (the reference starts
at 0.05) matched at ``x = 0.85`` (the reference matches at 0.6) to confirm ``(C², x_s)``.

Inside the sound horizon the regular solution stays strictly between the two branches of ``P₁ = 0``,
``|y| < √((x − 1)/(c² − 1))`` (crossing the second branch would need a second regularity condition), so for
``x > 4/3`` it is ``O(1/c)`` and oscillates (more often as c grows) instead of following the ``c → ∞`` closed
form ``(1 − 3x/4)√(1 + x/2 + 3x²/16)``, which is −0.83 at ``x = 2``. The closed form is the limit only
outside the universal horizon ``x = 4/3``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sciml.solvers.ode.singular import _khronon_rhs_w, _khronon_rhs_y, _khronon_series, khronon_profile
from scipy.integrate import solve_ivp

#: measured with the independent solution below (Radau, LSODA; δ = 1e-3 … 1e-2: all agree to 1e-11)
Y2 = {2.0: -0.3945764, 5.0: 0.1467920}
XS = {2.0: 1.1359815939, 5.0: 1.2419756404}


def _mul(a, b):
    return np.convolve(a, b)[: len(a)]


def _residual_coefficients(a, xs, c):
    """Taylor coefficients in ``t = x − x_s`` of ``P₁ P₂ x² y'' + c² y B`` for ``y = Σ a_k t^k``."""
    n = len(a)
    y = np.asarray(a, dtype=float)
    k = np.arange(n)
    yp = np.append(k[1:] * y[1:], 0.0)
    ypp = np.append(k[1:] * yp[1:], 0.0)
    x = np.zeros(n)
    x[0], x[1] = xs, 1.0
    x2, y2 = _mul(x, x), _mul(y, y)
    p2 = y2 + x
    p2[0] -= 1
    p1 = p2 - c * c * y2
    h = _mul(y, yp)
    h[0] += 0.5
    bracket = -_mul(_mul(p2, x2), _mul(yp, yp)) + _mul(x2, _mul(h, h)) + 2 * _mul(p2, p2)
    return _mul(_mul(p1, p2), _mul(x2, ypp)) + c * c * _mul(y, bracket)


def _taylor_jet(xs, c, order=16):
    """``a_0 … a_order`` of the regular solution at the sound horizon: ``P₁ = 0`` gives ``a_0``, the vanishing
    bracket (a quadratic) ``a_1``, and order ``t^n`` of the equation is linear in ``a_{n+1}``."""
    a0 = math.sqrt((xs - 1) / (c * c - 1))
    p2 = a0 * a0 - 1 + xs
    qa, qb, qc = xs * xs * (1 - xs), xs * xs * a0, xs * xs / 4 + 2 * p2 * p2
    a = [a0, (-qb + math.sqrt(qb * qb - 4 * qa * qc)) / (2 * qa)]
    for n in range(1, order):
        r0 = _residual_coefficients(a + [0.0, 0.0], xs, c)[n]
        r1 = _residual_coefficients(a + [1.0, 0.0], xs, c)[n]
        a.append(-r0 / (r1 - r0))
    return np.array(a)


def _jet_state(a, t):
    k = np.arange(len(a))
    return [np.polyval(a[::-1], t), np.polyval((k[1:] * a[1:])[::-1], t)]


def _independent_inner(xs, c, x, delta, method):
    a = _taylor_jet(xs, c)
    sol = solve_ivp(
        _khronon_rhs_y,
        (xs + delta, 2.0),
        _jet_state(a, delta),
        args=(c,),
        method=method,
        rtol=1e-12,
        atol=1e-14,
        dense_output=True,
    )
    assert sol.status == 0
    near = x <= xs + delta
    return np.where(near, _jet_state(a, x - xs)[0], sol.sol(np.maximum(x, xs + delta))[0])


def _matching_mismatch(C2, xs, c, xm=0.85, x0=0.02, delta=5e-3):
    """``(y, y')`` at ``xm`` from infinity (series with ``C²``) minus from the horizon (jet at ``xs``)."""
    w, wp = _khronon_series(x0, C2, c)
    out = solve_ivp(_khronon_rhs_w, (x0, xm), [w, wp], args=(c,), method="LSODA", rtol=1e-12, atol=1e-22)
    w, wp = out.y[:, -1]
    y_out = math.sqrt(w + 1 - xm)
    a = _taylor_jet(xs, c)
    mid = solve_ivp(
        _khronon_rhs_y,
        (xs - delta, xm),
        _jet_state(a, -delta),
        args=(c,),
        method="LSODA",
        rtol=1e-12,
        atol=1e-14,
    )
    return np.array([mid.y[0, -1] - y_out, mid.y[1, -1] - (wp - 1) / (2 * y_out)])


def test_taylor_jet_agrees_with_the_problem_jet_and_solves_the_equation():
    from sciml.problems.pde.singular import khronon_horizon_jet

    for c, xs in XS.items():
        a = _taylor_jet(xs, c)
        y, p, q = khronon_horizon_jet(xs, c)
        assert (a[0], a[1], 2 * a[2]) == pytest.approx((y, p, q), rel=1e-12, abs=1e-13)
        t = np.array([-1e-2, 1e-2])
        s = _jet_state(a, t)
        ypp = np.polyval((np.arange(2, len(a)) * np.arange(1, len(a) - 1) * a[2:])[::-1], t)
        lhs = np.array(_khronon_rhs_y(xs + t, s, c)[1])
        assert np.abs(ypp - lhs).max() < 1e-9 * np.abs(ypp).max()


@pytest.mark.parametrize("c", [2.0, 5.0])
def test_khronon_reference_inside_the_sound_horizon_matches_an_independent_solution(c):
    x = np.linspace(0.0, 2.0, 2001)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y, C2, xs = khronon_profile(x, c)
    assert xs == pytest.approx(XS[c], abs=1e-9)
    # (C², x_s) solve an independent matching (other start, other matching point, other integrator and jet)
    assert np.abs(_matching_mismatch(C2, xs, c)).max() < 1e-8
    inside = x >= xs
    runs = [_independent_inner(xs, c, x[inside], d, "LSODA") for d in (2e-3, 1e-2)]
    assert np.abs(runs[1] - runs[0]).max() < 1e-9  # independent of δ (Radau agrees too: too slow for a test)
    assert np.abs(y[inside] - runs[0]).max() < 1e-8  # measured 6e-12 (c = 2), 1.3e-11 (c = 5)
    assert y[-1] == pytest.approx(Y2[c], abs=1e-6)
    # no second singular point: P₁ > 0 strictly between x_s and 2 (the solution stays inside the wedge)
    beyond = x >= xs + 0.02
    p1 = y**2 - 1 + x - c * c * y**2
    assert p1[beyond].min() > 0.01
    assert np.all(np.abs(y[beyond]) < np.sqrt((x[beyond] - 1) / (c * c - 1)))
    # the c → ∞ closed form is close outside the sound horizon only; at x = 2 it is −0.83, outside the wedge
    flat = (1 - 0.75 * x) * np.sqrt(1 + x / 2 + 3 * x**2 / 16)
    assert np.abs(y - flat)[x <= 1].max() < 1e-2  # measured 7.4e-3 (c = 2), 1.7e-3 (c = 5)
    assert np.abs(y - flat)[x >= 4 / 3].max() > 0.4  # measured 0.43 (c = 2), 0.98 (c = 5)
