"""The PDE benchmark suite of the PIG paper and its companions.

Kang et al., *PIG: Physics-Informed Gaussians as Adaptive Parametric Mesh Representations* (ICLR 2025):
Helmholtz, Klein–Gordon, flow mixing, nonlinear diffusion, Allen–Cahn; plus viscous Burgers (Raissi et al.,
*Physics-informed neural networks*, JCP 2019), Poisson with an exact solution (shared with the grid
solvers), and two ODEs with regular singular points (Legendre, hypergeometric) solved with an ansatz that
builds in the regular values.

Every function here returns a :class:`~sciml.problems.pde.problem.PDEProblem`;
``sciml.problems.pde.get(name)`` looks
them up by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sciml.problems.pde.conditions import Dirichlet, InitialValue, InitialVelocity, Periodic
from sciml.problems.pde.domain import Box
from sciml.problems.pde.poisson import PoissonProblem
from sciml.problems.pde.problem import (
    HardConstraint,
    NonlinearDiffusionReference,
    PDEProblem,
    SemilinearReference,
)

__all__ = [
    "GaussianBumps",
    "helmholtz",
    "klein_gordon",
    "flow_mixing",
    "nonlinear_diffusion",
    "allen_cahn",
    "burgers",
    "poisson",
    "legendre",
    "hypergeometric",
]

PIG_PAPER = (
    "Kang et al., PIG: Physics-Informed Gaussians as Adaptive Parametric Mesh Representations, ICLR 2025"
)


def _xp(x):
    return torch if torch.is_tensor(x) else np


# --------------------------------------------------------------------------------------------- Helmholtz
def helmholtz(a1: float = 1.0, a2: float = 4.0, k: float = 1.0, name: str = "helmholtz") -> PDEProblem:
    """``u_xx + u_yy + k² u = q`` on [−1, 1]², exact ``u = sin(a1 π x) sin(a2 π y)``, Dirichlet from it.

    ``q`` is manufactured from the exact solution and uses the current ``k`` (so a replaced ``k`` keeps
    the solution exact). The residual is weighted by 1e-4 against the boundary term (the paper's choice).
    For integer ``a1, a2`` the walls are zero and the ansatz ``u = (1 − x²)(1 − y²) N`` builds that in.
    """
    w1, w2 = a1 * math.pi, a2 * math.pi

    def exact(x: torch.Tensor) -> torch.Tensor:
        return torch.sin(w1 * x[:, 0]) * torch.sin(w2 * x[:, 1])

    def residual(x, d, p):
        q = (p["k"] ** 2 - w1**2 - w2**2) * exact(x)
        return d["u_xx"] + d["u_yy"] + p["k"] ** 2 * d["u"] - q

    scale = w1**2 + w2**2
    constraint = None
    if float(a1).is_integer() and float(a2).is_integer():  # u = 0 on the walls: u = (1 − x²)(1 − y²) N
        constraint = HardConstraint(
            particular=lambda x: torch.zeros_like(x[:, 0]),
            factor=lambda x: (1 - x[:, 0] ** 2) * (1 - x[:, 1] ** 2),
            enforces=("dirichlet",),
        )
    return PDEProblem(
        name=name,
        domain=Box(("x", "y"), (-1.0, -1.0), (1.0, 1.0)),
        fields=("u",),
        residual=residual,
        conditions=(Dirichlet(value=exact),),
        params={"k": float(k)},
        exact=exact,
        constraint=constraint,
        test_shape=(201, 201),
        loss_weights={"residual": min(1e-4, 10.0 / scale**2)},
        description=f"Helmholtz 2D, u = sin({a1:g}πx) sin({a2:g}πy), k = {k:g}",
        citation=PIG_PAPER,
    )


# --------------------------------------------------------------------------------------------- Klein–Gordon
def klein_gordon(t_final: float = 10.0) -> PDEProblem:
    """``u_tt − Δu + u² = f`` on [−1, 1]² × [0, t_final], exact ``u = (x + y) cos 2t + x y sin 2t``.

    Initial value and velocity and the Dirichlet data come from the exact solution; ``f`` is manufactured
    (``(x+y)`` and ``xy`` are harmonic, so ``f = −4u + u²``).
    """

    def exact(x: torch.Tensor) -> torch.Tensor:
        X, Y, T = x[:, 0], x[:, 1], x[:, 2]
        return (X + Y) * torch.cos(2 * T) + X * Y * torch.sin(2 * T)

    def residual(x, d, p):
        e = exact(x)
        u = d["u"]
        return d["u_tt"] - d["u_xx"] - d["u_yy"] + u**2 - (e**2 - 4 * e)

    return PDEProblem(
        name="klein-gordon",
        domain=Box(("x", "y", "t"), (-1.0, -1.0, 0.0), (1.0, 1.0, float(t_final)), time="t"),
        fields=("u",),
        residual=residual,
        conditions=(
            InitialValue(value=lambda x: x[:, 0] + x[:, 1]),
            InitialVelocity(value=lambda x: 2 * x[:, 0] * x[:, 1]),
            Dirichlet(value=exact),
        ),
        exact=exact,
        test_shape=(41, 41, 101),
        description="Klein–Gordon (2+1)D, u = (x+y) cos 2t + xy sin 2t",
        citation=PIG_PAPER,
    )


# --------------------------------------------------------------------------------------------- flow mixing
V_MAX = 0.385


def _swirl(x: torch.Tensor) -> torch.Tensor:
    """``ω = v_t(r) / (v_max r)`` with ``v_t = sech²(r) tanh(r)``: smooth in r², finite (and differentiable)
    at r = 0, where a short series replaces the quotient."""
    r2 = x[:, 0] ** 2 + x[:, 1] ** 2
    small = r2 < 1e-8
    r = torch.sqrt(torch.where(small, torch.ones_like(r2), r2))  # the double-where keeps gradients finite
    quotient = torch.tanh(r) / r / torch.cosh(r) ** 2
    series = 1 - 4 * r2 / 3  # tanh(r)/r · sech²(r) = 1 − 4r²/3 + O(r⁴)
    return torch.where(small, series, quotient) / V_MAX


def flow_mixing() -> PDEProblem:
    """``u_t + a u_x + b u_y = 0`` on [−4, 4]² × [0, 4]: a tanh profile wound up by a vortex.

    ``(a, b) = ω(r) (−y, x)`` with ``ω = v_t / (v_max r)``, ``v_t = sech²(r) tanh(r)``, ``v_max = 0.385``;
    exact ``u = −tanh((y/2) cos ωt − (x/2) sin ωt)``.
    """

    def exact(x: torch.Tensor) -> torch.Tensor:
        w = _swirl(x) * x[:, 2]
        return -torch.tanh(0.5 * x[:, 1] * torch.cos(w) - 0.5 * x[:, 0] * torch.sin(w))

    def residual(x, d, p):
        omega = _swirl(x)
        return d["u_t"] - omega * x[:, 1] * d["u_x"] + omega * x[:, 0] * d["u_y"]

    return PDEProblem(
        name="flow-mixing",
        domain=Box(("x", "y", "t"), (-4.0, -4.0, 0.0), (4.0, 4.0, 4.0), time="t"),
        fields=("u",),
        residual=residual,
        conditions=(InitialValue(value=lambda x: -torch.tanh(0.5 * x[:, 1])), Dirichlet(value=exact)),
        exact=exact,
        test_shape=(41, 41, 21),
        description="flow mixing (2+1)D: u_t + a u_x + b u_y = 0, vortex with v_max = 0.385",
        citation=PIG_PAPER,
    )


# ------------------------------------------------------------------------------------- nonlinear diffusion
@dataclass(frozen=True)
class GaussianBumps:
    """``Σ_i a_i exp(−|x − c_i|² / (2 s_i²))`` over the first ``len(c_i)`` columns of the points."""

    centers: tuple[tuple[float, ...], ...] = ((-0.35, -0.3), (0.3, -0.25), (0.0, 0.35))
    widths: tuple[float, ...] = (0.15, 0.15, 0.15)
    amplitudes: tuple[float, ...] = (1.0, 0.8, 0.6)

    def __call__(self, x):
        xp = _xp(x)
        total = 0.0
        for c, s, a in zip(self.centers, self.widths, self.amplitudes):
            r2 = sum((x[..., i] - ci) ** 2 for i, ci in enumerate(c))
            total = total + a * xp.exp(-r2 / (2 * s * s))
        return total


def nonlinear_diffusion(bumps: GaussianBumps | None = None, coefficient: float = 0.05) -> PDEProblem:
    """``u_t = D (|∇u|² + u Δu) = D ∇·(u ∇u)`` on [−1, 1]² × [0, 1], zero Dirichlet, D = 0.05.

    The initial value is a sum of three Gaussian bumps (:class:`GaussianBumps`; below 1e-4 on the walls).
    Reference: a fine finite-difference solve (``sciml.solvers.fd``).
    """
    bumps = bumps or GaussianBumps()

    def residual(x, d, p):
        u = d["u"]
        return d["u_t"] - p["D"] * (d["u_x"] ** 2 + d["u_y"] ** 2 + u * (d["u_xx"] + d["u_yy"]))

    return PDEProblem(
        name="nonlinear-diffusion",
        domain=Box(("x", "y", "t"), (-1.0, -1.0, 0.0), (1.0, 1.0, 1.0), time="t"),
        fields=("u",),
        residual=residual,
        conditions=(InitialValue(value=bumps), Dirichlet(value=0.0)),
        params={"D": float(coefficient)},
        reference=NonlinearDiffusionReference(coefficient="D", exponent=1),
        description="nonlinear diffusion u_t = 0.05 ∇·(u∇u), three Gaussian bumps, zero Dirichlet",
        citation=PIG_PAPER,
    )


# --------------------------------------------------------------------------------------------- Allen–Cahn
def allen_cahn() -> PDEProblem:
    """``u_t − ε u_xx + γ (u³ − u) = 0``, ε = 1e-4, γ = 5, x ∈ [−1, 1) periodic, t ∈ [0, 1], u0 = x² cos πx.

    Reference: a spectral ETDRK4 solve (``sciml.solvers.spectral``) with terms ``{(0,2): ε, (0,0): γ,
    (2,0): −γ}``.
    The ansatz ``u = u0(x) + t N(x, t)`` builds in the initial value; periodicity stays a loss term.
    """

    def residual(x, d, p):
        u = d["u"]
        return d["u_t"] - p["eps"] * d["u_xx"] + p["gamma"] * (u**3 - u)

    return PDEProblem(
        name="allen-cahn",
        domain=Box(("x", "t"), (-1.0, 0.0), (1.0, 1.0), time="t"),
        fields=("u",),
        residual=residual,
        conditions=(
            InitialValue(value=lambda x: x[:, 0] ** 2 * torch.cos(math.pi * x[:, 0])),
            Periodic(coordinate="x", derivatives=1),
        ),
        params={"eps": 1e-4, "gamma": 5.0},
        constraint=HardConstraint(
            particular=lambda x: x[:, 0] ** 2 * torch.cos(math.pi * x[:, 0]),
            factor=lambda x: x[:, 1],
            enforces=("initial",),
        ),
        reference=SemilinearReference(
            terms=lambda p: {(0, 2): p["eps"], (0, 0): p["gamma"], (2, 0): -p["gamma"]},
            n_points=512,
            dt=1e-4,
            n_times=201,
        ),
        description="Allen–Cahn 1D, ε = 1e-4, γ = 5, periodic, u0 = x² cos πx",
        citation=PIG_PAPER,
    )


# --------------------------------------------------------------------------------------------- Burgers
def burgers(nu: float = 0.01 / math.pi) -> PDEProblem:
    """``u_t + u u_x = ν u_xx`` on [−1, 1] × [0, 1], ``u0 = −sin πx``, ``u(±1, t) = 0``, ν = 0.01/π.

    The solution is odd in x, so the periodic spectral solve (terms ``{(0,2): ν, (1,1): −1}``) has the same
    solution and serves as the reference. The ansatz ``u = −sin πx + t (1 − x²) N(x, t)`` builds in the
    initial and boundary values.
    """

    def residual(x, d, p):
        return d["u_t"] + d["u"] * d["u_x"] - p["nu"] * d["u_xx"]

    return PDEProblem(
        name="burgers",
        domain=Box(("x", "t"), (-1.0, 0.0), (1.0, 1.0), time="t"),
        fields=("u",),
        residual=residual,
        conditions=(InitialValue(value=lambda x: -torch.sin(math.pi * x[:, 0])), Dirichlet(value=0.0)),
        params={"nu": float(nu)},
        constraint=HardConstraint(
            particular=lambda x: -torch.sin(math.pi * x[:, 0]),
            factor=lambda x: x[:, 1] * (1 - x[:, 0] ** 2),
            enforces=("initial", "dirichlet"),
        ),
        reference=SemilinearReference(
            terms=lambda p: {(0, 2): p["nu"], (1, 1): -1.0}, n_points=2048, dt=2e-5, n_times=101, x_stride=8
        ),
        description="viscous Burgers 1D, ν = 0.01/π, u0 = −sin πx",
        citation="Raissi, Perdikaris, Karniadakis, Physics-informed neural networks, J. Comput. Phys. 2019",
    )


# --------------------------------------------------------------------------------------------- Poisson
def poisson() -> PoissonProblem:
    """``−Δu = f`` on [0, 1]², exact ``u = sin(πx) sin(2πy) + eˣ cos y`` (the second term is harmonic).

    ``discretize(grid)`` gives the grid system of ``sciml.problems.linear.PoissonGrid`` for the same data.
    """

    def exact(x):
        xp = _xp(x)
        return xp.sin(math.pi * x[..., 0]) * xp.sin(2 * math.pi * x[..., 1]) + xp.exp(x[..., 0]) * xp.cos(
            x[..., 1]
        )

    def source(x):
        xp = _xp(x)
        return 5 * math.pi**2 * xp.sin(math.pi * x[..., 0]) * xp.sin(2 * math.pi * x[..., 1])

    def residual(x, d, p):
        return d["u_xx"] + d["u_yy"] + source(x)

    return PoissonProblem(
        name="poisson",
        domain=Box(("x", "y"), (0.0, 0.0), (1.0, 1.0)),
        fields=("u",),
        residual=residual,
        conditions=(Dirichlet(value=exact),),
        exact=exact,
        test_shape=(101, 101),
        loss_weights={"residual": 1e-3},
        description="Poisson 2D, u = sin(πx) sin(2πy) + eˣ cos y, Dirichlet (shared with the grid solvers)",
        citation="manufactured solution",
        source=source,
        boundary=exact,
    )


# --------------------------------------------------------------------------------------------- singular ODEs
def _horner(coefficients: np.ndarray, s: torch.Tensor) -> torch.Tensor:
    """``Σ_k coefficients[k] s^k`` (differentiable)."""
    out = torch.zeros_like(s)
    for ck in coefficients[::-1]:
        out = out * s + float(ck)
    return out


def legendre(degree: int = 3) -> PDEProblem:
    """Legendre ``(1 − x²) y'' − 2x y' + l(l+1) y = 0`` on [−1, 1]: both ends are regular singular points.

    The regular solution is ``P_l``; the conditions ``y(±1) = P_l(±1) = (±1)^l`` select it, and the
    ansatz ``y = g(x) + (1 − x²) N(x)`` (g the line through the end values) builds them in.
    """
    if not isinstance(degree, int) or degree < 0:
        raise ValueError(f"`degree` must be a non-negative integer, got {degree!r}")
    left = (-1.0) ** degree
    power = np.polynomial.legendre.leg2poly([0.0] * degree + [1.0])  # P_l in the monomial basis

    def exact(x: torch.Tensor) -> torch.Tensor:
        return _horner(power, x[:, 0])

    def residual(x, d, p):
        s = x[:, 0]
        return (1 - s**2) * d["y_xx"] - 2 * s * d["y_x"] + p["l"] * (p["l"] + 1) * d["y"]

    return PDEProblem(
        name="legendre",
        domain=Box(("x",), (-1.0,), (1.0,)),
        fields=("y",),
        residual=residual,
        conditions=(Dirichlet(value=exact),),
        params={"l": float(degree)},
        exact=exact,
        constraint=HardConstraint(
            particular=lambda x: 0.5 * ((1 + x[:, 0]) + left * (1 - x[:, 0])),
            factor=lambda x: 1 - x[:, 0] ** 2,
            enforces=("dirichlet",),
        ),
        test_shape=(401,),
        description=f"Legendre ODE, l = {degree}: regular singular points at ±1, y = P_{degree}",
        citation="regular singular points: Frobenius; PINN ansatz after Lagaris et al. 1998",
    )


def _hypergeometric_polynomial(a: float, b: float, c: float) -> np.ndarray:
    """Coefficients of ₂F₁(a, b; c; x) when ``a`` is a non-positive integer (a terminating series)."""
    if not (float(a).is_integer() and a <= 0):
        raise ValueError(f"the exact solution needs a non-positive integer `a` (terminating series), got {a}")
    coef, out = 1.0, [1.0]
    for k in range(int(-a)):
        coef *= (a + k) * (b + k) / ((c + k) * (k + 1))
        out.append(coef)
    return np.array(out)


def hypergeometric(a: float = -2.0, b: float = 1.0, c: float = 1.0) -> PDEProblem:
    """Hypergeometric ``x(1 − x) y'' + (c − (a + b + 1) x) y' − ab y = 0`` on [0, 2] (singular at 0 and 1).

    The regular solution at 0 is ``₂F₁(a, b; c; x)`` — for (−2, 1, 1) it is ``(1 − x)²``; the conditions
    ``y(0) = 1`` (the regular value) and ``y(2) = ₂F₁(2)`` select it, and the ansatz
    ``y = g(x) + x (2 − x) N(x)`` builds them in.
    """
    coefficients = _hypergeometric_polynomial(a, b, c)
    right = float(np.polyval(coefficients[::-1], 2.0))

    def exact(x: torch.Tensor) -> torch.Tensor:
        return _horner(coefficients, x[:, 0])

    def residual(x, d, p):
        s = x[:, 0]
        return (
            s * (1 - s) * d["y_xx"]
            + (p["c"] - (p["a"] + p["b"] + 1) * s) * d["y_x"]
            - p["a"] * p["b"] * d["y"]
        )

    return PDEProblem(
        name="hypergeometric",
        domain=Box(("x",), (0.0,), (2.0,)),
        fields=("y",),
        residual=residual,
        conditions=(Dirichlet(value=exact),),
        params={"a": float(a), "b": float(b), "c": float(c)},
        exact=exact,
        constraint=HardConstraint(
            particular=lambda x: 1.0 + (right - 1.0) * x[:, 0] / 2,
            factor=lambda x: x[:, 0] * (2 - x[:, 0]),
            enforces=("dirichlet",),
        ),
        test_shape=(401,),
        description=f"hypergeometric ODE (a, b, c) = ({a:g}, {b:g}, {c:g}) on [0, 2], y = 2F1",
        citation="regular singular points: Frobenius; PINN ansatz after Lagaris et al. 1998",
    )
