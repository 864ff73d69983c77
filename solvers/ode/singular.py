"""References for the singular ODEs of gravitation (:mod:`sciml.problems.pde.singular`).

Michel's transonic accretion has two exact invariants, the mass flux ``ρ u r²`` and the Bernoulli constant
``h γ √(1 − 2M/r)``, both fixed by the closed-form critical point. Eliminating ``ρ`` with the mass flux leaves
one scalar equation for ``v`` at each radius; it has two roots (subsonic and supersonic) that merge at the
critical radius, where ``v = a``. The accretion solution is the subsonic root outside ``r_c`` and the
supersonic one inside. Each root is bracketed by the sonic speed at that radius (itself a bracketed root of
``v² = a²(ρ(v))``) and found by Brent's method to machine precision, so the invariants hold to rounding
along the whole reference — no integration error accumulates through the singular point.
"""

from __future__ import annotations

import math
import os

import numpy as np
from sciml.problems.pde.problem import PDEProblem
from sciml.problems.pde.singular import (
    MichelCriticalPoint,
    TransonicReference,
    khronon_horizon_jet,
    michel_critical_point,
)
from sciml.solvers.cache import cached_arrays
from scipy.optimize import brentq

__all__ = [
    "michel_profile",
    "michel_invariants",
    "sonic_radius",
    "transonic_reference",
    "khronon_shooting",
    "khronon_profile",
    "khronon_reference",
]

#: bump when the solver changes its results
VERSION = 1


def _a2(rho, K, gamma):
    q = gamma * K * rho ** (gamma - 1)
    return q / (1 + q / (gamma - 1))


def _enthalpy(rho, K, gamma):
    return 1 + gamma / (gamma - 1) * K * rho ** (gamma - 1)


def _rho_of_v(v, r, cp: MichelCriticalPoint, mass):
    u = v / math.sqrt(1 - v * v) * math.sqrt(1 - 2 * mass / r)
    return cp.mass_flux / (u * r * r)


