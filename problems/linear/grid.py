"""Poisson on a cell grid: the one stencil behind every grid Poisson system in sciml.

``PoissonGrid`` discretises ``-Δu = f`` on a box with a d-dimensional grid of cells (d = 1, 2, 3). Each
cell is FLUID (an unknown), SOLID (an obstacle: zero-flux, Neumann) or DIRICHLET (a prescribed value, e.g.
the air cells of a free-surface pressure projection). Each of the 2d domain walls is ``"dirichlet"`` or
``"neumann"``. The same definition yields

* :meth:`PoissonGrid.matrix` — a scipy CSR matrix acting on the vector of fluid unknowns (C order), and
* :meth:`PoissonGrid.apply` — the same operator matrix-free in torch, acting on fields of the grid's
  shape with any leading batch dimensions,

and the two agree to round-off (tested). The operator is the negative Laplacian, so it is symmetric
positive definite whenever every connected group of fluid cells touches a Dirichlet cell or wall
(:meth:`PoissonGrid.singular_components` finds those that do not).

Geometry: ``wall_distance`` is the distance, in spacings, from the outermost unknowns to the wall.
0.5 (default) is the cell-centred finite-volume grid of a fluid pressure projection (Bridson, *Fluid
Simulation for Computer Graphics*, ch. 5); 1.0 is the classic vertex-centred 5-point (7-point in 3D)
Laplacian on interior nodes, whose boundary nodes carry the Dirichlet values. A Dirichlet wall at distance
θ·h enters through a ghost value (weight ``1/(θ h²)``), which keeps both variants second-order accurate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["FLUID", "SOLID", "DIRICHLET", "PoissonGrid"]

#: cell kind: an unknown of the system
FLUID = 0
#: cell kind: an obstacle (zero flux across its faces)
SOLID = 1
#: cell kind: a prescribed value
DIRICHLET = 2
WallKind = Literal["dirichlet", "neumann"]


@dataclass(frozen=True, eq=False)
class PoissonGrid:
    """A grid of cells on which ``-Δu = f`` is discretised (see the module docstring).

    Args:
        shape: cells per dimension, e.g. ``(64, 64)`` or ``(32, 32, 32)``.
        lower, upper: the box; default the unit box.
        cells: an integer array of ``shape`` with FLUID/SOLID/DIRICHLET; default all fluid.
        walls: per dimension a pair ``(low, high)`` of ``"dirichlet"``/``"neumann"``, or one kind for all
            walls; default all Dirichlet.
        wall_distance: distance from the outermost cell centres to the wall, in spacings (0.5 or 1.0
            typically; any value > 0).

    Raises:
        ValueError: for an empty or non-positive shape, a ``cells`` array of another shape or with other
            values, unknown wall kinds, or ``lower >= upper``.
    """

    shape: tuple[int, ...]
    lower: tuple[float, ...] | None = None
    upper: tuple[float, ...] | None = None
    cells: np.ndarray | None = field(default=None, repr=False)
    walls: WallKind | tuple[tuple[WallKind, WallKind], ...] = "dirichlet"
    wall_distance: float = 0.5

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        if not shape or any(n < 1 for n in shape):
            raise ValueError(f"`shape` must be a non-empty tuple of positive cell counts, got {self.shape}")
        d = len(shape)
        lower = tuple(float(v) for v in (self.lower if self.lower is not None else (0.0,) * d))
        upper = tuple(float(v) for v in (self.upper if self.upper is not None else (1.0,) * d))
        if len(lower) != d or len(upper) != d or any(lo >= hi for lo, hi in zip(lower, upper)):
            raise ValueError(
                f"`lower` and `upper` must have {d} entries with lower < upper, got {lower}, {upper}"
            )
        walls = self.walls
        if isinstance(walls, str):
            walls = ((walls, walls),) * d
        walls = tuple(tuple(pair) for pair in walls)
        if len(walls) != d or any(len(p) != 2 or not {*p} <= {"dirichlet", "neumann"} for p in walls):
            raise ValueError(
                f"`walls` must be 'dirichlet', 'neumann' or {d} pairs of them (low, high), got {self.walls!r}"
            )
        cells = np.zeros(shape, dtype=np.int8) if self.cells is None else np.asarray(self.cells)
        if cells.shape != shape:
            raise ValueError(f"`cells` has shape {cells.shape} but the grid shape is {shape}")
        if not np.isin(cells, (FLUID, SOLID, DIRICHLET)).all():
            raise ValueError("`cells` may only hold FLUID (0), SOLID (1) or DIRICHLET (2)")
        if not self.wall_distance > 0:
            raise ValueError(f"`wall_distance` must be positive, got {self.wall_distance}")
        cells = cells.astype(np.int8, copy=True)
        cells.setflags(write=False)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        object.__setattr__(self, "walls", walls)
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "wall_distance", float(self.wall_distance))

    # ----------------------------------------------------------------- geometry
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Cell spacing per dimension."""
        t = self.wall_distance
        return tuple((hi - lo) / (n - 1 + 2 * t) for lo, hi, n in zip(self.lower, self.upper, self.shape))

    def axes(self) -> list[np.ndarray]:
        """Cell-centre coordinates along each dimension."""
        t = self.wall_distance
        return [lo + (t + np.arange(n)) * h for lo, n, h in zip(self.lower, self.shape, self.spacing)]

    def coordinates(self) -> np.ndarray:
        """Cell-centre coordinates, array of shape ``(*shape, ndim)``."""
        return np.stack(np.meshgrid(*self.axes(), indexing="ij"), axis=-1)

    @property
    def fluid(self) -> np.ndarray:
        """Boolean mask of the unknowns."""
        return self.cells == FLUID

    @property
    def n_unknowns(self) -> int:
        return int(self.fluid.sum())

    def with_cells(self, cells: np.ndarray) -> PoissonGrid:
        """The same grid with another cell layout (obstacles, air)."""
        return replace(self, cells=cells)

    # ----------------------------------------------------------------- stencil
    def _face_weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per dimension, the weights of the low and high face of every cell (0 for closed faces).

        A face to a fluid or Dirichlet cell has weight 1/h²; to a solid cell or a Neumann wall 0; to a
        Dirichlet wall 1/(θ h²) with θ the wall distance.
        """
        open_cell = self.cells != SOLID
        weights = []
        for axis, (h, (low, high)) in enumerate(zip(self.spacing, self.walls)):
            inv = 1.0 / h**2
            wall = {"dirichlet": inv / self.wall_distance, "neumann": 0.0}
            w_lo = np.empty(self.shape)
            w_hi = np.empty(self.shape)
            inner = [slice(None)] * self.ndim
            inner[axis] = slice(1, None)
            w_lo[tuple(inner)] = inv * np.delete(open_cell, -1, axis=axis)
            inner[axis] = slice(None, -1)
            w_hi[tuple(inner)] = inv * np.delete(open_cell, 0, axis=axis)
            edge = [slice(None)] * self.ndim
            edge[axis] = 0
            w_lo[tuple(edge)] = wall[low]
            edge[axis] = -1
            w_hi[tuple(edge)] = wall[high]
            weights.append((w_lo, w_hi))
        return weights

    def diagonal(self) -> np.ndarray:
        """The operator's diagonal as a field (0 outside the fluid)."""
        return sum(lo + hi for lo, hi in self._face_weights()) * self.fluid

    def matrix(self) -> sp.csr_matrix:
        """The operator as a scipy CSR matrix on the fluid unknowns (C order of :meth:`to_vector`)."""
        fluid = self.fluid
        index = np.full(self.shape, -1, dtype=np.int64)
        index[fluid] = np.arange(int(fluid.sum()))
        rows, cols, vals = [index[fluid]], [index[fluid]], [self.diagonal()[fluid]]
        for axis, h in enumerate(self.spacing):
            a = [slice(None)] * self.ndim
            b = [slice(None)] * self.ndim
            a[axis], b[axis] = slice(None, -1), slice(1, None)
            ia, ib = index[tuple(a)], index[tuple(b)]
            both = (ia >= 0) & (ib >= 0)
            for r, c in ((ia[both], ib[both]), (ib[both], ia[both])):
                rows.append(r)
                cols.append(c)
                vals.append(np.full(r.size, -1.0 / h**2))
        n = int(fluid.sum())
        return sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )

    def stencil(self):
        """The operator as a :class:`~sciml.problems.linear.stencil_matrix.GridStencil` (coefficient fields).

        Identical to ``GridStencil.from_matrix(self.matrix(), self.shape, self.fluid)``; the form every grid
        solver (CG on its matrix, DCDM, the TorchScript export) reads.
        """
        from sciml.problems.linear.stencil_matrix import GridStencil

        fluid = self.fluid
        couplings = []
        for axis, h in enumerate(self.spacing):
            c = np.zeros(self.shape)
            src = [slice(None)] * self.ndim
            dst = [slice(None)] * self.ndim
            src[axis], dst[axis] = slice(None, -1), slice(1, None)
            c[tuple(src)] = (fluid[tuple(src)] & fluid[tuple(dst)]) / h**2
            couplings.append(c)
        return GridStencil(self.diagonal(), tuple(couplings))

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """The operator applied matrix-free to fields ``u`` of shape ``(..., *shape)``.

        Values of ``u`` outside the fluid are ignored (treated as zero); the result is zero there.
        """
        if tuple(u.shape[-self.ndim :]) != self.shape:
            raise ValueError(f"`u` must end in the grid shape {self.shape}, got {tuple(u.shape)}")
        diag, fluid = self._torch_fields(u.dtype, u.device)
        u = u * fluid
        out = diag * u
        for axis, h in enumerate(self.spacing):
            dim = u.ndim - self.ndim + axis
            n = self.shape[axis]
            zero = torch.zeros_like(u.narrow(dim, 0, 1))
            lower = torch.cat([zero, u.narrow(dim, 0, n - 1)], dim=dim)
            upper = torch.cat([u.narrow(dim, 1, n - 1), zero], dim=dim)
            out = out - (lower + upper) / h**2
        return out * fluid

    def _torch_fields(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = (dtype, str(device))
        cache = self.__dict__.setdefault("_torch_cache", {})
        if key not in cache:
            cache[key] = (
                torch.as_tensor(self.diagonal(), dtype=dtype, device=device),
                torch.as_tensor(self.fluid, dtype=dtype, device=device),
            )
        return cache[key]

    # ----------------------------------------------------------------- vectors and fields
    def to_vector(self, u: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Fluid values of fields ``(..., *shape)`` as vectors ``(..., n_unknowns)`` (C order)."""
        lead = u.shape[: u.ndim - self.ndim]
        flat = u.reshape(*lead, -1)
        idx = np.flatnonzero(self.fluid)
        return flat[..., torch.as_tensor(idx, device=u.device)] if torch.is_tensor(u) else flat[..., idx]

    def to_field(self, x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Vectors of unknowns ``(..., n_unknowns)`` as fields ``(..., *shape)``, zero outside the fluid."""
        lead = x.shape[:-1]
        idx = np.flatnonzero(self.fluid)
        if torch.is_tensor(x):
            out = x.new_zeros(*lead, int(np.prod(self.shape)))
            out[..., torch.as_tensor(idx, device=x.device)] = x
        else:
            out = np.zeros((*lead, int(np.prod(self.shape))), dtype=x.dtype)
            out[..., idx] = x
        return out.reshape(*lead, *self.shape)

    # ----------------------------------------------------------------- boundary data
    def dirichlet_rhs(self, g: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """The right-hand-side field that carries Dirichlet values ``g`` into the system.

        ``g`` maps points of shape ``(..., ndim)`` to values ``(...)``; it is evaluated at the centres of
        Dirichlet cells next to fluid, and on Dirichlet walls (at the wall, level with each boundary
        cell). Add the result to the source field ``f`` before solving.
        """
        x = self.coordinates()
        rhs = np.zeros(self.shape)
        fluid = self.fluid
        dirichlet = self.cells == DIRICHLET
        g_cells = np.where(dirichlet, g(x), 0.0) if dirichlet.any() else None
        for axis, (h, (low, high)) in enumerate(zip(self.spacing, self.walls)):
            n = self.shape[axis]
            if g_cells is not None:
                for shift in (1, -1):
                    neighbour = np.roll(g_cells, shift, axis=axis)
                    valid = np.roll(dirichlet, shift, axis=axis)
                    edge = [slice(None)] * self.ndim
                    edge[axis] = 0 if shift == 1 else n - 1
                    valid[tuple(edge)] = False
                    rhs += np.where(valid, neighbour, 0.0) / h**2
            for side, kind in ((0, low), (n - 1, high)):
                if kind != "dirichlet":
                    continue
                sl = [slice(None)] * self.ndim
                sl[axis] = side
                pts = x[tuple(sl)].copy()
                pts[..., axis] = self.lower[axis] if side == 0 else self.upper[axis]
                rhs[tuple(sl)] += g(pts) / (self.wall_distance * h**2)
        return rhs * fluid

    def singular_components(self) -> int:
        """Number of connected groups of fluid cells that touch no Dirichlet cell or wall.

        Each one makes the operator singular (a constant on that group is in its null space): pure-Neumann
        problems need a fixed mean or a pinned value.
        """
        from scipy import ndimage

        labels, count = ndimage.label(self.fluid)
        if count == 0:
            return 0
        anchored = np.zeros(count + 1, dtype=bool)
        dirichlet = self.cells == DIRICHLET
        for axis, (low, high) in enumerate(self.walls):
            for shift in (1, -1):
                touching = np.roll(dirichlet, shift, axis=axis)
                edge = [slice(None)] * self.ndim
                edge[axis] = 0 if shift == 1 else -1
                touching[tuple(edge)] = False
                anchored[np.unique(labels[touching & self.fluid])] = True
            for side, kind in ((0, low), (-1, high)):
                if kind == "dirichlet":
                    sl = [slice(None)] * self.ndim
                    sl[axis] = side
                    anchored[np.unique(labels[tuple(sl)])] = True
        anchored[0] = True  # label 0 is "not fluid"
        return int((~anchored).sum())
