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
from sciml.problems.pde.singular import MichelCriticalPoint, TransonicReference, michel_critical_point
from sciml.solvers.cache import cached_arrays
from scipy.optimize import brentq

__all__ = ["michel_profile", "michel_invariants", "sonic_radius", "transonic_reference"]

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