def michel_profile(
    r: np.ndarray, K: float = 0.1, gamma: float = 4 / 3, mass: float = 1.0, rho_c: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Density ``ρ`` and static-observer speed ``v`` of the transonic accretion flow at radii ``r``.

    Args:
        r: radii ``> 2M``.
        K, gamma, mass, rho_c: the polytrope ``p = K ρ^Γ``, the black-hole mass, the critical density.

    Returns:
        ``(rho, v)`` arrays shaped like ``r``.

    Raises:
        ValueError: a radius at or inside the horizon.
    """
    r = np.asarray(r, dtype=np.float64)
    if np.any(r <= 2 * mass):
        raise ValueError(f"every radius must exceed the horizon 2M = {2 * mass}; got min {r.min()}")
    cp = michel_critical_point(K, gamma, mass, rho_c)
    rho = np.empty_like(r)
    v = np.empty_like(r)
    lo, hi = 1e-14, 1 - 1e-14
    for i, ri in np.ndenumerate(r):
        sqrt_f = math.sqrt(1 - 2 * mass / ri)

        def sonic(s, ri=ri):
            return s * s - _a2(_rho_of_v(s, ri, cp, mass), K, gamma)

        def bernoulli(s, ri=ri, sqrt_f=sqrt_f):
            rho_s = _rho_of_v(s, ri, cp, mass)
            return math.log(_enthalpy(rho_s, K, gamma) * sqrt_f / math.sqrt(1 - s * s) / cp.bernoulli)

        if abs(ri - cp.r) <= 1e-13 * cp.r:
            vi = cp.v
        else:
            vs = brentq(sonic, lo, hi, xtol=1e-300, rtol=1e-15, maxiter=500)
            bracket = (lo, vs) if ri > cp.r else (vs, hi)
            vi = brentq(bernoulli, *bracket, xtol=1e-300, rtol=1e-15, maxiter=500)
        v[i] = vi
        rho[i] = _rho_of_v(vi, ri, cp, mass)
    return rho, v


def michel_invariants(
    r: np.ndarray, rho: np.ndarray, v: np.ndarray, K: float, gamma: float, mass: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mass flux ``ρ u r²`` and Bernoulli constant ``h γ √(1 − 2M/r)`` along a profile (both constant)."""
    f = 1 - 2 * mass / r
    gam = 1 / np.sqrt(1 - v**2)
    return rho * gam * v * np.sqrt(f) * r**2, _enthalpy(rho, K, gamma) * gam * np.sqrt(f)


def sonic_radius(r: np.ndarray, rho: np.ndarray, v: np.ndarray, K: float, gamma: float) -> float:
    """Where ``v = a(ρ)`` along a profile (linear interpolation of ``v² − a²`` between grid points).

    Raises:
        ValueError: the profile never crosses the sound speed, or crosses it more than once.
    """
    g = v**2 - _a2(rho, K, gamma)
    idx = np.nonzero(np.sign(g[:-1]) * np.sign(g[1:]) <= 0)[0]
    idx = idx[g[idx] != g[idx + 1]] if idx.size > 1 else idx
    if idx.size != 1:
        raise ValueError(f"the profile crosses the sound speed {idx.size} times (expected once)")
    i = int(idx[0])
    if g[i] == g[i + 1]:
        return float(r[i])
    return float(r[i] - g[i] * (r[i + 1] - r[i]) / (g[i + 1] - g[i]))


def transonic_reference(problem: PDEProblem, recipe: TransonicReference, directory: str | os.PathLike | None):
    """The accretion reference on ``recipe.n_points`` radii of the problem's interval, cached.

    Returns:
        ``(axes, values)``: ``((r,),)`` and ``(n, 2)`` holding ``ρ/ρ_c`` and ``v/v_c``.
    """
    p = problem.params
    lo, hi = problem.domain.lower[0], problem.domain.upper[0]
    if not (isinstance(recipe.n_points, int) and recipe.n_points >= 2):
        raise ValueError(f"`n_points` must be an integer ≥ 2, got {recipe.n_points!r}")
    r = np.linspace(lo, hi, recipe.n_points)
    key = {
        "method": "michel-invariants-brentq",
        "version": VERSION,
        "K": p["K"],
        "gamma": p["gamma"],
        "M": p["M"],
        "rho_c": p["rho_c"],
        "interval": [lo, hi],
        "n_points": recipe.n_points,
    }

    def compute() -> dict[str, np.ndarray]:
        rho, v = michel_profile(r, p["K"], p["gamma"], p["M"], p["rho_c"])
        return {"r": r, "rho": rho, "v": v}

    arrays = cached_arrays(f"pde-{problem.name}", key, compute, directory=directory)
    cp = michel_critical_point(p["K"], p["gamma"], p["M"], p["rho_c"])
    values = np.stack([arrays["rho"] / cp.rho, arrays["v"] / cp.v], axis=1)
    return (np.asarray(arrays["r"]),), values


# ------------------------------------------------------------------------------- khronon (Lorentz violation)
#: start of the outer integration; the series below is exact to O(x^10) there
_X0 = 0.05
#: offset from the sound horizon where the inner integrations start (second-order Taylor jet: error O(δ³))
_DELTA = 1e-4
#: matching point of the two shooting integrations
_X_MATCH = 0.6
_TOL = dict(method="DOP853", rtol=1e-12, atol=1e-14)


def _khronon_series(x: float, C2: float, c: float) -> tuple[float, float]:
    """``W = y² − 1 + x = (u^r)²`` and ``W'`` near infinity: ``W = C² x⁴ − C² x⁶/(20c²) − C² x⁷/(18c²) + …``.

    The coefficients (to x⁹) follow from the equation order by order; C is the only free constant."""
    c2 = c * c
    a = (
        C2,
        0.0,
        -C2 / (20 * c2),
        -C2 / (18 * c2),
        3 * C2 * (50 * c2 * (8 * C2 - 1) + 1) / (2800 * c2 * c2),
        C2 * (360 * c2 * (8 * C2 - 1) + 17) / (7200 * c2 * c2),
    )
    w = sum(ak * x ** (4 + k) for k, ak in enumerate(a))
    wp = sum((4 + k) * ak * x ** (3 + k) for k, ak in enumerate(a))
    return w, wp


def _khronon_rhs_w(x, s, c):
    """The equation for ``W = y² − 1 + x`` (no cancellation in ``y² − 1 + x`` near infinity)."""
    w, p = s
    y2 = w + 1 - x
    c2 = c * c
    num = -w * w * x * x * (p - 1) ** 2 + c2 * y2 * y2 * x * x * p * p + 8 * c2 * y2 * y2 * w * w
    return [p, -num / (2 * (w - c2 * y2) * w * x * x * y2)]


def _khronon_rhs_y(x, s, c):
    y, p = s
    p2 = y * y - 1 + x
    p1 = p2 - c * c * y * y
    bracket = -p2 * x * x * p * p + x * x * (y * p + 0.5) ** 2 + 2 * p2 * p2
    return [p, -c * c * y * bracket / (p1 * p2 * x * x)]


def _khronon_jet(xs: float, c: float) -> tuple[float, float, float]:
    """``y, y', y''`` of the regular solution at the sound horizon ``xs`` (the problem's L'Hôpital jet)."""
    return tuple(float(v) for v in khronon_horizon_jet(float(xs), float(c)))


def _khronon_legs(C2: float, xs: float, c: float, x_max: float, dense: bool):
    from scipy.integrate import solve_ivp

    w, wp = _khronon_series(_X0, C2, c)
    outer = solve_ivp(_khronon_rhs_w, (_X0, _X_MATCH), [w, wp], args=(c,), dense_output=dense, **_TOL)
    y, p, q = _khronon_jet(xs, c)
    d = _DELTA
    left = [y - d * p + d * d / 2 * q, p - d * q]
    middle = solve_ivp(_khronon_rhs_y, (xs - d, _X_MATCH), left, args=(c,), dense_output=dense, **_TOL)
    inner = None
    if dense:
        right = [y + d * p + d * d / 2 * q, p + d * q]
        inner = solve_ivp(_khronon_rhs_y, (xs + d, x_max), right, args=(c,), dense_output=True, **_TOL)
    for leg in (outer, middle, inner):
        if leg is not None and leg.status != 0:
            raise FloatingPointError(f"khronon shooting (c = {c}): the integration failed: {leg.message}")
    return outer, middle, inner


def khronon_shooting(c: float, guess: tuple[float, float] | None = None) -> tuple[float, float]:
    """``(C², x_s)`` of the regular khronon solution: asymptotic constant and sound-horizon position.

    Two integrations — from near infinity (series in ``x`` with the free constant ``C``) and from the sound
    horizon ``x_s`` (regular Taylor jet) — must agree in ``y`` and ``y'`` at ``x = 0.6``; Powell's hybrid
    method solves the two matching conditions. Without a ``guess``, the solve continues from the ``c → ∞``
    solution (``C² = 27/256``, ``x_s = 4/3``) through decreasing speeds (from ``max(100, 2c)``).

    Raises:
        ValueError: ``c ≤ 1``.
        FloatingPointError: the matching did not converge.
    """
    from scipy.optimize import root

    if not c > 1:
        raise ValueError(f"the khronon speed must exceed 1, got {c}")

    def mismatch(z):
        outer, middle, _ = _khronon_legs(z[0], z[1], c, 2.0, dense=False)
        w, wp = outer.y[:, -1]
        ym = math.sqrt(w + 1 - _X_MATCH)
        return [middle.y[0, -1] - ym, middle.y[1, -1] - (wp - 1) / (2 * ym)]

    if guess is None:
        z = np.array([27 / 256, 4 / 3])
        for speed in np.geomspace(max(100.0, 2 * c), c, 6)[:-1] if c < 100 else ():
            z = np.array(khronon_shooting(float(speed), tuple(z)))
    else:
        z = np.asarray(guess, dtype=float)
    sol = root(mismatch, z, method="hybr", options={"xtol": 1e-14})
    if np.abs(mismatch(sol.x)).max() > 1e-9:
        raise FloatingPointError(f"khronon shooting (c = {c}) did not converge: {sol.message}")
    return float(sol.x[0]), float(sol.x[1])


def khronon_profile(x: np.ndarray, c: float) -> tuple[np.ndarray, float, float]:
    """The regular khronon profile ``y = −u_t`` at ``x = r_s/r`` (see :func:`khronon_shooting`).

    Returns:
        ``(y, C², x_s)``.
    """
    x = np.asarray(x, dtype=np.float64)
    C2, xs = khronon_shooting(c)
    x_max = max(float(x.max()), xs + 2 * _DELTA)
    outer, middle, inner = _khronon_legs(C2, xs, c, x_max, dense=True)
    y = np.empty_like(x)
    w, _ = _khronon_series(x, C2, c)
    near = x <= _X0
    y[near] = np.sqrt(w[near] + 1 - x[near])
    a = (x > _X0) & (x <= _X_MATCH)
    if a.any():
        y[a] = np.sqrt(outer.sol(x[a])[0] + 1 - x[a])
    b = (x > _X_MATCH) & (x < xs - _DELTA)
    if b.any():
        y[b] = middle.sol(x[b])[0]
    y0, p, q = _khronon_jet(xs, c)
    t = np.abs(x - xs) <= _DELTA
    y[t] = y0 + p * (x[t] - xs) + q / 2 * (x[t] - xs) ** 2
    e = x > xs + _DELTA
    if e.any():
        y[e] = inner.sol(x[e])[0]
    return y, C2, xs


def khronon_reference(problem: PDEProblem, recipe, directory: str | os.PathLike | None):
    """The khronon reference on ``recipe.n_points`` points of ``[0, x_max]``, cached.

    Returns:
        ``(axes, values)`` with values ``(n, 1)``.
    """
    lo, hi = problem.domain.lower[0], problem.domain.upper[0]
    if not (isinstance(recipe.n_points, int) and recipe.n_points >= 2):
        raise ValueError(f"`n_points` must be an integer ≥ 2, got {recipe.n_points!r}")
    x = np.linspace(lo, hi, recipe.n_points)
    c = float(problem.params["c"])
    key = {"method": "khronon-matching", "version": VERSION, "c": c, "interval": [lo, hi]}
    key["n_points"] = recipe.n_points

    def compute() -> dict[str, np.ndarray]:
        y, C2, xs = khronon_profile(x, c)
        return {"x": x, "y": y, "C2": np.array(C2), "xs": np.array(xs)}

    arrays = cached_arrays(f"pde-{problem.name}", key, compute, directory=directory)
    return (np.asarray(arrays["x"]),), np.asarray(arrays["y"])[:, None]
