"""Poisson problems as users bring them: a disk, an L-shaped polygon, a Neumann wall (manufactured
solutions, so errors can be measured).

They are not part of the benchmark suite (``names()``); build them directly, e.g.
``sciml.problems.pde.examples.disk_poisson()``.
"""

from __future__ import annotations

import math

import torch
from sciml.problems.pde.conditions import Dirichlet, Neumann
from sciml.problems.pde.domain import Box
from sciml.problems.pde.geometry import Disk, LShape
from sciml.problems.pde.problem import PDEProblem

__all__ = ["disk_poisson", "lshape_poisson", "neumann_poisson"]


def _laplace_residual(source):
    def residual(x, d, p):
        return d["u_xx"] + d["u_yy"] + source(x)

    return residual


def disk_poisson(constraint: str | None = None) -> PDEProblem:
    """``−Δu = f`` on the unit disk, ``u = g`` on the circle, with the exact solution
    ``u = eˣ sin y + (1 − x² − y²) cos(πx)`` and the harmonic boundary data ``g = eˣ sin y``.

    Args:
        constraint: ``"auto"`` builds the Dirichlet condition into the model (distance ``(1 − r²)/2``).
    """

    def exact(x: torch.Tensor) -> torch.Tensor:
        s, t = x[:, 0], x[:, 1]
        return torch.exp(s) * torch.sin(t) + (1 - s**2 - t**2) * torch.cos(math.pi * s)

    def boundary(x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x[:, 0]) * torch.sin(x[:, 1])

    def source(x: torch.Tensor) -> torch.Tensor:
        # −Δ[(1 − r²) cos(πx)] = 4 cos(πx) − 4πx sin(πx) + π²(1 − r²) cos(πx)
        s, t = x[:, 0], x[:, 1]
        c, si = torch.cos(math.pi * s), torch.sin(math.pi * s)
        return 4 * c - 4 * math.pi * s * si + math.pi**2 * (1 - s**2 - t**2) * c

    return PDEProblem(
        name="disk-poisson",
        domain=Disk((0.0, 0.0), 1.0),
        fields=("u",),
        residual=_laplace_residual(source),
        conditions=(Dirichlet(value=boundary),),
        exact=exact,
        constraint=constraint,
        test_shape=(101, 101),
        description="Poisson on the unit disk, u = eˣ sin y + (1 − r²) cos πx, Dirichlet",
        citation="manufactured solution",
    )


def lshape_poisson(constraint: str | None = None) -> PDEProblem:
    """``−Δu = f`` on the L-shape ``[−1, 1]² \\ (0, 1]²``, Dirichlet data from the exact solution
    ``u = sin(πx) sin(πy) + x y`` (smooth: the re-entrant corner's singular part is left out on purpose, so
    that the error measures training, not the r^(2/3) singularity).

    Args:
        constraint: ``"auto"`` builds the Dirichlet condition into the model (the boundary data ``x y`` is
            its own smooth extension).
    """

    def exact(x: torch.Tensor) -> torch.Tensor:
        s, t = x[:, 0], x[:, 1]
        return torch.sin(math.pi * s) * torch.sin(math.pi * t) + s * t

    def boundary(x: torch.Tensor) -> torch.Tensor:
        # sin(πx) sin(πy) vanishes on every edge of the L (x, y ∈ {−1, 0, 1} there)
        return x[:, 0] * x[:, 1]

    def source(x: torch.Tensor) -> torch.Tensor:
        return 2 * math.pi**2 * torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1])

    return PDEProblem(
        name="lshape-poisson",
        domain=LShape(1.0),
        fields=("u",),
        residual=_laplace_residual(source),
        conditions=(Dirichlet(value=boundary),),
        exact=exact,
        constraint=constraint,
        test_shape=(101, 101),
        description="Poisson on the L-shape, u = sin πx sin πy + xy, Dirichlet",
        citation="manufactured solution",
    )


def neumann_poisson(constraint: str | None = None) -> PDEProblem:
    """The suite's Poisson problem (``u = sin(πx) sin(2πy) + eˣ cos y`` on [0, 1]²) with a Neumann wall:
    ``∂u/∂n`` given on ``x = 1``, Dirichlet data on the three other faces.

    Args:
        constraint: ``"auto"`` builds the Dirichlet faces into the model (the Neumann wall stays a loss).
    """

    def exact(x: torch.Tensor) -> torch.Tensor:
        s, t = x[:, 0], x[:, 1]
        return torch.sin(math.pi * s) * torch.sin(2 * math.pi * t) + torch.exp(s) * torch.cos(t)

    def flux(x: torch.Tensor) -> torch.Tensor:  # ∂u/∂x, the outward normal derivative on x = 1
        s, t = x[:, 0], x[:, 1]
        return math.pi * torch.cos(math.pi * s) * torch.sin(2 * math.pi * t) + torch.exp(s) * torch.cos(t)

    def source(x: torch.Tensor) -> torch.Tensor:
        return 5 * math.pi**2 * torch.sin(math.pi * x[:, 0]) * torch.sin(2 * math.pi * x[:, 1])

    return PDEProblem(
        name="poisson-neumann",
        domain=Box(("x", "y"), (0.0, 0.0), (1.0, 1.0)),
        fields=("u",),
        residual=_laplace_residual(source),
        conditions=(Dirichlet(value=exact, on=("x-", "y-", "y+")), Neumann(value=flux, on="x+")),
        exact=exact,
        constraint=constraint,
        test_shape=(101, 101),
        loss_weights={"residual": 1e-3},
        description="Poisson 2D with a Neumann wall at x = 1, Dirichlet elsewhere",
        citation="manufactured solution",
    )
