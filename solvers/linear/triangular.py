"""Sparse unit lower-triangular matrices with fast solves, and level scheduling of triangular recurrences.

Every Gauss–Seidel-type method here (IC(0), SSOR, SOR) applies ``(unit lower L)⁻¹`` and ``L⁻ᵀ`` each
iteration. scipy's public :func:`scipy.sparse.linalg.spsolve_triangular` copies and rescales the matrix
on every call; :class:`UnitLowerTriangular` keeps the matrix in SuperLU's column format once and calls
SuperLU's triangular substitution (``gstrs``, the kernel behind ``spsolve_triangular``) directly, falling
back to the public function if that private entry point is missing in a future scipy.

:func:`row_levels` groups the rows of a lower-triangular pattern into levels (wavefronts) whose rows
depend only on earlier levels (Anderson & Saad, *Solving sparse triangular linear systems on parallel
computers*, 1989), which lets a sequential recurrence run as a few vectorised steps per level.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

__all__ = ["UnitLowerTriangular", "row_levels"]

try:  # the C kernel behind spsolve_triangular; private, hence the fallback below
    from scipy.sparse.linalg._dsolve import _superlu

    _GSTRS = _superlu.gstrs
except (ImportError, AttributeError):  # pragma: no cover - depends on the scipy version
    _GSTRS = None


class UnitLowerTriangular:
    """``L = I + S`` with ``S`` strictly lower triangular, stored for repeated solves.

    Args:
        strictly_lower: the strictly lower part ``S`` (any scipy sparse format; entries on or above the
            diagonal are an error).

    Raises:
        ValueError: ``S`` is not square, has entries on/above the diagonal, or non-finite entries.
    """

    def __init__(self, strictly_lower: sp.sparray | sp.spmatrix) -> None:
        S = sp.csc_array(strictly_lower, dtype=np.float64)
        S.sum_duplicates()
        n = S.shape[0]
        if S.shape != (n, n):
            raise ValueError(f"a triangular factor must be square, got shape {S.shape}")
        coo = S.tocoo()
        if (coo.row <= coo.col).any():
            raise ValueError("`strictly_lower` has entries on or above the diagonal")
        if not np.isfinite(S.data).all():
            raise ValueError("the triangular factor has non-finite entries")
        # insert the unit diagonal first in every column (rows are sorted, the diagonal is the smallest)
        counts = np.diff(S.indptr)
        indptr = np.concatenate([[0], np.cumsum(counts + 1)]).astype(np.intc)
        diag_pos = indptr[:-1]
        off_pos = np.setdiff1d(np.arange(indptr[-1]), diag_pos, assume_unique=True)
        indices = np.empty(indptr[-1], dtype=np.intc)
        indices[diag_pos] = np.arange(n)
        indices[off_pos] = S.indices
        data = np.ones(indptr[-1])
        data[off_pos] = S.data
        self.n = n
        self._indptr, self._indices, self._data = indptr, indices, data
        self._off_pos = off_pos
        self._off_col = np.repeat(np.arange(n), counts)
        self._off_base = S.data.copy()
        self._empty = (np.zeros(0), np.zeros(0, dtype=np.intc), np.zeros(n + 1, dtype=np.intc))
        # Lᵀ's strictly upper part in CSC is L's strictly lower part in CSR: the permutation between them
        csr = sp.csr_array(
            sp.csc_array((np.arange(1.0, S.nnz + 1), S.indices, S.indptr), shape=(n, n)).tocsr()
        )
        csr.sort_indices()
        self._to_row_order = csr.data.astype(np.int64) - 1  # CSC entry index of each CSR position
        self._upper = (csr.indptr.astype(np.intc), csr.indices.astype(np.intc))
        self._upper_row_of = csr.indices.astype(np.int64)
        self._ldlt = None

    @property
    def nnz(self) -> int:
        return int(self._indptr[-1])

    def matrix(self) -> sp.csr_array:
        """``L`` as a scipy CSR array (for tests and inspection)."""
        return sp.csc_array((self._data, self._indices, self._indptr), shape=(self.n, self.n)).tocsr()

    def set_column_scaling(self, scale: np.ndarray) -> None:
        """Replace the off-diagonal entries by ``S_ij · scale_j`` (``S`` as given to the constructor).

        SSOR with another ω, or another diagonal, only rescales columns: ``(D/ω + S) (D/ω)⁻¹ = I + S ω D⁻¹``.
        """
        self._data[self._off_pos] = self._off_base * np.asarray(scale, dtype=np.float64)[self._off_col]

    def prepare_ldlt(self, pivots: np.ndarray) -> None:
        """Set ``D`` for :meth:`solve_ldlt` (call again after :meth:`set_column_scaling`)."""
        pivots = np.asarray(pivots, dtype=np.float64)
        if pivots.shape != (self.n,) or not (pivots > 0).all():
            raise ValueError("`pivots` must be a positive vector of length n")
        # SuperLU keeps U's diagonal in L's diagonal slots and takes L as unit lower: L D Lᵀ = L · (D Lᵀ)
        lower = self._data.copy()
        lower[self._indptr[:-1]] = pivots
        off = self._data[self._off_pos][self._to_row_order]
        upper = off * pivots[self._upper_row_of]
        self._ldlt = (lower, upper, pivots)

    def solve_ldlt(self, r: np.ndarray) -> np.ndarray:
        """``(L D Lᵀ)⁻¹ r`` with ``D`` from :meth:`prepare_ldlt`: both sweeps in one SuperLU call."""
        if self._ldlt is None:
            raise RuntimeError("call prepare_ldlt(pivots) first")
        lower, upper, pivots = self._ldlt
        r = np.asarray(r, dtype=np.float64)
        if _GSTRS is not None:
            indptr_u, indices_u = self._upper
            x, info = _GSTRS(
                "N", self.n, self.nnz, lower, self._indices, self._indptr,
                self.n, upper.size, upper, indices_u, indptr_u, r,
            )  # fmt: skip
            if info == 0:
                return x
        y = self.solve(r)  # pragma: no cover - only without the private kernel
        y = y / (pivots if y.ndim == 1 else pivots[:, None])  # pragma: no cover
        return self.solve(y, transpose=True)  # pragma: no cover

    def solve(self, r: np.ndarray, transpose: bool = False) -> np.ndarray:
        """``L⁻¹ r`` (or ``L⁻ᵀ r``) for a vector or an ``(n, k)`` block of right-hand sides."""
        r = np.asarray(r, dtype=np.float64)
        if _GSTRS is not None:
            x, info = _GSTRS(
                "T" if transpose else "N",
                self.n,
                self.nnz,
                self._data,
                self._indices,
                self._indptr,
                self.n,
                0,
                *self._empty,
                r,
            )
            if info == 0:
                return x
        return self._solve_public(r, transpose)  # pragma: no cover - only without the private kernel

    def _solve_public(self, r: np.ndarray, transpose: bool) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sp.SparseEfficiencyWarning)
            if transpose:  # the CSR view of Lᵀ shares L's CSC arrays
                upper = sp.csr_array((self._data, self._indices, self._indptr), shape=(self.n, self.n))
                return spla.spsolve_triangular(upper, r, lower=False, unit_diagonal=True, overwrite_A=True)
            lower = sp.csc_array((self._data, self._indices, self._indptr), shape=(self.n, self.n))
            return spla.spsolve_triangular(lower, r, lower=True, unit_diagonal=True, overwrite_A=True)


def row_levels(strictly_lower: sp.csr_array | sp.csr_matrix) -> np.ndarray:
    """Level of every row of a strictly lower-triangular pattern: 0 for rows without entries, else
    ``1 + max(level of the rows j with S_ij != 0)``.

    Computed wavefront by wavefront (Kahn's algorithm, vectorised over each front), so the cost is
    ``O(nnz)`` plus a few numpy calls per level.
    """
    S = sp.csr_array(strictly_lower)
    n = S.shape[0]
    remaining = np.diff(S.indptr).astype(np.int64)
    dependents = S.T.tocsr()  # row j lists the rows i that depend on j
    dependents.sort_indices()
    level = np.full(n, -1, dtype=np.int64)
    front = np.flatnonzero(remaining == 0)
    current = 0
    while front.size:
        level[front] = current
        starts = dependents.indptr[front]
        lengths = dependents.indptr[front + 1] - starts
        total = int(lengths.sum())
        if total == 0:
            break
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        rows = dependents.indices[np.arange(total) + offsets]
        rows, hits = np.unique(rows, return_counts=True)
        remaining[rows] -= hits
        front = rows[remaining[rows] == 0]
        current += 1
    if (level < 0).any():  # pragma: no cover - impossible for a strictly lower pattern
        raise ValueError("the pattern is not strictly lower triangular")
    return level
