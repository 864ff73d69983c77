"""Grid Poisson operators as coefficient fields, and their multigrid coarsening (TorchScript-compatible).

A symmetric grid operator with nearest-neighbour coupling is stored as fields over the grid, the layout a
fluid code keeps its pressure matrix in (Bridson, *Fluid Simulation for Computer Graphics*, §5.3:
``Adiag``, ``Aplusi``, ``Aplusj``):

* ``diag`` of shape ``(B, *shape)``: the diagonal (0 outside the unknowns),
* ``couplings[a]`` of shape ``(B, *shape)``: the coupling between cell ``i`` and ``i + e_a`` (the negated
  off-diagonal entry; 0 where either cell is no unknown, and in the last layer along ``a``),

so that ``(A u)_i = diag_i u_i - Σ_a [c_a(i) u_{i+e_a} + c_a(i-e_a) u_{i-e_a}]``. :func:`stencil_fields`
returns these fields of a :class:`~sciml.problems.linear.GridStencil` (sciml's one grid operator: from a
:class:`PoissonGrid`, a user's matrix or coefficient arrays) as tensors; :func:`project_null` removes the
constant null space of pure-Neumann groups (labels from :meth:`GridStencil.null_space`).

:func:`coarsen` forms the Galerkin operator ``Pᵀ A P`` for piecewise-constant prolongation ``P`` over
blocks of 2^d cells, which is again such a stencil: coarse couplings are sums of the fine couplings across
a coarse face, the coarse diagonal is the children's diagonals minus twice their internal couplings.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from sciml.problems.linear import as_grid_stencil

__all__ = [
    "stencil_fields",
    "apply_stencil",
    "coarsen",
    "restrict",
    "prolong",
    "pad_even",
    "null_projector",
    "project_null",
    "is_periodic",
    "jump_ratio",
    "interior_reaction",
    "needs_cycle_check",
]


def stencil_fields(
    grid: Any, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
) -> tuple[Tensor, list[Tensor]]:
    """The system's operator as ``(diag, couplings)`` fields with a leading batch dimension of 1.

    Args:
        grid: a :class:`~sciml.problems.linear.PoissonGrid` or a
            :class:`~sciml.problems.linear.GridStencil` (e.g. from a user's matrix by
            :func:`~sciml.problems.linear.as_grid_stencil`).
        dtype, device: of the returned tensors.

    Returns:
        ``diag`` of shape ``(1, *shape)`` and a list of ``ndim`` coupling fields of that shape.
    """
    stencil = as_grid_stencil(grid)
    diag = torch.tensor(stencil.diag[None], dtype=dtype, device=device)
    couplings = [torch.tensor(c[None], dtype=dtype, device=device) for c in stencil.couplings]
    return diag, couplings


def null_projector(labels: Tensor) -> list[Tensor]:
    """The null-space data :func:`project_null` needs, from a label field (``-1`` outside singular groups,
    ``0..m-1`` inside; :meth:`GridStencil.null_space`): ``[flat labels + 1, 1/size per label (0 for -1)]``.
    An empty list when no cell is labelled (nonsingular)."""
    flat = labels.reshape(-1).to(torch.int64) + 1
    if not bool((flat > 0).any()):
        return []
    counts = torch.bincount(flat).to(torch.float64)
    inverse = torch.where(counts > 0, 1.0 / torch.where(counts > 0, counts, torch.ones_like(counts)), counts)
    inverse[0] = 0.0
    return [flat, inverse]


def project_null(v: Tensor, null: list[Tensor]) -> Tensor:
    """``v`` minus its mean over each singular group (``null`` from :func:`null_projector`; identity when
    empty): the projection onto the range of a singular grid operator."""
    if len(null) == 0:
        return v
    flat, inverse = null[0], null[1]
    sums = torch.zeros(inverse.shape[0], dtype=v.dtype, device=v.device).index_add_(0, flat, v.reshape(-1))
    means = sums * inverse.to(v.dtype)
    return v - means[flat].reshape(v.shape)


def apply_stencil(u: Tensor, diag: Tensor, couplings: list[Tensor], wrap: bool = True) -> Tensor:
    """``A u`` for fields ``u`` of the shape of ``diag`` (broadcasting over leading dimensions).

    The last layer of ``couplings[a]`` couples the last cell along ``a`` with the first (periodic axes; 0
    otherwise); ``wrap=False`` skips those terms (a caller that knows they are all zero).
    """
    nd = len(couplings)
    out = diag * u
    for a in range(nd):
        c = couplings[a]
        dim = a - nd
        n = out.shape[dim]
        if n > 1:  # fused multiply-subtract into views: no temporaries
            cc = c.narrow(dim, 0, n - 1)
            out.narrow(dim, 0, n - 1).addcmul_(cc, u.narrow(dim, 1, n - 1), value=-1.0)
            out.narrow(dim, 1, n - 1).addcmul_(cc, u.narrow(dim, 0, n - 1), value=-1.0)
            if wrap:
                cw = c.narrow(dim, n - 1, 1)
                out.narrow(dim, n - 1, 1).addcmul_(cw, u.narrow(dim, 0, 1), value=-1.0)
                out.narrow(dim, 0, 1).addcmul_(cw, u.narrow(dim, n - 1, 1), value=-1.0)
        elif wrap:  # one cell along a periodic axis: the wrap-around face couples it with itself
            out.addcmul_(c, u, value=-2.0)
    return out


def is_periodic(couplings: list[Tensor]) -> bool:
    """Whether any coupling field has a nonzero last layer (a periodic wrap-around)."""
    nd = len(couplings)
    for a in range(nd):
        c = couplings[a]
        dim = a - nd
        if bool((c.narrow(dim, c.shape[dim] - 1, 1) != 0).any()):
            return True
    return False


def jump_ratio(diag: Tensor, couplings: list[Tensor]) -> float:
    """The largest ratio of the diagonals of two face-neighbouring unknowns (1 without such a pair).

    Constant-coefficient grids with walls and obstacles give at most about 5 (a cell with one open face next
    to one with four), smooth coefficient fields a little more; jumping coefficients (two-phase media,
    identity rows among ``1/h²`` rows) give their contrast.
    """
    nd = len(couplings)
    log_diag = torch.log(torch.where(diag > 0, diag, torch.full_like(diag, float("nan"))))
    best = 0.0
    for a in range(nd):
        dim = a - nd
        n = diag.shape[dim]
        if n > 1:
            step = (log_diag.narrow(dim, 1, n - 1) - log_diag.narrow(dim, 0, n - 1)).abs()
            best = max(best, float(torch.nan_to_num(step, nan=0.0).max()))
    return math.exp(best)


def _jumps_above(diag: Tensor, nd: int, ratio: float) -> bool:
    """Whether two face-neighbouring unknowns have diagonals more than ``ratio`` apart (NaN, off the
    unknowns, compares false)."""
    log_diag = torch.log(torch.where(diag > 0, diag, torch.full_like(diag, float("nan"))))
    level = math.log(ratio)
    for a in range(nd):
        dim = a - nd
        n = diag.shape[dim]
        if n > 1:
            step = log_diag.narrow(dim, 1, n - 1) - log_diag.narrow(dim, 0, n - 1)
            if bool((step.abs() > level).any()):
                return True
    return False


def interior_reaction(diag: Tensor, couplings: list[Tensor]) -> bool:
    """Whether some unknown with all ``2d`` neighbours coupled has a diagonal above its couplings' sum (a
    reaction or shift term, ``−∇·κ∇ + c``; walls and Dirichlet cells only add to cells missing a
    neighbour)."""
    nd = len(couplings)
    missing = diag <= 0
    for a in range(nd):
        c = couplings[a]
        dim = a - nd
        n = c.shape[dim]
        absent = c == 0  # the coupling to i + e_a (the last layer: to the first, periodic axes)
        missing = missing | absent
        if n > 1:
            missing.narrow(dim, 1, n - 1).logical_or_(absent.narrow(dim, 0, n - 1))
        missing.narrow(dim, 0, 1).logical_or_(absent.narrow(dim, n - 1, 1))
    excess = apply_stencil(torch.ones_like(diag), diag, couplings)  # diag minus the couplings' sum
    return bool(((excess > 1e-8 * diag) & ~missing).any())


def needs_cycle_check(diag: Tensor, couplings: list[Tensor], ratio: float = 8.0) -> bool:
    """Whether the system is outside the training layouts' kind, where the trained multigrid cycle can lose
    positive definiteness: jumping coefficients (:func:`jump_ratio` above ``ratio``; constant-coefficient
    grids with walls and obstacles stay below 6) or a reaction term (:func:`interior_reaction`)."""
    return _jumps_above(diag, len(couplings), ratio) or interior_reaction(diag, couplings)


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
    """The Galerkin coarse operator ``Pᵀ A P`` (piecewise-constant ``P`` over 2^d blocks) as fields.

    Periodic wrap-around couplings (last layer) become the coarse grid's wrap-around couplings; along an
    odd axis the padding cell sits inside the last block, so the wrap coupling is moved onto it first.
    """
    nd = len(couplings)
    coarse_diag = restrict(diag, nd)
    coarse: list[Tensor] = []
    for a in range(nd):
        c = pad_even(couplings[a], nd)
        dim = a - nd
        n = couplings[a].shape[dim]
        if n % 2 == 1 and n > 1:  # odd: the wrap coupling of cell n-1 belongs to the padded block's edge
            c = c.clone()
            c.narrow(dim, n, 1).copy_(c.narrow(dim, n - 1, 1))
            c.narrow(dim, n - 1, 1).zero_()
        pairs = c.unfold(dim, 2, 2)
        internal = pairs.select(-1, 0)  # coupling between children 2I and 2I+1
        across = pairs.select(-1, 1)  # coupling between child 2I+1 and the next block's child 2I+2
        for b in range(nd):
            if b != a:
                internal = _pair_sum(internal, b, nd)
                across = _pair_sum(across, b, nd)
        coarse_diag = coarse_diag - 2 * internal
        coarse.append(across)
    return coarse_diag, coarse
