"""Preconditioners for CG: Jacobi, incomplete Cholesky IC(0), SSOR, and smoothed-aggregation AMG.

Each builder returns a ``scipy.sparse.linalg.LinearOperator`` approximating ``A⁻¹`` (symmetric positive
definite), so it serves :func:`sciml.solvers.linear.cg` and scipy's own Krylov solvers alike.

* IC(0): Meijerink & van der Vorst, *An iterative solution method for linear systems of which the
  coefficient matrix is a symmetric M-matrix* (1977). scipy has none; this one factors ``A ≈ L D Lᵀ`` on
  the pattern of ``A`` level by level (rows of one wavefront at once, :func:`~.triangular.row_levels`),
  so the Python loop runs over levels (≈ 2·512 for a 512² grid), not rows.
* SSOR: ``M = (D + ωS) D⁻¹ (D + ωSᵀ) / (ω(2−ω))`` for ``A = S + D + Sᵀ`` (Axelsson, *Iterative
  Solution Methods*, 1994, §7.4).
* AMG: pyamg's smoothed aggregation (Vaněk, Mandel & Brezina 1996), optional dependency.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from sciml.solvers.linear.operators import _check_real
from sciml.solvers.linear.triangular import UnitLowerTriangular, row_levels

__all__ = [
    "jacobi",
    "incomplete_cholesky",
    "IncompleteCholesky",
    "ssor_preconditioner",
    "SSORPreconditioner",
    "amg",
]


def _square_sparse(A: Any, name: str = "A") -> sp.csr_array:
    """``A`` as a canonical float64 CSR array (the caller's matrix is never modified).

    Raises:
        TypeError: not a sparse matrix or 2-D array, or complex/non-numeric entries.
        ValueError: not square, or non-finite entries.
    """
    if isinstance(A, np.ndarray) and A.ndim == 2:
        _check_real(A.dtype, name)
        A = sp.csr_array(A)
    if not sp.issparse(A):
        raise TypeError(
            f"`{name}` must be a scipy sparse matrix or a dense 2-D array, got {type(A).__name__}"
        )
    _check_real(A.dtype, name)
    if not (isinstance(A, sp.csr_array) and A.dtype == np.float64):
        A = sp.csr_array(A, dtype=np.float64)
    if A.shape[0] != A.shape[1]:
        raise ValueError(f"`{name}` must be square, got shape {A.shape}")
    if not np.isfinite(A.data).all():
        raise ValueError(f"`{name}` has non-finite entries")
    if not A.has_canonical_format:
        A = A.copy()
        A.sum_duplicates()
    return A


def _positive_diagonal(A: sp.csr_array, name: str = "A") -> np.ndarray:
    d = A.diagonal()
    bad = np.flatnonzero(~(d > 0))
    if bad.size:
        raise ValueError(
            f"`{name}` has a non-positive diagonal entry {d[bad[0]]:.3g} at row {bad[0]}; this method "
            "needs a positive diagonal (an SPD matrix has one)"
        )
    return d


def _asymmetry(A: sp.csr_array) -> float:
    """``max |A − Aᵀ|`` where it exceeds ``1e-12 max |A|`` (round-off), else 0."""
    asym = abs(A - A.T)
    scale = abs(A).max() if A.nnz else 1.0
    return float(asym.max()) if asym.nnz and asym.max() > 1e-12 * scale else 0.0


def _check_symmetric(A: sp.csr_array, name: str = "A") -> None:
    if asym := _asymmetry(A):
        raise ValueError(f"`{name}` is not symmetric (max |A - Aᵀ| = {asym:.3e}); it must be SPD")


class _Diagonal:
    """Division by a diagonal, for numpy vectors or torch fields alike."""

    def __init__(self, diagonal: np.ndarray | torch.Tensor) -> None:
        self.inverse = 1.0 / diagonal

    def __call__(self, r):
        inv = self.inverse
        if torch.is_tensor(r) and not torch.is_tensor(inv):
            inv = torch.as_tensor(inv, dtype=r.dtype, device=r.device)
            self.inverse = inv
        return r * inv


def jacobi(A: Any = None, *, diagonal: np.ndarray | torch.Tensor | None = None) -> Any:
    """Jacobi (diagonal) preconditioner ``r -> r / diag(A)``.

    Args:
        A: a scipy sparse matrix or dense array; or leave it out and give ``diagonal``.
        diagonal: the diagonal itself, as a numpy array or a torch tensor of any shape (e.g. the field
            ``grid.diagonal()`` for matrix-free CG on fields).

    Returns:
        A ``LinearOperator`` (from ``A``) or a callable (from ``diagonal``) that divides by the diagonal.

    Raises:
        ValueError: a non-positive diagonal entry, or neither/both arguments given.
    """
    if (A is None) == (diagonal is None):
        raise ValueError("give exactly one of `A` and `diagonal`")
    if diagonal is not None:
        d = diagonal if torch.is_tensor(diagonal) else np.asarray(diagonal, dtype=np.float64)
        if not bool((d > 0).all()):
            raise ValueError("`diagonal` must be positive everywhere (mask out non-unknowns with 1)")
        return _Diagonal(d)
    A = _square_sparse(A)
    d = _positive_diagonal(A)
    inv = 1.0 / d
    n = A.shape[0]
    return spla.LinearOperator((n, n), matvec=lambda r: inv * np.ravel(r), dtype=np.float64)


# --------------------------------------------------------------------------------------------- IC(0)
class IncompleteCholesky(spla.LinearOperator):
    """IC(0) preconditioner: ``A ≈ L D Lᵀ`` with unit lower ``L`` on the pattern of ``A``; applies
    ``(L D Lᵀ)⁻¹``. Build it with :func:`incomplete_cholesky`.

    Attributes:
        unit_lower: the factor ``L`` (:class:`~.triangular.UnitLowerTriangular`).
        pivots: ``D``.
        levels: number of wavefronts the factorisation ran through.
        setup_seconds: wall time of the factorisation.
    """

    def __init__(self, unit_lower: UnitLowerTriangular, pivots: np.ndarray, levels: int, seconds: float):
        n = unit_lower.n
        super().__init__(dtype=np.float64, shape=(n, n))
        self.unit_lower = unit_lower
        self.pivots = pivots
        unit_lower.prepare_ldlt(pivots)
        self.levels = levels
        self.setup_seconds = seconds

    @property
    def L(self) -> sp.csr_array:
        """The Cholesky-form factor ``L D^{1/2}`` (lower triangular, positive diagonal) as CSR."""
        return sp.csr_array(self.unit_lower.matrix() @ sp.diags_array(np.sqrt(self.pivots)))

    def _matvec(self, r: np.ndarray) -> np.ndarray:
        return self.unit_lower.solve_ldlt(np.ravel(r))

    def _matmat(self, R: np.ndarray) -> np.ndarray:
        return self.unit_lower.solve_ldlt(R)

    def _adjoint(self) -> IncompleteCholesky:
        return self


def incomplete_cholesky(A: Any, *, shift: float = 0.0) -> IncompleteCholesky:
    """Zero fill-in incomplete Cholesky factorisation IC(0) of a sparse SPD matrix, as a preconditioner.

    Computes unit lower ``L`` and diagonal ``D`` with the sparsity of ``A`` such that ``(L D Lᵀ)_ij =
    A_ij`` on that pattern (Meijerink & van der Vorst 1977), in the root-free form

        L_ij = (A_ij − Σ_{k<j} L_ik D_k L_jk) / D_j,    D_i = A_ii − Σ_{k<i} L_ik² D_k,

    where the sums run over the pattern only. Rows are processed in wavefronts (levels of the lower
    triangle's dependency graph), entries of one wavefront at once, so a 512² Poisson matrix (262k
    unknowns, 1023 levels) factors in well under a second.

    Args:
        A: sparse (or dense) symmetric positive definite matrix.
        shift: factor ``A + shift · diag(A)`` instead (Manteuffel's shift) when IC(0) breaks down.

    Returns:
        :class:`IncompleteCholesky`, a ``LinearOperator`` applying ``(L D Lᵀ)⁻¹`` by two triangular solves.

    Raises:
        TypeError: ``A`` is not a matrix.
        ValueError: ``A`` not square/symmetric, non-finite, a non-positive diagonal, or a non-positive
            pivot (breakdown: ``A`` is not SPD or IC(0) is unstable for it; try ``shift=1e-3``).
    """
    import time

    start = time.perf_counter()
    A = _square_sparse(A)
    if not (np.isfinite(shift) and shift >= 0):
        raise ValueError(f"`shift` must be a finite number >= 0, got {shift}")
    adiag = _positive_diagonal(A) * (1.0 + shift)
    _check_symmetric(A)
    n = A.shape[0]
    P = sp.csr_array(sp.tril(A, k=-1, format="csr"))
    P.sum_duplicates()
    P.sort_indices()
    P.eliminate_zeros()
    m = P.nnz
    rows = np.repeat(np.arange(n), np.diff(P.indptr))
    cols = P.indices.astype(np.int64)
    a = P.data

    # -- symbolic phase: triples (i, j, k), k < j < i, with (i,j), (i,k), (j,k) in the pattern, which feed
    # L_ij. Enumerate pairs of rows j < i sharing a column k, keep those with (i, j) in the pattern.
    by_col = sp.csr_array((np.arange(1, m + 1, dtype=np.float64), P.indices, P.indptr), shape=(n, n)).tocsc()
    by_col.sort_indices()
    col_entry = by_col.data.astype(np.int64) - 1  # CSR entry index of each CSC position
    col_row = by_col.indices.astype(np.int64)
    counts = np.diff(by_col.indptr)
    local = np.arange(m) - np.repeat(by_col.indptr[:-1], counts)
    later = np.repeat(counts, counts) - 1 - local
    total = int(later.sum())
    first = np.repeat(np.arange(m), later)
    second = first + 1 + np.arange(total) - np.repeat(np.cumsum(later) - later, later)
    keys = rows * n + cols
    want = col_row[second] * n + col_row[first]
    pos = np.searchsorted(keys, want)
    found = pos < m
    found[found] &= keys[pos[found]] == want[found]
    t_target = pos[found]
    t_ik = col_entry[second[found]]
    t_jk = col_entry[first[found]]
    t_k = cols[t_ik]

    # -- scheduling: entries grouped by (level of their row, position within the row)
    level = row_levels(P)
    n_levels = int(level.max()) + 1 if n else 0
    within = np.arange(m) - P.indptr[rows]
    width = int(within.max()) + 1 if m else 1
    key = level[rows] * width + within
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    group_start = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]]) if m else np.zeros(0, int)
    group_end = np.r_[group_start[1:], m]
    group_level = sorted_key[group_start] // width if m else np.zeros(0, int)
    rank = np.empty(m, dtype=np.int64)
    rank[order] = np.arange(m) - np.repeat(group_start, group_end - group_start)
    t_order = np.argsort(key[t_target], kind="stable")
    t_sorted_key = key[t_target][t_order]
    row_order = np.argsort(level, kind="stable")
    level_bounds = np.searchsorted(level[row_order], np.arange(n_levels + 1))
    group_bounds = np.searchsorted(group_level, np.arange(n_levels + 1))

    # -- numeric phase
    values = np.zeros(m)
    pivots = np.zeros(n)
    squares = np.zeros(n)
    for lvl in range(n_levels):
        for g in range(group_bounds[lvl], group_bounds[lvl + 1]):
            E = order[group_start[g] : group_end[g]]
            v = a[E].copy()
            kv = sorted_key[group_start[g]]
            lo, hi = np.searchsorted(t_sorted_key, [kv, kv + 1])
            if hi > lo:
                T = t_order[lo:hi]
                contrib = values[t_ik[T]] * pivots[t_k[T]] * values[t_jk[T]]
                v -= np.bincount(rank[t_target[T]], weights=contrib, minlength=E.size)
            dj = pivots[cols[E]]
            v /= dj
            values[E] = v
            squares[rows[E]] += v * v * dj
        R = row_order[level_bounds[lvl] : level_bounds[lvl + 1]]
        d = adiag[R] - squares[R]
        bad = ~(d > 1e-14 * adiag[R])
        if bad.any():
            i = int(R[np.flatnonzero(bad)[0]])
            raise ValueError(
                f"incomplete Cholesky broke down at row {i} (pivot {adiag[i] - squares[i]:.3e} <= 0): `A` is "
                f"not positive definite, or IC(0) is unstable for it; retry with "
                f"incomplete_cholesky(A, shift={max(10 * shift, 1e-3):g}) or use jacobi/amg"
            )
        pivots[R] = d
    factor = UnitLowerTriangular(sp.csr_array((values, P.indices, P.indptr), shape=(n, n)))
    return IncompleteCholesky(factor, pivots, n_levels, time.perf_counter() - start)


# --------------------------------------------------------------------------------------------- SSOR
class SSORPreconditioner(spla.LinearOperator):
    """Symmetric SOR preconditioner for SPD ``A = S + D + Sᵀ`` (``S`` strictly lower):

        M = (D + ωS) D⁻¹ (D + ωSᵀ) / (ω(2−ω)) = L D Lᵀ / (ω(2−ω)),

    with unit lower ``L = I + ω S D⁻¹``; applies ``M⁻¹`` by two triangular solves. :meth:`update` switches
    ω and/or the matrix values in place: for a matrix with the same sparsity pattern (a time step of the
    same simulation) it only gathers the new values and rescales, in ``O(nnz)`` numpy work.
    """

    def __init__(self, A: Any, omega: float) -> None:
        A = _square_sparse(A)
        n = A.shape[0]
        super().__init__(dtype=np.float64, shape=(n, n))
        self._indptr = self._indices = None
        self._set_matrix(A)
        self.omega = _check_omega(omega)
        self._refresh()

    def _refresh(self) -> None:
        w = self.omega
        self._factor.set_column_scaling(w / self.diagonal)
        self._factor.prepare_ldlt(self.diagonal / (w * (2.0 - w)))

    def _same_pattern(self, A: sp.csr_array) -> bool:
        return (
            self._indptr is not None
            and A.indptr.shape == self._indptr.shape
            and A.indices.shape == self._indices.shape
            and np.array_equal(A.indptr, self._indptr)
            and np.array_equal(A.indices, self._indices)
        )

    def _set_matrix(self, A: sp.csr_array) -> None:
        if not self._same_pattern(A):  # symbolic set-up: where the diagonal, S and Sᵀ sit in A.data
            n = A.shape[0]
            rows = np.repeat(np.arange(n), np.diff(A.indptr))
            cols = A.indices.astype(np.int64)
            diag_pos = np.full(n, -1, dtype=np.int64)
            on = np.flatnonzero(rows == cols)
            diag_pos[rows[on]] = on
            low = np.flatnonzero(rows > cols)
            low = low[np.lexsort((rows[low], cols[low]))]  # CSC order of S
            keys = rows * n + cols  # sorted: A is canonical CSR
            mirror = np.searchsorted(keys, cols[low] * n + rows[low])
            mirror = np.minimum(mirror, keys.size - 1)
            if (keys[mirror] != cols[low] * n + rows[low]).any() or (rows < cols).sum() != low.size:
                raise ValueError("`A` is not symmetric (its sparsity pattern is not); SSOR needs SPD `A`")
            counts = np.bincount(cols[low], minlength=n)
            col_ptr = np.concatenate([[0], np.cumsum(counts)])
            self._factor = UnitLowerTriangular(sp.csc_array((A.data[low], rows[low], col_ptr), shape=(n, n)))
            self._indptr, self._indices = A.indptr.copy(), A.indices.copy()
            self._diag_pos, self._low_pos, self._up_pos = diag_pos, low, mirror
        data = A.data
        lower, upper = data[self._low_pos], data[self._up_pos]
        scale = np.abs(data).max() if data.size else 1.0
        if lower.size and np.abs(lower - upper).max() > 1e-12 * scale:
            raise ValueError(
                f"`A` is not symmetric (max |A - Aᵀ| = {np.abs(lower - upper).max():.3e}); SSOR needs SPD `A`"
            )
        d = np.where(self._diag_pos >= 0, data[np.maximum(self._diag_pos, 0)], 0.0)
        bad = np.flatnonzero(~(d > 0))
        if bad.size:
            raise ValueError(
                f"`A` has a non-positive diagonal entry {d[bad[0]]:.3g} at row {bad[0]}; SSOR needs a "
                "positive diagonal (an SPD matrix has one)"
            )
        self.diagonal = d
        self._factor._off_base = lower

    def update(self, A: Any = None, omega: float | None = None) -> SSORPreconditioner:
        """Switch to another relaxation factor and/or another matrix (reusing the structure when the
        sparsity pattern is unchanged). Returns ``self``.

        Raises:
            ValueError: as :func:`ssor_preconditioner`, or a matrix of another shape.
        """
        if A is not None:
            A = _square_sparse(A)
            if A.shape != self.shape:
                raise ValueError(f"`A` has shape {A.shape}, the preconditioner was built for {self.shape}")
            self._set_matrix(A)
        if omega is not None:
            self.omega = _check_omega(omega)
        self._refresh()
        return self

    def _matvec(self, r: np.ndarray) -> np.ndarray:
        return self._factor.solve_ldlt(np.ravel(r))

    def _matmat(self, R: np.ndarray) -> np.ndarray:
        return self._factor.solve_ldlt(R)

    def _adjoint(self) -> SSORPreconditioner:
        return self


def _check_omega(omega: float) -> float:
    omega = float(omega)
    if not (0.0 < omega < 2.0):
        raise ValueError(f"`omega` must lie in (0, 2) for SOR/SSOR to converge, got {omega}")
    return omega


def ssor_preconditioner(A: Any, omega: float = 1.0) -> SSORPreconditioner:
    """SSOR preconditioner of a sparse SPD matrix for relaxation factor ``omega`` ∈ (0, 2).

    Raises:
        ValueError: ``omega`` outside (0, 2), a non-positive diagonal, non-finite or non-symmetric ``A``.
    """
    return SSORPreconditioner(A, omega)


# --------------------------------------------------------------------------------------------- AMG
def amg(A: Any, **kwargs: Any) -> spla.LinearOperator:
    """Smoothed-aggregation algebraic multigrid V-cycle as a preconditioner (pyamg).

    Args:
        A: sparse SPD matrix.
        **kwargs: passed to ``pyamg.smoothed_aggregation_solver`` (e.g. ``strength``, ``max_coarse``).

    Returns:
        pyamg's ``LinearOperator`` applying one V-cycle (symmetric smoothing, so SPD).

    Raises:
        ImportError: pyamg is not installed (it is an optional benchmark dependency).
    """
    try:
        import pyamg
    except ImportError as exc:
        raise ImportError(
            "amg() needs pyamg, an optional dependency: python -m pip install pyamg (or '.[bench]')"
        ) from exc
    A = _square_sparse(A)
    _positive_diagonal(A)
    return pyamg.smoothed_aggregation_solver(sp.csr_matrix(A), **kwargs).aspreconditioner(cycle="V")
