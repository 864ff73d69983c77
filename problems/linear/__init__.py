"""Linear PDE problems on grids: one stencil definition, two forms (scipy matrix, torch operator)."""

from problems.linear.grid import DIRICHLET, FLUID, SOLID, PoissonGrid

__all__ = ["PoissonGrid", "FLUID", "SOLID", "DIRICHLET"]
