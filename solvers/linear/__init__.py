"""Classical linear solvers: CG/PCG, GMRES, preconditioners (Jacobi, IC(0), SSOR, AMG), SOR/SSOR iterations.

Every solver returns a :class:`LinearSolveResult` ``(x, iterations, residual_history, converged, status,
message)`` and works on scipy sparse matrices, dense arrays, ``LinearOperator`` s or callables; CG and GMRES
also on torch fields of any shape with a callable operator.
"""

from sciml.solvers.linear.krylov import cg
from sciml.solvers.linear.preconditioners import (
    IncompleteCholesky,
    SSORPreconditioner,
    amg,
    incomplete_cholesky,
    jacobi,
    ssor_preconditioner,
)
from sciml.solvers.linear.relaxation import (
    JacobiSpectrumEstimate,
    SORBatchResult,
    estimate_jacobi_spectrum,
    jacobi_spectral_radius,
    red_black_sor,
    sor,
    sor_batch,
    ssor,
    young_omega,
)
from sciml.solvers.linear.restarted_gmres import gmres
from sciml.solvers.linear.result import LinearSolveResult, SolveStatus
from sciml.solvers.linear.triangular import UnitLowerTriangular, row_levels

__all__ = [
    "LinearSolveResult",
    "SolveStatus",
    "cg",
    "gmres",
    "jacobi",
    "incomplete_cholesky",
    "IncompleteCholesky",
    "ssor_preconditioner",
    "SSORPreconditioner",
    "amg",
    "sor",
    "ssor",
    "red_black_sor",
    "sor_batch",
    "SORBatchResult",
    "jacobi_spectral_radius",
    "estimate_jacobi_spectrum",
    "JacobiSpectrumEstimate",
    "young_omega",
    "UnitLowerTriangular",
    "row_levels",
]
