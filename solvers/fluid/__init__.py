"""A small 2D smoke simulator whose pressure projection takes any linear solver (CG, DCDM, ...)."""

from sciml.solvers.fluid.smoke import FrameStats, SmokeSimulation, cg_pressure_solver, plume_grid, smoke_rhs

__all__ = ["SmokeSimulation", "FrameStats", "cg_pressure_solver", "plume_grid", "smoke_rhs"]
