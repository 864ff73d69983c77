"""Spectral time stepping for semilinear periodic PDEs (ETDRK4), Lyapunov exponents, cached references."""

from sciml.solvers.spectral.etdrk4 import (
    ETDRK4,
    ETDRK4Coefficients,
    IllPosedProblemError,
    SpectralSolution,
    etdrk4_coefficients,
    small_work_threads,
    solve_spectral,
)
from sciml.solvers.spectral.lyapunov import LyapunovEstimate, largest_lyapunov_exponent
from sciml.solvers.spectral.reference import cached_solve, problem_parameters

__all__ = [
    "ETDRK4",
    "ETDRK4Coefficients",
    "IllPosedProblemError",
    "SpectralSolution",
    "etdrk4_coefficients",
    "solve_spectral",
    "small_work_threads",
    "LyapunovEstimate",
    "largest_lyapunov_exponent",
    "cached_solve",
    "problem_parameters",
]
