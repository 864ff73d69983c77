"""Users' grid systems: recognise a nearest-neighbour stencil in a scipy matrix, or take it as arrays.

A simulation code that discretises ``-∇·(k ∇u) = f`` on a 2D or 3D grid of cells with a 5-point (2D) or
7-point (3D) stencil stores its matrix in one of two ways: as a sparse matrix on the unknowns, or as
coefficient fields over the grid (Bridson, *Fluid Simulation for Computer Graphics*, §5.3: ``Adiag``,
``Aplusi``, ``Aplusj``). :class:`GridStencil` is the latter, and the one grid operator every sciml solver of
grid systems runs on:

* ``diag`` — the diagonal as a field of the grid's shape, positive on the unknowns, 0 elsewhere;
* ``couplings[a]`` — per axis ``a``, the coupling between cell ``i`` and ``i + e_a``, the *negated*
  off-diagonal entry ``−A[i, i+e_a]`` (0 where either cell is no unknown); in the last layer along ``a`` the
  coupling to the first layer — nonzero only on a periodic axis (the wrap-around), 0 otherwise.

:meth:`GridStencil.from_matrix` reads these fields off a user's scipy matrix and refuses anything that is
not such a stencil (with the row, the cells and what was expected); :meth:`PoissonGrid.stencil` gives the
same object for sciml's own grids, identical to ``GridStencil.from_matrix(grid.matrix(), grid.shape,
grid.fluid)`` (tested). Accepted are symmetric, weakly diagonally dominant stencils with non-positive
off-diagonals (the diffusion operators of simulation codes: constant or variable coefficients, obstacles,
Dirichlet and Neumann boundaries, periodic axes), which are positive semi-definite.

Null space (pure Neumann, periodic). A connected group of unknowns whose rows all sum to zero (no Dirichlet
boundary) makes the operator singular with the constant on the group in its null space; each such group is
one entry of :meth:`GridStencil.null_space`. The solvers then follow what simulation codes do: the
right-hand side must be consistent (sum to zero over each group, up to the solve tolerance; otherwise they
report it), iterates are kept orthogonal to the null space, and the solution returned is the one with
**zero mean over each group** (the minimum-norm solution; add a constant to pin a reference value).
:meth:`GridStencil.project` and :meth:`GridStencil.null_component` are that one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["GridStencil", "NullSpace", "as_grid_stencil", "ROW_SUM_TOLERANCE"]

#: a row whose sum is at most this times its diagonal counts as zero-sum (no Dirichlet contact): round-off
#: level (a 5/7-point row sums with an error of a few float64 eps ≈ 2e-16 of its diagonal), so that a
#: regularised operator such as ``L + 1e-12 I`` counts as the nonsingular matrix it is
ROW_SUM_TOLERANCE = 1e-13


class NullSpace(NamedTuple):
    """The constant null space of a grid stencil.

    Attributes:
        labels: int64 field of the grid shape: the group index ``0..count-1`` of every unknown in a
            zero-row-sum connected group, ``-1`` elsewhere.
        count: number of such groups (the null space's dimension); 0 for a nonsingular system.
        sizes: unknowns per group, shape ``(count,)``.
    """

    labels: np.ndarray
    count: int
    sizes: np.ndarray


@dataclass(frozen=True, eq=False)
class GridStencil:
    """A symmetric nearest-neighbour operator on a grid of cells, as coefficient fields.

    Args:
        diag: the diagonal, an array of the grid's shape (2D or 3D; 1D works too); ``> 0`` marks the
            unknowns, ``0`` the cells that are no unknowns (solids, Dirichlet cells, masked out).
        couplings: one array of the grid's shape per axis: ``couplings[a][i] = −A[i, i + e_a]`` (``>= 0``);
            the last layer couples to the first (periodic axes, at least 3 cells), else 0.

    Raises:
        ValueError: shapes that disagree, non-finite or negative entries, couplings that touch a cell with
            ``diag == 0`` or cross the last layer, or a row whose couplings exceed its diagonal (not
            diagonally dominant: not a diffusion stencil).
    """

    diag: np.ndarray
    couplings: tuple[np.ndarray, ...]
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        diag = np.array(self.diag, dtype=np.float64)
        if diag.ndim < 1 or diag.size == 0:
            raise ValueError(f"`diag` must be a non-empty array of the grid shape, got shape {diag.shape}")
        couplings = tuple(np.array(c, dtype=np.float64) for c in self.couplings)
        if len(couplings) != diag.ndim:
            raise ValueError(
                f"`couplings` must hold one array per grid axis ({diag.ndim}), got {len(couplings)}"
            )
        for a, c in enumerate(couplings):
            if c.shape != diag.shape:
                raise ValueError(
                    f"`couplings[{a}]` has shape {c.shape}, expected the grid shape {diag.shape}"
                )
        for name, arr in [("diag", diag)] + [(f"couplings[{a}]", c) for a, c in enumerate(couplings)]:
            if not np.isfinite(arr).all():
                raise ValueError(f"`{name}` must be finite (it holds NaN or inf)")
            if (arr < 0).any():
                raise ValueError(
                    f"`{name}` has negative entries; a diffusion stencil has a positive diagonal and "
                    "couplings >= 0 (off-diagonal entries <= 0)"
                )
        unknown = diag > 0
        for a, c in enumerate(couplings):
            last = [slice(None)] * diag.ndim
            last[a] = -1
            if diag.shape[a] <= 2 and (c[tuple(last)] != 0).any():
                raise ValueError(
                    f"`couplings[{a}]` is nonzero in the last layer along axis {a}, which has only "
                    f"{diag.shape[a]} cells: a periodic axis needs at least 3"
                )
            if (c > 0).any():
                # the cell each coupling reaches: i + e_a, wrapping to the first layer from the last
                reached = np.roll(unknown, -1, axis=a)
                if ((c > 0) & ~(unknown & reached)).any():
                    raise ValueError(
                        f"`couplings[{a}]` couples a cell whose `diag` is 0 (no unknown); couplings must "
                        "be 0 unless both cells are unknowns"
                    )
        rowsum = _row_sums(diag, couplings)
        bad = rowsum < -1e-12 * np.maximum(diag, 1e-300)
        if bad.any():
            cell = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"the stencil is not diagonally dominant at cell {cell}: diag {diag[cell]:.6g} < the sum of "
                f"its couplings {diag[cell] - rowsum[cell]:.6g}; expected a diffusion stencil (symmetric, "
                "off-diagonals <= 0, each diagonal >= the sum of the off-diagonal magnitudes)"
            )
        diag.setflags(write=False)
        for c in couplings:
            c.setflags(write=False)
        object.__setattr__(self, "diag", diag)
        object.__setattr__(self, "couplings", couplings)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_matrix(cls, A: Any, shape: tuple[int, ...], mask: np.ndarray | None = None) -> GridStencil:
        """Recognise the grid stencil in a sparse matrix on the unknowns of a grid.

        Args:
            A: the system matrix, scipy sparse (any format; CSR is cheapest) or a dense 2-D array, acting on
                the vector of unknowns in C order of the grid (row-major: the last axis varies fastest).
            shape: cells per axis, e.g. ``(ny, nx)`` or ``(nz, ny, nx)``, with ``prod(shape) >= A.shape[0]``.
            mask: boolean array of ``shape`` marking the cells that are unknowns (rows of ``A``, in C order);
                default every cell (then ``A`` must have ``prod(shape)`` rows).

        Returns:
            The :class:`GridStencil`; ``from_matrix(A, ...).matrix()`` equals ``A``. ``A`` itself is not
            modified (explicit zeros and duplicates in its pattern stay where they are).

        Raises:
            TypeError: ``A`` is not a sparse matrix or 2-D array, or it is complex.
            ValueError: sizes that disagree, a nonsymmetric matrix, an entry that couples two cells that are
                not axis neighbours (naming the row, the cells and the expected 5/7-point stencil; periodic
                wrap-around couplings are accepted), a positive off-diagonal, a non-positive diagonal, or
                rows that are not diagonally dominant.
        """
        if isinstance(A, np.ndarray) and A.ndim == 2:
            A = sp.csr_array(A)
        if not sp.issparse(A):
            raise TypeError(f"`A` must be a scipy sparse matrix or a 2-D array, got {type(A).__name__}")
        if A.dtype.kind not in "biuf":
            raise TypeError(f"`A` must be a real matrix, got dtype {A.dtype}; a diffusion stencil is real")
        shape = tuple(int(n) for n in shape)
        if not shape or any(n < 1 for n in shape):
            raise ValueError(f"`shape` must be a non-empty tuple of positive cell counts, got {shape}")
        size = int(np.prod(shape))
        if mask is None:
            mask = np.ones(shape, dtype=bool)
        mask = np.asarray(mask)
        if mask.shape != shape:
            raise ValueError(f"`mask` has shape {mask.shape} but `shape` is {shape}")
        mask = mask.astype(bool)
        n = int(mask.sum())
        if A.shape != (n, n):
            hint = "" if n != size else "; pass `mask` (the cells that are unknowns) when some cells are not"
            raise ValueError(
                f"`A` has shape {A.shape} but the grid {shape} has {n} unknown cells, so A must be "
                f"{n} x {n}{hint}"
            )
        A = sp.csr_array(A, dtype=np.float64, copy=True)  # a copy: the in-place clean-up below is ours
        A.sum_duplicates()
        A.eliminate_zeros()
        if not np.isfinite(A.data).all():
            raise ValueError("`A` has non-finite entries")
        scale = float(np.abs(A.data).max()) if A.nnz else 1.0
        asym = abs(A - A.T)
        if asym.nnz and asym.max() > 1e-12 * scale:
            raise ValueError(
                f"`A` is not symmetric (max |A - Aᵀ| = {asym.max():.3e}, max |A| = {scale:.3e}); expected a "
                "symmetric diffusion stencil"
            )
        coo = A.tocoo()
        position = np.flatnonzero(mask)  # unknown -> flat cell index
        coords = np.stack(np.unravel_index(position, shape), axis=1)  # unknown -> cell coordinates
        off = coo.row != coo.col
        rows, cols, vals = coo.row[off], coo.col[off], coo.data[off]
        delta = coords[cols] - coords[rows]
        extent = np.asarray(shape) - 1
        # a periodic wrap-around: one axis differs by ±(n_a − 1), n_a >= 3; recorded as a step of ∓1
        wraps = (np.abs(delta) == extent) & (extent >= 2) & ((delta != 0).sum(axis=1) == 1)[:, None]
        delta = np.where(wraps, -np.sign(delta), delta)
        neighbour = np.abs(delta).sum(axis=1) == 1
        if not neighbour.all():
            k = int(np.flatnonzero(~neighbour)[0])
            ci, cj = tuple(coords[rows[k]].tolist()), tuple(coords[cols[k]].tolist())
            raise ValueError(
                f"`A` is not a {2 * len(shape) + 1}-point grid stencil on shape {shape}: row {rows[k]} (cell "
                f"{ci}) couples with column {cols[k]} (cell {cj}), not an axis neighbour. Expected every row "
                f"to couple a cell only with its {2 * len(shape)} axis neighbours (periodic wrap-around "
                "allowed; C-order unknowns, `mask` marking them)"
            )
        if (vals > 0).any():
            k = int(np.flatnonzero(vals > 0)[0])
            raise ValueError(
                f"`A` has a positive off-diagonal entry A[{rows[k]}, {cols[k]}] = {vals[k]:.6g}; expected a "
                "diffusion stencil (off-diagonal entries <= 0)"
            )
        diag_vec = A.diagonal()
        if (diag_vec <= 0).any():
            k = int(np.flatnonzero(diag_vec <= 0)[0])
            raise ValueError(
                f"`A` has a non-positive diagonal entry A[{k}, {k}] = {diag_vec[k]:.6g} (cell "
                f"{tuple(coords[k].tolist())}); every unknown needs a positive diagonal"
            )
        diag = np.zeros(size)
        diag[position] = diag_vec
        couplings = []
        forward = delta.sum(axis=1) == 1  # the entry (i, i + e_a); from the last layer: the wrap-around
        for a in range(len(shape)):
            on = forward & (delta[:, a] == 1)
            c = np.zeros(size)
            c[position[rows[on]]] = -vals[on]
            couplings.append(c.reshape(shape))
        return cls(diag.reshape(shape), tuple(couplings))

    # ----------------------------------------------------------------- geometry
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.diag.shape)

    @property
    def ndim(self) -> int:
        return self.diag.ndim

    @property
    def periodic_axes(self) -> tuple[int, ...]:
        """Axes with a wrap-around coupling (a nonzero last layer of ``couplings[a]``)."""
        out = []
        for a, c in enumerate(self.couplings):
            last = [slice(None)] * self.ndim
            last[a] = -1
            if (c[tuple(last)] != 0).any():
                out.append(a)
        return tuple(out)

    @property
    def fluid(self) -> np.ndarray:
        """Boolean mask of the unknowns (``diag > 0``); the name follows :class:`PoissonGrid`."""
        return self.diag > 0

    @property
    def n_unknowns(self) -> int:
        return int(self.fluid.sum())

    # ----------------------------------------------------------------- the operator
    def matrix(self) -> sp.csr_array:
        """The operator as a scipy CSR matrix on the unknowns (C order)."""
        fluid = self.fluid
        index = np.full(self.shape, -1, dtype=np.int64)
        index[fluid] = np.arange(int(fluid.sum()))
        rows, cols, vals = [index[fluid]], [index[fluid]], [self.diag[fluid]]
        for a, c in enumerate(self.couplings):
            src = [slice(None)] * self.ndim
            dst = [slice(None)] * self.ndim
            src[a], dst[a] = slice(None, -1), slice(1, None)
            last = [slice(None)] * self.ndim
            first = [slice(None)] * self.ndim
            last[a], first[a] = slice(-1, None), slice(0, 1)
            pairs = [(index[tuple(src)], index[tuple(dst)], c[tuple(src)])]
            pairs.append((index[tuple(last)], index[tuple(first)], c[tuple(last)]))  # periodic wrap-around
            for ci, cj, w in pairs:
                on = w > 0
                for r, t in ((ci[on], cj[on]), (cj[on], ci[on])):
                    rows.append(r)
                    cols.append(t)
                    vals.append(-w[on])
        n = int(fluid.sum())
        return sp.csr_array(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """The operator applied matrix-free to fields ``u`` of shape ``(..., *shape)`` (0 off unknowns)."""
        if tuple(u.shape[-self.ndim :]) != self.shape:
            raise ValueError(f"`u` must end in the grid shape {self.shape}, got {tuple(u.shape)}")
        diag = torch.tensor(self.diag, dtype=u.dtype, device=u.device)
        u = u * (diag > 0)
        out = diag * u
        for a, c in enumerate(self.couplings):
            c = torch.tensor(c, dtype=u.dtype, device=u.device)
            dim = a - self.ndim
            n = self.shape[a]
            if n > 1:
                cc = c.narrow(dim, 0, n - 1)
                out.narrow(dim, 0, n - 1).sub_(cc * u.narrow(dim, 1, n - 1))
                out.narrow(dim, 1, n - 1).sub_(cc * u.narrow(dim, 0, n - 1))
                cw = c.narrow(dim, n - 1, 1)  # periodic wrap-around (0 otherwise)
                out.narrow(dim, n - 1, 1).sub_(cw * u.narrow(dim, 0, 1))
                out.narrow(dim, 0, 1).sub_(cw * u.narrow(dim, n - 1, 1))
        return out

    def row_sums(self) -> np.ndarray:
        """``A·1`` as a field: 0 inside a pure-Neumann region, positive next to Dirichlet boundaries."""
        return _row_sums(self.diag, self.couplings)

    # ----------------------------------------------------------------- vectors and fields
    def to_vector(self, u: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Values on the unknowns of fields ``(..., *shape)`` as vectors ``(..., n_unknowns)`` (C order)."""
        lead = u.shape[: u.ndim - self.ndim]
        flat = u.reshape(*lead, -1)
        idx = np.flatnonzero(self.fluid)
        return flat[..., torch.as_tensor(idx, device=u.device)] if torch.is_tensor(u) else flat[..., idx]

    def to_field(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Vectors of unknowns ``(..., n_unknowns)`` as fields ``(..., *shape)``, zero off the unknowns."""
        lead = x.shape[:-1]
        idx = np.flatnonzero(self.fluid)
        if torch.is_tensor(x):
            out = x.new_zeros(*lead, int(np.prod(self.shape)))
            out[..., torch.as_tensor(idx, device=x.device)] = x
        else:
            out = np.zeros((*lead, int(np.prod(self.shape))), dtype=x.dtype)
            out[..., idx] = x
        return out.reshape(*lead, *self.shape)

    # ----------------------------------------------------------------- null space
    def null_space(self) -> NullSpace:
        """The groups of unknowns whose constant lies in the null space (see the module docstring).

        A group is a connected component of the coupling graph; it is singular when every row in it sums to
        at most :data:`ROW_SUM_TOLERANCE` times its diagonal.
        """
        if "null" not in self._cache:
            n = self.n_unknowns
            count, comp = self._components()
            rowsum = self.to_vector(self.row_sums())
            anchored = np.zeros(count, dtype=bool)
            np.logical_or.at(anchored, comp, rowsum > ROW_SUM_TOLERANCE * self.to_vector(self.diag))
            singular = np.flatnonzero(~anchored)
            relabel = np.full(count, -1, dtype=np.int64)
            relabel[singular] = np.arange(singular.size)
            labels_vec = relabel[comp] if n else np.zeros(0, dtype=np.int64)
            labels = np.full(self.shape, -1, dtype=np.int64)
            labels[self.fluid] = labels_vec
            sizes = np.bincount(labels_vec[labels_vec >= 0], minlength=singular.size)
            labels.setflags(write=False)
            self._cache["null"] = NullSpace(labels, int(singular.size), sizes)
        return self._cache["null"]

    def _components(self) -> tuple[int, np.ndarray]:
        """Connected components of the coupling graph: (count, component of every unknown, C order)."""
        fluid = self.fluid
        # every pair of neighbouring unknowns coupled (the usual case): label the mask (fast)
        all_coupled = True
        for a, c in enumerate(self.couplings):
            src = [slice(None)] * self.ndim
            dst = [slice(None)] * self.ndim
            src[a], dst[a] = slice(None, -1), slice(1, None)
            pair = fluid[tuple(src)] & fluid[tuple(dst)]
            all_coupled &= bool((c[tuple(src)][pair] > 0).all())
        if all_coupled and not self.periodic_axes:
            from scipy import ndimage

            labels, count = ndimage.label(fluid, structure=ndimage.generate_binary_structure(self.ndim, 1))
            return int(count), labels[fluid] - 1
        from scipy.sparse.csgraph import connected_components

        count, comp = connected_components(self.matrix(), directed=False)
        return int(count), comp

    def singular_components(self) -> int:
        """Number of connected groups of unknowns without a Dirichlet contact (the null space's dimension)."""
        return self.null_space().count

    def _null_parts(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-group means of field ``v`` and the field of those means (0 outside the groups)."""
        ns = self.null_space()
        inside = ns.labels >= 0
        means = np.bincount(ns.labels[inside], weights=v[inside], minlength=ns.count) / np.maximum(
            ns.sizes, 1
        )
        field_ = np.zeros(self.shape)
        field_[inside] = means[ns.labels[inside]]
        return means, field_

    def _field(self, v: Any, name: str) -> tuple[np.ndarray, bool]:
        arr = v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)
        if arr.shape == self.shape:
            return arr.astype(np.float64) * self.fluid, True
        if arr.shape == (self.n_unknowns,):
            return self.to_field(arr.astype(np.float64)), False
        raise ValueError(
            f"`{name}` must be a field of shape {self.shape} or a vector of the {self.n_unknowns} unknowns, "
            f"got shape {arr.shape}"
        )

    def null_component(self, b: Any) -> float:
        """2-norm of the part of ``b`` (field or vector of unknowns) in the null space.

        ``b`` is consistent (``A x = b`` solvable) exactly when this is 0; no solver can bring the residual
        below it.
        """
        field_, _ = self._field(b, "b")
        means, _ = self._null_parts(field_)
        return float(np.sqrt(np.sum(self.null_space().sizes * means**2)))

    def project(self, v: Any) -> Any:
        """``v`` with its null-space part removed (zero mean over each singular group); numpy in, numpy out
        in the form of ``v`` (field or vector of unknowns). Identity for a nonsingular system."""
        field_, is_field = self._field(v, "v")
        if self.null_space().count == 0:
            out = field_
        else:
            out = field_ - self._null_parts(field_)[1]
        return out if is_field else self.to_vector(out)


def _row_sums(diag: np.ndarray, couplings: tuple[np.ndarray, ...]) -> np.ndarray:
    out = diag.copy()
    for a, c in enumerate(couplings):
        out -= c
        lower = [slice(None)] * diag.ndim
        upper = [slice(None)] * diag.ndim
        lower[a], upper[a] = slice(1, None), slice(None, -1)
        out[tuple(lower)] -= c[tuple(upper)]
        first = [slice(None)] * diag.ndim
        last = [slice(None)] * diag.ndim
        first[a], last[a] = 0, -1
        out[tuple(first)] -= c[tuple(last)]  # periodic wrap-around (0 otherwise)
    return out * (diag > 0)


def as_grid_stencil(system: Any, shape: tuple[int, ...] | None = None, mask: Any = None) -> GridStencil:
    """The one entry point for grid systems: a :class:`GridStencil` from whatever the user holds.

    Args:
        system: a :class:`GridStencil`, a :class:`~sciml.problems.linear.PoissonGrid`, or a scipy sparse
            matrix / 2-D array on the unknowns (then ``shape`` is required, ``mask`` optional; see
            :meth:`GridStencil.from_matrix`).
        shape, mask: for a matrix only.

    Raises:
        TypeError: another kind of ``system``, or ``shape``/``mask`` given with a grid or stencil.
        ValueError: a matrix without ``shape``, or one that is not a grid stencil (from
            :meth:`GridStencil.from_matrix`).
    """
    from sciml.problems.linear.grid import PoissonGrid

    if isinstance(system, (GridStencil, PoissonGrid)):
        if shape is not None or mask is not None:
            raise TypeError(
                "`shape` and `mask` are for a matrix; a PoissonGrid or GridStencil already carries them"
            )
        return system if isinstance(system, GridStencil) else system.stencil()
    if sp.issparse(system) or (isinstance(system, np.ndarray) and system.ndim == 2):
        if shape is None:
            raise ValueError(
                "a matrix needs the grid `shape` (cells per axis, C order of the unknowns), e.g. "
                "shape=(ny, nx), and `mask` when not every cell is an unknown"
            )
        return GridStencil.from_matrix(system, shape, mask)
    raise TypeError(
        "the system must be a PoissonGrid, a GridStencil (coefficient arrays) or a scipy sparse matrix with "
        f"`shape`, got {type(system).__name__}"
    )
