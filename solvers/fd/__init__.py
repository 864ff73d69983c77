"""Finite-difference references for PDE problems, and the dispatch that computes (and caches) a reference."""

from sciml.solvers.fd.nonlinear_diffusion import solve_nonlinear_diffusion
from sciml.solvers.fd.reference import ReferenceSolution, reference_solution

__all__ = ["ReferenceSolution", "reference_solution", "solve_nonlinear_diffusion"]
