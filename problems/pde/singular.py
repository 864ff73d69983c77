"""Singular ODEs of gravitation: transonic accretion onto a Schwarzschild black hole, and the aether of a
Lorentz-violating black hole.

Cayuso, Herrero-Valea, Barausse, *Deep Learning solutions to singular ordinary differential equations: from
special functions to spherical accretion* (arXiv:2409.20150) solve, besides Legendre and hypergeometric,
the spherical accretion of a polytropic perfect fluid onto a Schwarzschild black hole (Michel's relativistic
Bondi flow). The flow is transonic: it passes through a critical (sonic) point where the ODE for the
velocity becomes ``0/0``. This module holds the problem definition; the reference is computed by
:mod:`sciml.solvers.ode.singular` from the two exact invariants of the flow.

Units ``G = c = 1``; the black-hole mass ``M`` sets the length scale. The fields are the rest-mass density
``ρ`` and the speed ``v`` of the inflow measured by a static observer (``u^r = −γ v √(1 − 2M/r)``, the
paper's variables), both in units of their critical values (``rho = ρ/ρ_c``, ``v = v/v_c``) so the two
fields are O(1) and the relative error weighs them alike.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import ClassVar

import torch
from sciml.problems.pde.conditions import Condition, Dirichlet
from sciml.problems.pde.domain import Box
from sciml.problems.pde.problem import HardConstraint, PDEProblem

__all__ = [
    "TransonicReference",
    "MichelCriticalPoint",
    "michel_critical_point",
    "accretion",
    "KhrononReference",
    "SoundHorizonRegularity",
    "khronon",
    "khronon_horizon_jet",
    "khronon_horizon_guess",
]

SINGULAR_PAPER = (
    "Cayuso, Herrero-Valea, Barausse, Deep Learning solutions to singular ordinary differential equations: "
    "from special functions to spherical accretion, arXiv:2409.20150"
)


@dataclass(frozen=True)
class TransonicReference:
    """Recipe: the transonic accretion profile from its two exact invariants (mass flux and Bernoulli).

    ``sciml.solvers.ode.singular`` solves the Bernoulli invariant for ``v`` at every grid point (bracketed
    root on the subsonic branch outside the critical radius, the supersonic one inside).

    Args:
        n_points: grid points over the radial interval (both ends included).

    Attributes:
        field_labels: display labels of the fields ``rho`` and ``v`` (plots, ``fields.h5``).
        normalisation: what the fields' values are (recorded in ``fields.h5``).
    """

    n_points: int = 2001
    field_labels: ClassVar[tuple[str, str]] = ("ρ/ρ_c", "v/v_c")
    normalisation: ClassVar[str] = (
        "rho = ρ/ρ_c and v = v/v_c: density and speed in units of their values at the critical (sonic) point "
        "(params rho_c and v_c)"
    )


@dataclass(frozen=True)
class MichelCriticalPoint:
    """The sonic point of Michel's flow and its two invariants, in closed form.

    Attributes:
        r: critical radius ``r_c = M / (2 u_c²)``.
        u: ``|u^r|`` there, ``u_c² = M / (2 r_c)``.
        v: static-observer speed there, equal to the sound speed: ``v_c² = a_c² = u_c² / (1 − 3 u_c²)``.
        rho: rest-mass density there.
        mass_flux: ``ρ u r²`` (constant along the flow).
        bernoulli: ``h √(1 − 2M/r + u²) = h γ √(1 − 2M/r)`` (constant along the flow).
        slope_v, slope_rho: ``dv/dr`` and ``dρ/dr`` at ``r_c`` on the accretion branch (L'Hôpital: the
            negative root of the quadratic that the ``0/0`` limit gives).
    """

    r: float
    u: float
    v: float
    rho: float
    mass_flux: float
    bernoulli: float
    slope_v: float
    slope_rho: float


def _sound_speed2(rho, K: float, gamma: float):
    """``a² = Γ p / (ρ h)`` for ``p = K ρ^Γ``, ``h = 1 + Γ p / ((Γ − 1) ρ)``."""
    q = gamma * K * rho ** (gamma - 1)
    return q / (1 + q / (gamma - 1))


def michel_critical_point(K: float, gamma: float, mass: float, rho_c: float) -> MichelCriticalPoint:
    """The critical point of a polytrope ``p = K ρ^Γ`` with critical density ``rho_c`` (closed form).

    At the sonic point ``u_c² = M/(2 r_c)`` and ``a_c² = u_c²/(1 − 3 u_c²)`` (Michel 1972), so
    ``u_c² = a_c²/(1 + 3 a_c²)`` with ``a_c`` the sound speed at ``rho_c``. The slope there follows from
    differentiating numerator and denominator of ``dv/dr = D/N`` (both vanish).

    Raises:
        ValueError: non-positive ``K``, ``mass`` or ``rho_c``, or ``gamma`` outside (1, 5/3].
    """
    if not (K > 0 and mass > 0 and rho_c > 0):
        raise ValueError(f"`K`, `mass` and `rho_c` must be positive, got {K}, {mass}, {rho_c}")
    if not (1 < gamma <= 5 / 3):
        raise ValueError(f"`gamma` must lie in (1, 5/3], got {gamma}")
    a2 = _sound_speed2(rho_c, K, gamma)
    u2 = a2 / (1 + 3 * a2)
    r_c = mass / (2 * u2)
    u_c, v_c = math.sqrt(u2), math.sqrt(a2)
    h = 1 + gamma / (gamma - 1) * K * rho_c ** (gamma - 1)
    # L'Hôpital at r_c: N v' = D with N = r(r−2M)(v² − a²), D = v(1−v²)(a²(2r−3M) − M); d(a²)/dρ =
    # a²(Γ − 1 − a²)/ρ and ρ'/ρ = −v'/(v(1−v²)) − (2r−3M)/(r(r−2M)) (mass flux) give a quadratic in v'
    w = v_c * (1 - a2)
    b = a2 * (gamma - 1 - a2)
    g = (2 * r_c - 3 * mass) / (r_c * (r_c - 2 * mass))
    rr = r_c * (r_c - 2 * mass)
    qa = rr * (2 * v_c + b / w)
    qb = rr * b * g + b * (2 * r_c - 3 * mass)
    qc = w * (b * g * (2 * r_c - 3 * mass) - 2 * a2)
    disc = math.sqrt(qb * qb - 4 * qa * qc)
    slope_v = (-qb - disc) / (2 * qa)  # the accretion branch: the flow speeds up inwards (v' < 0)
    slope_rho = rho_c * (-slope_v / w - g)
    return MichelCriticalPoint(
        r=r_c,
        u=u_c,
        v=v_c,
        rho=rho_c,
        mass_flux=rho_c * u_c * r_c**2,
        bernoulli=h * math.sqrt(1 - 3 * u2),
        slope_v=slope_v,
        slope_rho=slope_rho,
    )


def accretion(
    K: float = 0.1,
    gamma: float = 4 / 3,
    mass: float = 1.0,
    rho_c: float = 1e-3,
    r_min: float = 20.0,
    r_max: float = 140.5,
) -> PDEProblem:
    """Michel's transonic accretion of a polytrope onto a Schwarzschild black hole, on ``[r_min, r_max]``.

    Defaults are the paper's: ``K = 0.1``, ``Γ = 4/3``, ``M = 1`` on ``r ∈ [20, 140.5]``; the critical
    density ``ρ_c = 10⁻³`` puts the sonic point at ``r_c = 40.5`` (``v_c² = 1/78``) and gives the paper's
    outer values ``ρ(140.5) = 3.24197·10⁻⁴``, ``v(140.5) = 0.0286708``.

    Equations (``f = 1 − 2M/r``, ``a²`` the sound speed squared), both free of denominators:

    * mass flux ``(ρ γ v √f r²)' = 0``:
      ``f [(1 − v²) r ρ' v + r ρ v'] + (1 − v²)(2 − 3M/r) ρ v = 0``;
    * momentum, in the regularised form that the critical point makes ``0/0``:
      ``f (v² − a²) r v' − v (1 − v²)(a² (2 − 3M/r) − M/r) = 0`` — the coefficient of ``v'`` and the
      right-hand side vanish together only at ``r_c``; a smooth solution crossing ``v = a`` must do so there.

    Ansatz (the critical-point condition built in):
    ``ρ/ρ_c = 1 + s_ρ (r − r_c) + ((r − r_c)/L)² N_ρ(r)`` with ``L = r_max − r_min``, and likewise for
    ``v/v_c``, with the L'Hôpital slopes ``s`` of the accretion branch. In the regularised form a kink at
    ``r_c`` costs no residual (``N = D = 0`` there), so the two branches through the X-point (accretion and
    wind) could otherwise be glued together; fixing value and slope at ``r_c`` leaves exactly one smooth
    solution, and no boundary condition is needed. The critical radius is therefore exact by construction;
    what the network learns is the profile on both sides of it. The problem's coefficients are tied to the
    ansatz: make variants with ``accretion(K=..., rho_c=...)`` rather than ``replace(params=...)``.

    Raises:
        ValueError: bad parameters, or ``r_c`` outside ``(r_min, r_max)``.
    """
    cp = michel_critical_point(K, gamma, mass, rho_c)
    if not (2 * mass < r_min < cp.r < r_max):
        raise ValueError(
            f"the critical radius r_c = {cp.r:.6g} must lie inside (r_min, r_max) = ({r_min}, {r_max}), "
            f"with r_min > 2M = {2 * mass}; change rho_c or the interval"
        )
    s_rho, s_v = cp.slope_rho / cp.rho, cp.slope_v / cp.v

    def residual(x, d, p):
        r = x[:, 0]
        m, vc = p["M"], p["v_c"]
        rho, vel = d["rho"], d["v"]
        v = vc * vel
        f = 1 - 2 * m / r
        a2 = _sound_speed2(p["rho_c"] * rho.abs(), p["K"], p["gamma"])  # |ρ|: a real power early on
        one = 1 - v**2
        mass_flux = f * (one * r * d["rho_r"] * vel + r * rho * d["v_r"]) + one * (2 - 3 * m / r) * rho * vel
        ac2 = vc**2
        momentum = f * (v**2 - a2) / ac2 * r * d["v_r"] - vel * one * (a2 * (2 - 3 * m / r) - m / r) / ac2
        return torch.stack([mass_flux, momentum], dim=1)

    def particular(x):
        dr = x[:, 0] - cp.r
        return torch.stack([1 + s_rho * dr, 1 + s_v * dr], dim=1)

    def factor(x):
        z = ((x[:, 0] - cp.r) / (r_max - r_min)) ** 2
        return torch.stack([z, z], dim=1)

    return PDEProblem(
        name="accretion",
        domain=Box(("r",), (float(r_min),), (float(r_max),)),
        fields=("rho", "v"),
        residual=residual,
        params={"K": float(K), "gamma": float(gamma), "M": float(mass), "rho_c": float(rho_c), "v_c": cp.v},
        reference=TransonicReference(),
        constraint=HardConstraint(particular=particular, factor=factor),
        n_equations=2,
        description=(
            f"Michel accretion onto a Schwarzschild black hole, polytrope K = {K:g}, Γ = {gamma:.4g}: "
            f"transonic through r_c = {cp.r:.6g}"
        ),
        citation=SINGULAR_PAPER,
    )


# ------------------------------------------------------------------------------- Lorentz-violating black hole
@dataclass(frozen=True)
class KhrononReference:
    """Recipe: the regular khronon profile by shooting from both sides and matching (``solvers.ode``).

    Args:
        n_points: grid points over ``[0, x_max]`` (both ends included).
    """

    n_points: int = 2001


def _khronon_terms(s: torch.Tensor, y: torch.Tensor, yx: torch.Tensor, c2):
    """``(P₁, P₂, bracket)`` of the khronon equation ``P₁ P₂ x² y'' + c² y · bracket = 0``."""
    p2 = y**2 - 1 + s
    p1 = p2 - c2 * y**2
    bracket = -p2 * s**2 * yx**2 + s**2 * (y * yx + 0.5) ** 2 + 2 * p2**2
    return p1, p2, bracket


@dataclass(frozen=True, kw_only=True)
class SoundHorizonRegularity(Condition):
    """Regularity of the khronon at its sound horizon: ``bracket = 0`` where ``P₁ = 0``.

    The sound horizon is located on the current network each iteration: ``P₁(x, y(x))`` is evaluated on
    a fixed uniform grid of ``n_grid`` points, its first sign change from ``−`` (infinity side) to ``+`` is
    found, and the bracket is interpolated to the root of the linear interpolant of ``P₁`` (error
    ``O(h²)``; ``x_s`` is not taken from the reference). The residual is that interpolated bracket. If
    ``P₁`` does not change sign (a smooth neighbour that never reaches a sound horizon), the residual is
    ``max P₁`` instead, which pushes the profile until it does. Gradients flow through ``y`` and ``y'`` at
    the two bracketing grid points and through the interpolation weight (the root of the linear
    interpolant moves with the network), so the loss and its gradient agree within a grid cell.

    With ``beyond=True`` the residual has a second entry, ``max(−P₁)`` over the grid points past that
    root (0 when ``P₁ ≥ 0`` there): a second sign change of ``P₁`` would be a second sound horizon, where
    the equation is singular again and the one free constant is already spent, so the regular solution
    has none; a profile that crosses ``P₁ = 0`` again (``y`` below ``−√((x − 1)/(c² − 1))``) is pushed back.

    Args:
        n_grid: grid points over the domain (the trainer's point count is ignored).
        beyond: also penalise ``P₁ < 0`` past the sound horizon.
    """

    name: str = "regularity"
    n_grid: int = 401
    beyond: bool = False

    def __post_init__(self) -> None:
        if not (
            isinstance(self.n_grid, numbers.Integral)
            and not isinstance(self.n_grid, bool)
            and self.n_grid >= 3
        ):
            raise ValueError(f"`n_grid` must be an integer >= 3, got {self.n_grid!r}")

    def sample(self, domain, n, generator, dtype, *, device=None) -> torch.Tensor:
        """The fixed grid (``n`` and ``generator`` are ignored: the root search needs ordered points)."""
        lo, hi = float(domain.lower[0]), float(domain.upper[0])
        return torch.linspace(lo, hi, int(self.n_grid), dtype=dtype, device=device)[:, None]

    def residual(self, domain, x, d, params) -> torch.Tensor:
        """The interpolated bracket at the first ``−→+`` sign change of ``P₁`` (shape ``(1,)``), or
        ``max P₁`` when there is none."""
        s = x[:, 0]
        order = torch.argsort(s.detach())
        s, y, yx = s[order], d[self.key(d.fields)][order], d[self.key(d.fields, "x")][order]
        p1, _, bracket = _khronon_terms(s, y, yx, params["c"] ** 2)
        p1d = p1.detach()
        up = torch.nonzero((p1d[:-1] < 0) & (p1d[1:] >= 0)).flatten()
        if up.numel() == 0:
            return p1.max().reshape(1)
        i = int(up[0])
        # where the linear interpolant of P₁ vanishes; t keeps its gradient: with t detached the gradient is
        # not that of the loss, and L-BFGS's line search stalls (measured: PINN 9.6e-3 -> 4.5e-3 with it)
        t = p1[i] / (p1[i] - p1[i + 1])
        out = ((1 - t) * bracket[i] + t * bracket[i + 1]).reshape(1)
        if self.beyond:
            out = torch.cat([out, torch.relu(-p1[i + 1 :]).max().reshape(1)])
        return out


def _is_real(value) -> bool:
    """A real number: Python or numpy (``numbers.Real``), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_speed(value, name: str) -> None:
    """Refuse a khronon speed that is not a finite real number > 1 (a numpy scalar is accepted)."""
    if not (_is_real(value) and math.isfinite(value) and value > 1):
        raise ValueError(
            f"`{name}` (the khronon's spin-0 speed c) must be a finite number > 1, got {value!r}"
        )


def _flat(x: torch.Tensor) -> torch.Tensor:
    """``√(1 − x)`` to third order: every asymptotically flat aether has ``y² = 1 − x + O(x⁴)``."""
    s = x[:, 0]
    return 1 - s / 2 - s**2 / 8 - s**3 / 16


def khronon_horizon_jet(xs, c: float):
    """``(y, y', y'')`` of the regular khronon at its sound horizon ``xs`` (floats or tensors).

    At ``P₁ = 0``: ``y² = (xs − 1)/(c² − 1)``; ``y'`` is the root of the bracket (a quadratic,
    ``x²(1 − x) y'² + x² y y' + x²/4 + 2P₂² = 0``) that continues the flow inwards; ``y''`` follows from
    differentiating the equation once (L'Hôpital: both terms vanish at ``xs``). ``xs`` must exceed 1 (the
    sound horizon lies inside the Killing horizon) and ``c`` must exceed 1.

    Raises:
        ValueError: ``c`` not a finite real number > 1, or a number ``xs`` that is not a finite real > 1
            (a tensor ``xs`` is not checked, so that the check costs no device synchronisation inside a
            training step: :func:`khronon`'s ansatz keeps ``xs = 1 + exp(θ) > 1`` by construction; a tensor
            entry <= 1 gives NaN).
    """
    _check_speed(c, "c")
    if not isinstance(xs, torch.Tensor) and not (_is_real(xs) and math.isfinite(xs) and xs > 1):
        raise ValueError(
            f"`xs` (the sound horizon x_s = r_s/r) must be a finite number > 1, inside the Killing horizon "
            f"x = 1, got {xs!r}"
        )
    c2 = c * c
    y = ((xs - 1) / (c2 - 1)) ** 0.5
    x = xs
    p2 = y * y - 1 + x
    qa, qb, qc = x * x * (1 - x), x * x * y, x * x / 4 + 2 * p2 * p2
    p = (-qb + (qb * qb - 4 * qa * qc) ** 0.5) / (2 * qa)
    n_p = -2 * p2 * x * x * p + 2 * x * x * y * (y * p + 0.5)
    n_x = -x * x * p * p - 2 * p2 * x * p * p + 2 * x * (y * p + 0.5) ** 2 + 4 * p2
    n_y = -2 * y * x * x * p * p + 2 * x * x * p * (y * p + 0.5) + 8 * p2 * y
    dp1 = 2 * y * p * (1 - c2) + 1
    q = -c2 * y * (n_x + n_y * p) / (dp1 * p2 * x * x + c2 * y * n_p)
    return y, p, q


def khronon_horizon_guess(c: float) -> float:
    """Where ``P₁`` of the ``c → ∞`` solution ``y = (1 − 3x/4)√(1 + x/2 + 3x²/16)`` vanishes at speed ``c``.

    A start for the trainable sound horizon of :func:`khronon` (``ansatz="horizon"``) from the closed form
    alone (1.128 for c = 2; the shooting reference has 1.13598). Bisection on ``(1, 4/3)``, where
    ``(x − 1)/(c² − 1) − y_∞(x)²`` goes from negative to positive.

    Raises:
        ValueError: ``c`` not a finite real number > 1 (for ``c <= 1`` there is no sound horizon inside the
            Killing horizon).
    """
    _check_speed(c, "c")
    lo, hi = 1.0, 4 / 3
    for _ in range(60):
        x = (lo + hi) / 2
        y2 = (1 - 3 * x / 4) ** 2 * (1 + x / 2 + 3 * x * x / 16)
        lo, hi = (x, hi) if (x - 1) / (c * c - 1) < y2 else (lo, x)
    return (lo + hi) / 2


def _horizon_position(theta) -> torch.Tensor:
    """The trainable sound horizon ``x_s = 1 + exp(θ)``: above the Killing horizon ``x = 1`` for every θ."""
    return 1 + torch.exp(theta["horizon"])


def _horizon_ansatz(c: float, x_max: float):
    """``particular`` and ``factor`` of the sound-horizon ansatz of :func:`khronon`."""

    def particular(x, theta):
        s, xs = x[:, 0], _horizon_position(theta)
        ys, ps, qs = khronon_horizon_jet(xs, c)
        # flat(x) + x⁴ (a + b d + e d²), d = x − x_s: value, slope and curvature of the jet at x_s
        f0 = 1 - xs / 2 - xs**2 / 8 - xs**3 / 16
        f1 = -0.5 - xs / 4 - 3 * xs**2 / 16
        f2 = -0.25 - 3 * xs / 8
        a = (ys - f0) / xs**4
        b = (ps - f1 - 4 * xs**3 * a) / xs**4
        e = (qs - f2 - 12 * xs**2 * a - 8 * xs**3 * b) / (2 * xs**4)
        d = s - xs
        return _flat(x) + s**4 * (a + b * d + e * d**2)

    def factor(x, theta):
        s = x[:, 0]
        return (s / x_max) ** 4 * ((s - _horizon_position(theta)) / x_max) ** 3

    return particular, factor


#: ε of the khronon residual's first scale ``x² (x² + ε)²`` (see :func:`khronon`)
_KHRONON_EPS = 0.01
#: δ of the khronon residual's second scale ``c² (P₂² + δ² x⁸)`` (see :func:`khronon`): about 1 % of ``C²``
_KHRONON_DELTA = 1e-3
#: absolute floor of that scale: ``P₂ = y² − 1 + x ≈ C² x⁴`` keeps no digit in float64 for ``x ≲ 10⁻⁴``
_KHRONON_FLOOR = 1e-10


def khronon(
    speed: float = 2.0, x_max: float = 2.0, residual_scale: str | None = None, ansatz: str = "horizon"
) -> PDEProblem:
    """The aether of a Lorentz-violating (khronometric / Hořava) black hole, in the decoupling limit.

    The paper's Lorentz-violating case: the khronon (the hypersurface-orthogonal aether ``u^μ``) on a
    Schwarzschild background, static and spherically symmetric (Blas & Sibiryakov 2011). With
    ``x = r_s/r ∈ [0, x_max]`` (``x = 0`` is spatial infinity, ``x = 1`` the Killing horizon) and
    ``y = −u_t`` (so ``P₂ = y² − 1 + x = (u^r)²``), its equation is

        ``P₁ P₂ x² y'' + c² y (−P₂ x² y'² + x² (y y' + 1/2)² + 2 P₂²) = 0``,  ``P₁ = P₂ − c² y²``,

    ``c`` the speed of the khronon's spin-0 mode (the paper's code solves it for c in 0.2 … 10, c = 2 last).
    The coefficient of ``y''`` vanishes at infinity (``P₂ ~ x⁴``) and at the spin-0 ("sound") horizon
    ``P₁ = 0`` inside the Killing horizon (for c > 1); there the equation is regular only if the bracket
    vanishes too, which fixes the one free constant of the asymptotically flat solutions
    (``u^r ≈ −C x²``). Asymptotic flatness (``y² = 1 − x + C² x⁴ + …``) is built into the ansatz
    ``y = 1 − x/2 − x²/8 − x³/16 + (x/x_max)⁴ N(x)``: with only ``y(0) = 1`` (the paper's code) the residual,
    weighted by ``x² P₂`` near infinity, also admits solutions with ``u^r`` falling off more slowly, and a
    network converges to one of them. Even so the problem is not closed: solutions with another ``C`` either
    stay away from the sound horizon (``P₁ < 0`` throughout, smooth) or are singular there only in a thin
    layer that a mean-square residual hardly sees, and a network trained on this residual converges to a
    smooth neighbour of the reference about 3 % away. Selecting the regular solution needs more than the
    equation and ``y(0) = 1``, so the problem carries :class:`SoundHorizonRegularity`: the bracket must
    vanish where the network's own ``P₁`` does (located each iteration, not taken from the reference).
    For ``c → ∞`` the
    solution is the maximal foliation ``y = (1 − 3x/4) √(1 + x/2 + 3x²/16)``, with the universal horizon
    at ``x = 4/3``. The residual is the polynomial form above divided by ``c² x² (x² + ε)²``, ε = 0.01:
    near infinity the coefficient of ``y''`` is ``P₁ P₂ x²/c² ≈ −C² x⁶``, so the polynomial form weighs an
    error in ``y''`` at ``x = 0.3`` by ~10⁻⁴ and a mean-square loss of 10⁻⁸ leaves ``C`` wrong by
    percents; divided by ``x⁶`` (for ``x ≫ √ε``) the residual is the equation solved for ``y''`` up to
    an O(1) factor, and near ``x = 0`` it still vanishes like ``x⁴/ε²``.

    ``residual_scale="radial"`` divides by ``c² (P₂² + δ² x⁸)`` instead, δ = 10⁻³. The reason is the
    *static aether* ``y² = 1 − x`` (``P₂ = (u^r)² ≡ 0``): an exact solution for ``x < 1``, asymptotically
    flat, singular only at the Killing horizon (``u^v = 1/(y + √P₂)`` diverges there), and a degenerate
    one: the polynomial form is quadratic in ``P₂`` near it (``P₁ P₂`` and ``y · bracket ≈ c² y x² P₂'²/4``),
    so a profile with ``P₂ ≈ 0`` over the exterior and a steep turn before ``x = 1`` costs almost nothing
    and a network started near ``P₂ = 0`` (a PIG, whose output starts near 0) stays there. Divided by
    ``P₂²`` the equation reads (with ``P₁ = P₂ − c² y²`` and ``(y²)'' = P₂''``)
    ``x² y''/c² − y x² P₂''/(2 P₂) + y x² (P₂'/P₂)²/4 + 2y``: it depends on ``P₂`` only through the
    logarithmic derivatives, so scaling ``P₂ → ε P₂`` does not make it small, and ``P₂ → 0`` is no longer
    a cheap limit. It vanishes on the same solutions with ``u^r ≠ 0`` (the regular one has ``P₂ > 0`` on
    ``(0, x_max]``); near infinity (``P₂ ≈ C² x⁴``) it is finite, and δ keeps it finite where a network's
    ``P₂`` crosses 0 (on the reference ``δ² x⁸ ≤ 10⁻⁴ P₂²``: the floor hardly changes the scale). Measured
    (default preset, seeds 0 and 1): it moves the PIG off the static branch (1.04 → 0.25, ``P₂`` right
    outside the Killing horizon) but not to the regular solution inside the sound horizon, and the PINN,
    1e-5 with the default scale, ends at 0.36 on seed 0 with it; not used with the flat ansatz.

    ``ansatz="horizon"`` (the default) makes the sound horizon a trainable scalar ``x_s = 1 + exp(θ)`` (start:
    :func:`khronon_horizon_guess`) and builds its L'Hôpital jet (:func:`khronon_horizon_jet`: value, slope,
    curvature) into ``y = flat(x) + x⁴ (a + b d + e d²) + (x/x_max)⁴ (d/x_max)³ N(x)``, ``d = x − x_s``, so
    ``P₁ = 0`` and the bracket vanishes at ``x_s`` for every θ; the regularity condition then also penalises
    ``P₁ < 0`` past ``x_s`` (``SoundHorizonRegularity(beyond=True)``). ``residual_scale=None`` picks the
    radial scale with this ansatz and the ``"infinity"`` one with ``ansatz="flat"`` (the earlier default,
    which the PINN learns and the PIG does not). Measured (README, default preset with 4000 L-BFGS
    iterations, seeds 0 and 1): both models reach the regular solution to better than 1e-3.

    Raises:
        ValueError: ``speed`` not above 1 (the sound horizon must lie inside the Killing horizon),
            ``x_max`` not beyond it, or an unknown ``residual_scale`` or ``ansatz``.
    """
    _check_speed(speed, "speed")
    if not x_max > 4 / 3:
        raise ValueError(f"`x_max` must exceed 4/3 so the interval holds the sound horizon, got {x_max!r}")
    if residual_scale is None:
        residual_scale = "radial" if ansatz == "horizon" else "infinity"
    if residual_scale not in ("infinity", "radial"):
        raise ValueError(f"`residual_scale` must be 'infinity' or 'radial', got {residual_scale!r}")
    if ansatz not in ("flat", "horizon"):
        raise ValueError(f"`ansatz` must be 'flat' or 'horizon', got {ansatz!r}")

    def residual(x, d, p):
        s, y = x[:, 0], d["y"]
        c2 = p["c"] ** 2
        p1, p2, bracket = _khronon_terms(s, y, d["y_x"], c2)
        poly = p1 * p2 * s**2 * d["y_xx"] / c2 + y * bracket
        if residual_scale == "radial":
            return poly / (p2**2 + (_KHRONON_DELTA * s**4) ** 2 + _KHRONON_FLOOR**2)
        return poly / (s**2 * (s**2 + _KHRONON_EPS) ** 2)

    if ansatz == "horizon":
        particular, factor = _horizon_ansatz(float(speed), float(x_max))
        start = {"horizon": math.log(khronon_horizon_guess(float(speed)) - 1)}
        constraint = HardConstraint(particular, factor, ("dirichlet",), parameters=start)
    else:
        constraint = HardConstraint(_flat, lambda x: (x[:, 0] / x_max) ** 4, enforces=("dirichlet",))
    return PDEProblem(
        name="khronon",
        domain=Box(("x",), (0.0,), (float(x_max),)),
        fields=("y",),
        residual=residual,
        params={"c": float(speed)},
        reference=KhrononReference(),
        conditions=(Dirichlet(value=1.0, on=("x-",)), SoundHorizonRegularity(beyond=ansatz == "horizon")),
        constraint=constraint,
        description=f"khronon of a Lorentz-violating black hole (decoupling limit), spin-0 speed {speed:g}",
        citation=SINGULAR_PAPER,
    )
