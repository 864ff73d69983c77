"""Linear PDE problems on grids: one stencil definition, two forms (scipy matrix, torch operator)."""

from sciml.problems.linear.grid import DIRICHLET, FLUID, SOLID, PoissonGrid
from sciml.problems.linear.stencil_matrix import GridStencil, NullSpace, as_grid_stencil

__all__ = ["PoissonGrid", "FLUID", "SOLID", "DIRICHLET", "GridStencil", "NullSpace", "as_grid_stencil"]
from sciml.problems.linear.sequences import HeatEquation2D, LinearInstance, ShiftedLaplacianSequence, bump  # noqa: E402

__all__ += ["ShiftedLaplacianSequence", "HeatEquation2D", "LinearInstance", "bump"]
from sciml.problems.linear.generators import (  # noqa: E402
    fill_unanchored,
    random_layout,
    random_obstacles,
    random_rhs,
    random_walls,
    smooth_rhs,
)

__all__ += [
    "random_obstacles",
    "random_walls",
    "fill_unanchored",
    "random_layout",
    "random_rhs",
    "smooth_rhs",
]
