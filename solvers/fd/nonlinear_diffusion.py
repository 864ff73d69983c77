"""Nonlinear (porous-medium type) diffusion ``u_t = D ∇·(u^m ∇u)``: finite differences, method of lines.

Since ``D ∇·(u^m ∇u) = Δ Φ(u)`` with ``Φ(u) = D u^{m+1} / (m+1)`` (m a non-negative integer), the
semi-discrete system on the interior nodes of a vertex-centred grid is

    du/dt = Δ_h Φ(u),

with ``Δ_h`` the 3/5/7-point Laplacian in 1/2/3-D; the boundary nodes keep their initial values (Dirichlet
data constant in time). The conservative form keeps the scheme second order in space where the solution
is smooth (tested against the heat equation, m = 0, and by self-convergence for m = 1 with data bounded
away from zero; where ``u → 0`` the equation degenerates and fronts or ``√distance`` wall layers lower the
order locally). Time integration is scipy's DOP853 at a tight tolerance, so the time error stays far
below the spatial one (the step is limited by stability, ``Δt ≲ h² / (2d max Φ'(u))``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp
from tqdm.auto import tqdm

__all__ = ["solve_nonlinear_diffusion"]


def solve_nonlinear_diffusion(
    u0: np.ndarray,
    lower: tuple[float, ...],
    upper: tuple[float, ...],
    t_eval: np.ndarray,
    *,
    coefficient: float,
    exponent: int = 1,
    rtol: float = 1e-8,
    atol: float | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Solve ``u_t = D ∇·(u^m ∇u)`` from node values ``u0``, the boundary nodes held at their values.

    Args:
        u0: initial node values on a vertex-centred grid including the boundary nodes, shape
            ``(n_0 + 1, ..., n_{d-1} + 1)`` for ``n_i`` intervals (1-, 2- or 3-D). The boundary values stay
            fixed (Dirichlet).
        lower, upper: the box.
        t_eval: increasing output times, starting at the initial time.
        coefficient: ``D > 0``.
        exponent: ``m``, a non-negative integer.
        rtol, atol: tolerances of the DOP853 time integration (``atol`` default ``rtol · max|u0| · 1e-3``).
        progress: show a tqdm bar over the output times.

    Returns:
        Node values at ``t_eval``, shape ``(len(t_eval), *u0.shape)``.

    Raises:
        ValueError: fewer than 2 intervals per side, a non-finite ``u0``, bad times or coefficients.
        RuntimeError: the time integration failed (the message says why).
        FloatingPointError: an accepted step is not finite.
    """
    u0 = np.asarray(u0, dtype=np.float64)
    d = u0.ndim
    if not 1 <= d <= 3 or min(u0.shape) < 3:
        raise ValueError(
            f"`u0` must be node values of a 1/2/3-D grid with ≥ 2 intervals per side, got {u0.shape}"
        )
    if not np.isfinite(u0).all():
        raise ValueError("`u0` must be finite")
    if len(lower) != d or len(upper) != d:
        raise ValueError(f"`lower` and `upper` need {d} entries")
    if not (math.isfinite(coefficient) and coefficient > 0):
        raise ValueError(f"`coefficient` must be positive, got {coefficient}")
    if not (isinstance(exponent, (int, np.integer)) and exponent >= 0):
        raise ValueError(f"`exponent` must be a non-negative integer, got {exponent!r}")
    t_eval = np.asarray(t_eval, dtype=np.float64)
    if t_eval.ndim != 1 or t_eval.size < 1 or np.any(np.diff(t_eval) <= 0) or not np.isfinite(t_eval).all():
        raise ValueError("`t_eval` must be a non-empty increasing array of finite times")

    interior = tuple(n - 2 for n in u0.shape)
    inner = tuple(slice(1, -1) for _ in range(d))
    inv_h2 = [((n - 1) / (hi - lo)) ** 2 for n, lo, hi in zip(u0.shape, lower, upper)]
    m = int(exponent)
    scale = coefficient / (m + 1)
    work = u0.copy()  # full node array: boundary fixed, interior overwritten by the state

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        work[inner] = y.reshape(interior)
        phi = scale * work ** (m + 1)
        out = np.zeros(interior)
        centre = phi[inner]
        for axis in range(d):
            lo = tuple(slice(0, -2) if a == axis else slice(1, -1) for a in range(d))
            hi = tuple(slice(2, None) if a == axis else slice(1, -1) for a in range(d))
            out += (phi[lo] + phi[hi] - 2 * centre) * inv_h2[axis]
        return out.reshape(-1)

    y0 = u0[inner].reshape(-1)
    if atol is None:
        atol = rtol * max(float(np.abs(y0).max()), 1e-300) * 1e-3
    out = np.repeat(u0[None], t_eval.size, axis=0)
    y = y0
    bar = tqdm(total=t_eval.size - 1, disable=not progress, desc="nonlinear diffusion (FD)", leave=False)
    for i in range(1, t_eval.size):  # one solve per output interval keeps memory flat and shows progress
        # a trial step too long for this stiff system can overflow u^(m+1); DOP853 then rejects it (its error
        # norm is not < 1) and retries a shorter one, so those floating-point warnings are not the user's
        # concern; what is accepted is checked below
        with np.errstate(over="ignore", invalid="ignore"):
            sol = solve_ivp(rhs, (t_eval[i - 1], t_eval[i]), y, method="DOP853", rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"nonlinear diffusion solve failed at t = {sol.t[-1]:.4g}: {sol.message}")
        y = sol.y[:, -1]
        if not np.isfinite(y).all():
            raise FloatingPointError(
                f"nonlinear diffusion solve is not finite at t = {t_eval[i]:.4g}: lower `rtol` or refine "
                "the grid"
            )
        out[i][inner] = y.reshape(interior)
        bar.update(1)
    bar.close()
    return out
