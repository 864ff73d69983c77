"""Grid Poisson operators as coefficient fields, and their multigrid coarsening (TorchScript-compatible).

A symmetric grid operator with nearest-neighbour coupling is stored as fields over the grid, the layout a
fluid code keeps its pressure matrix in (Bridson, *Fluid Simulation for Computer Graphics*, §5.3:
``Adiag``, ``Aplusi``, ``Aplusj``):

* ``diag`` of shape ``(B, *shape)``: the diagonal (0 outside the unknowns),
* ``couplings[a]`` of shape ``(B, *shape)``: the coupling between cell ``i`` and ``i + e_a`` (the negated
  off-diagonal entry; 0 where either cell is no unknown, and in the last layer along ``a``),

so that ``(A u)_i = diag_i u_i - Σ_a [c_a(i) u_{i+e_a} + c_a(i-e_a) u_{i-e_a}]``. :func:`stencil_fields`
reads these fields off :meth:`PoissonGrid.matrix` (there is one stencil in sciml, the grid's; this is its
storage layout, tested to agree with :meth:`PoissonGrid.apply`).

:func:`coarsen` forms the Galerkin operator ``Pᵀ A P`` for piecewise-constant prolongation ``P`` over
blocks of 2^d cells, which is again such a stencil: coarse couplings are sums of the fine couplings across
a coarse face, the coarse diagonal is the children's diagonals minus twice their internal couplings.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from sciml.problems.linear import PoissonGrid

__all__ = ["stencil_fields", "apply_stencil", "coarsen", "restrict", "prolong", "pad_even"]


def stencil_fields(
    grid: PoissonGrid, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
) -> tuple[Tensor, list[Tensor]]:
    """The grid's operator as ``(diag, couplings)`` fields with a leading batch dimension of 1.

    Args:
        grid: the Poisson system.
        dtype, device: of the returned tensors.

    Returns:
        ``diag`` of shape ``(1, *grid.shape)`` and a list of ``grid.ndim`` coupling fields of that shape.
    """
    A = grid.matrix().tocoo()
    position = np.flatnonzero(grid.fluid)  # unknown index -> flat cell index
    strides = np.cumprod((1,) + grid.shape[::-1])[:-1][::-1]  # C-order stride of each axis
    upper = A.col > A.row
    rows, cols, vals = A.row[upper], A.col[upper], -A.data[upper]
    step = position[cols] - position[rows]
    size = int(np.prod(grid.shape))
    couplings = []
    for axis in range(grid.ndim):
        field = np.zeros(size)
        on_axis = step == strides[axis]
        field[position[rows[on_axis]]] = vals[on_axis]
        couplings.append(torch.as_tensor(field.reshape(1, *grid.shape), dtype=dtype, device=device))
    diag = torch.as_tensor(grid.diagonal()[None], dtype=dtype, device=device)
    return diag, couplings


def apply_stencil(u: Tensor, diag: Tensor, couplings: list[Tensor]) -> Tensor:
    """``A u`` for fields ``u`` of the shape of ``diag`` (broadcasting over leading dimensions)."""
    nd = len(couplings)
    out = diag * u
    for a in range(nd):
        c = couplings[a]
        dim = a - nd
        n = out.shape[dim]
        if n > 1:
            out.narrow(dim, 0, n - 1).sub_(c.narrow(dim, 0, n - 1) * u.narrow(dim, 1, n - 1))
            out.narrow(dim, 1, n - 1).sub_(c.narrow(dim, 0, n - 1) * u.narrow(dim, 0, n - 1))
    return out


def pad_even(x: Tensor, nd: int) -> Tensor:
    """Zero-pad the last ``nd`` dimensions of ``x`` at their high end to even sizes."""
    pads: list[int] = []
    any_pad = False
    for a in range(nd):
        extra = x.shape[x.dim() - 1 - a] % 2
        pads += [0, extra]
        any_pad = any_pad or extra > 0
    if any_pad:
        return torch.nn.functional.pad(x, pads)
    return x


def _pair_sum(x: Tensor, axis: int, nd: int) -> Tensor:
    """Sum neighbouring pairs (2i, 2i+1) along spatial ``axis`` (even size), from strided views."""
    pairs = x.unfold(axis - nd, 2, 2)
    return pairs.select(-1, 0) + pairs.select(-1, 1)


def restrict(x: Tensor, nd: int) -> Tensor:
    """Sum over blocks of 2^nd cells (``Pᵀ`` of piecewise-constant prolongation); odd sizes are padded."""
    x = pad_even(x, nd)
    for a in range(nd):
        x = _pair_sum(x, a, nd)
    return x


def prolong(x: Tensor, shape: list[int]) -> Tensor:
    """Piecewise-constant prolongation of coarse fields ``x`` onto the fine ``shape`` (cropped)."""
    nd = len(shape)
    lead = x.dim() - nd
    view: list[int] = list(x.shape[:lead])
    expand: list[int] = list(x.shape[:lead])
    full: list[int] = list(x.shape[:lead])
    for a in range(nd):
        view = view + [x.shape[lead + a], 1]
        expand = expand + [x.shape[lead + a], 2]
        full = full + [2 * x.shape[lead + a]]
    out = x.reshape(view).expand(expand).reshape(full)
    for a in range(nd):
        if full[lead + a] != shape[a]:
            out = out.narrow(lead + a, 0, shape[a])
    return out


def coarsen(diag: Tensor, couplings: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """The Galerkin coarse operator ``Pᵀ A P`` (piecewise-constant ``P`` over 2^d blocks) as fields."""
    nd = len(couplings)
    coarse_diag = restrict(diag, nd)
    coarse: list[Tensor] = []
    for a in range(nd):
        pairs = pad_even(couplings[a], nd).unfold(a - nd, 2, 2)
        internal = pairs.select(-1, 0)  # coupling between children 2I and 2I+1
        across = pairs.select(-1, 1)  # coupling between child 2I+1 and the next block's child 2I+2
        for b in range(nd):
            if b != a:
                internal = _pair_sum(internal, b, nd)
                across = _pair_sum(across, b, nd)
        coarse_diag = coarse_diag - 2 * internal
        coarse.append(across)
    return coarse_diag, coarse
