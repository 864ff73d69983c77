"""Poisson ``-Δu = f`` with Dirichlet data: the continuous problem and its grid discretisation.

:class:`PoissonProblem` is a :class:`~sciml.problems.pde.problem.PDEProblem` (a PINN or PIG trains on its
residual ``Δu + f``) whose :meth:`~PoissonProblem.discretize` hands the *same* source and boundary data to
the shared stencil :class:`sciml.problems.linear.PoissonGrid`, giving the linear system (scipy matrix and
matrix-free torch operator) that the CG/DCDM/SOR solvers use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from sciml.problems.linear import SOLID, PoissonGrid
from sciml.problems.pde.problem import PDEProblem

__all__ = ["PoissonProblem", "PoissonSystem"]


@dataclass(frozen=True, eq=False)
class PoissonSystem:
    """The discrete system ``A u = b`` on a grid's unknowns (fluid cells), with the exact solution there.

    Attributes:
        grid: the stencil definition.
        rhs: ``b`` as a vector of unknowns: the source at the cell centres plus the Dirichlet data.
        exact: the continuous problem's exact solution at the unknowns (``None`` if it has none).
    """

    grid: PoissonGrid
    rhs: np.ndarray
    exact: np.ndarray | None

    def matrix(self) -> sp.csr_matrix:
        """``A`` as a scipy CSR matrix (the grid's :meth:`~sciml.problems.linear.PoissonGrid.matrix`)."""
        return self.grid.matrix()

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """``A`` applied matrix-free to fields ``(..., *grid.shape)``."""
        return self.grid.apply(u)

    def residual(self, u: np.ndarray) -> np.ndarray:
        """``b - A u`` for a vector of unknowns."""
        return self.rhs - self.matrix() @ u


@dataclass(frozen=True, eq=False, repr=False)
class PoissonProblem(PDEProblem):
    """``-Δu = source`` in the box, ``u = boundary`` on its faces.

    Args (besides those of :class:`PDEProblem`):
        source: ``f``; maps points ``(..., ndim)`` (numpy or torch) to ``(...)``.
        boundary: the Dirichlet data ``g``, same convention.
    """

    source: Callable | None = None
    boundary: Callable | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (callable(self.source) and callable(self.boundary)):
            raise ValueError("a PoissonProblem needs callable `source` and `boundary` (numpy and torch)")

    def discretize(
        self, grid: PoissonGrid | int | tuple[int, ...], wall_distance: float = 0.5
    ) -> PoissonSystem:
        """The linear system on ``grid`` (a :class:`PoissonGrid` over this box, or a cell count per side).

        Args:
            grid: a grid whose box is the problem's domain and whose walls are all Dirichlet, or the number
                of cells per dimension (an int or a tuple) for such a grid.
            wall_distance: used when ``grid`` is a count (0.5 cell-centred, 1.0 vertex-centred).

        Returns:
            A :class:`PoissonSystem`; its ``rhs`` is ``f`` at the cell centres plus
            ``grid.dirichlet_rhs(boundary)``.

        Raises:
            ValueError: the grid covers another box, has Neumann walls or solid cells, or another dimension.
        """
        box = self.domain
        if not isinstance(grid, PoissonGrid):
            shape = (int(grid),) * box.ndim if np.isscalar(grid) else tuple(int(n) for n in grid)
            grid = PoissonGrid(shape, lower=box.lower, upper=box.upper, wall_distance=wall_distance)
        if grid.ndim != box.ndim or not (
            np.allclose(grid.lower, box.lower) and np.allclose(grid.upper, box.upper)
        ):
            raise ValueError(
                f"`grid` must cover the problem's box {box.lower}–{box.upper} in {box.ndim}-D, "
                f"got {grid.lower}–{grid.upper}"
            )
        if any(kind != "dirichlet" for pair in grid.walls for kind in pair):
            raise ValueError(
                f"{self.name} has Dirichlet data on every face: build the grid with walls='dirichlet'"
            )
        if (grid.cells == SOLID).any():
            raise ValueError(
                "solid cells would add zero-flux obstacles that the continuous problem does not have"
            )
        x = grid.coordinates()
        rhs = grid.to_vector(np.asarray(self.source(x), dtype=float) + grid.dirichlet_rhs(self.boundary))
        exact = None
        if self.exact is not None:
            u = self.exact(torch.as_tensor(x.reshape(-1, box.ndim), dtype=torch.float64))
            exact = grid.to_vector(u.reshape(grid.shape).numpy())
        return PoissonSystem(grid=grid, rhs=rhs, exact=exact)
