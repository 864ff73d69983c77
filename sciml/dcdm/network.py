"""Networks that approximate the action of ``A⁻¹`` on a residual, for the DCDM iteration.

Every network here has the same two-stage interface, so that the DCDM iteration and the TorchScript export
treat them alike:

* ``setup(diag, couplings) -> context`` — once per system: everything that depends only on the operator
  (the geometry), as a list of tensors;
* ``precondition(r, context) -> q`` — once per iteration: the network applied to a residual field ``r`` of
  shape ``(B, *shape)``; zero outside the unknowns.

:class:`MultigridNet` (the default, ours) is a multigrid-cycle-shaped convolutional network: at every level
a few-channel 3^d convolution of the residual, gated per cell by a small conv net of the local operator
coefficients (computed once in ``setup``), then the residual is passed to a coarser level of the Galerkin
hierarchy of the operator, and the coarse correction comes back through a learned per-cell weight and the
adjoint of the first convolution. All levels share one set of weights, the number of levels grows with the
grid (coarsening by 2 until at most ``coarsest`` cells per side remain, which are solved exactly), and the
network is a symmetric linear operator of the residual; so its cost is O(cells) with a small constant and
it applies to any grid size. With its initial weights it is a classical W(1,1)-cycle with damped Jacobi
smoothing; training (:mod:`sciml.dcdm.train`) fits the smoother kernels, gates and coarse weights to the
DCDM loss. Why this shape: a good approximate inverse of the Laplacian must act on every length scale at
once, and multigrid does that with work proportional to the cells; a fixed-depth conv stack (the paper's)
sees a fixed neighbourhood, so its iteration count grows with the grid.

:class:`PaperNet` is the network of Kaneda et al. (ICML 2023), 2D/3D: 16-channel 3^d convolutions with
residual additions, one average-pool level and an upsample with a skip connection, a linear 1x1 output. It
sees only the residual (and masks its output).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sciml.dcdm.stencil import apply_stencil, coarsen, is_periodic, prolong, restrict

__all__ = ["MultigridNet", "PaperNet", "build_network", "ARCHITECTURES"]


def _conv(x: Tensor, weight: Tensor, bias: Tensor | None, nd: int, padding: int) -> Tensor:
    if nd == 2:
        return F.conv2d(x, weight, bias, padding=padding)
    if nd == 3:
        return F.conv3d(x, weight, bias, padding=padding)
    return F.conv1d(x, weight, bias, padding=padding)


#: the robust cycle's coarse weight bound for the W-cycle, 2^{1/4} (see MultigridNet._robust_weight)
_W_CYCLE_WEIGHT = 2.0**0.25 * (1.0 - 1e-6)


def _level_shapes(shape: list[int], coarsest: int) -> list[list[int]]:
    """Grid shapes of the hierarchy: halve (rounding up) until every side is at most ``coarsest``."""
    shapes: list[list[int]] = [shape]
    current = shape
    while max(current) > coarsest:
        current = [(n + 1) // 2 for n in current]
        shapes.append(current)
    return shapes


def _features(diag: Tensor, couplings: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Scale-free local features of the operator, the inverse diagonal and the mask of unknowns."""
    nd = len(couplings)
    mask = (diag > 0).to(diag.dtype)
    dinv = torch.where(
        diag > 0, 1.0 / torch.where(diag > 0, diag, torch.ones_like(diag)), torch.zeros_like(diag)
    )
    feats: list[Tensor] = [mask]
    offdiag = torch.zeros_like(diag)
    for a in range(nd):
        c = couplings[a]
        dim = a - nd
        n = c.shape[dim]
        lower = torch.zeros_like(c)  # the coupling to i - e_a (periodic: the first cell's is the last layer)
        if n > 1:
            lower.narrow(dim, 1, n - 1).copy_(c.narrow(dim, 0, n - 1))
        lower.narrow(dim, 0, 1).add_(c.narrow(dim, n - 1, 1))
        feats.append(c * dinv)
        feats.append(lower * dinv)
        offdiag = offdiag + c + lower
    feats.append((diag - offdiag) * dinv)  # > 0 next to Dirichlet boundaries
    return torch.stack(feats, 1), dinv, mask


class MultigridNet(nn.Module):
    """A symmetric, V/W-cycle-shaped, geometry-gated, few-channel linear conv net (see the module docstring).

    Per level the pre-smoother is ``S r = Σ_k a_k ⊙ (K_k ∗ r)`` — ``channels`` learned 3^d kernels ``K_k``,
    each gated per cell by ``a_k = g_k(features) / diag`` from the gate net — and the post-smoother is its
    adjoint ``Sᵀ r = Σ_k K_k ⋆ (a_k ⊙ r)`` (a transposed convolution). ``setup`` folds kernels and gates
    into one per-cell 3^d stencil, so an application costs 3^d multiply-adds per cell and level. The
    coarse-grid correction is ``w ⊙ P A_c⁻¹ Pᵀ (w ⊙ r)`` with a learned per-cell weight ``w`` and the
    Galerkin operator of the next level (recursively: one visit per level for ``cycle="V"``, two for
    ``"W"``). The network is therefore a symmetric linear operator of the residual, so DCDM with it is a
    preconditioned CG and its A-orthogonalisation against the last directions loses nothing.

    It is positive definite when every level's smoother converges in the A-norm and, for the W-cycle, the
    weighted coarse correction stays below 2. The trained cycle meets both on the training layouts but can
    miss them where the coefficients jump between neighbouring cells (its smoother scales a neighbour's
    residual by the cell's own diagonal) or where the 3D model's per-cell coarse weights (up to 1.75)
    over-correct; ``setup(..., robust=True)`` builds the form of the cycle that meets both for every
    diffusion operator (:meth:`_robust_smoother`, :meth:`_robust_weight`), which
    :class:`~sciml.dcdm.solver.DCDMIteration` switches to where it finds the trained cycle indefinite.

    Args:
        ndim: spatial dimensions (1, 2 or 3).
        channels: kernels of the smoother.
        hidden: channels of the gate network (run once per system, in ``setup``).
        coarsest: stop coarsening when every side has at most this many cells; that level is solved
            exactly (a dense Cholesky factor computed in ``setup``). Default 16 in 1D/2D, 8 in 3D.
        cycle: ``"V"`` or ``"W"``.
        omega: damping of the Jacobi smoother the network starts from.

    Raises:
        ValueError: for ``ndim`` outside 1..3, non-positive sizes or an unknown cycle.
    """

    def __init__(
        self,
        ndim: int = 2,
        channels: int = 4,
        hidden: int = 8,
        coarsest: int | None = None,
        cycle: str = "W",
        omega: float = 0.8,
    ):
        super().__init__()
        if ndim not in (1, 2, 3):
            raise ValueError(f"`ndim` must be 1, 2 or 3, got {ndim}")
        if coarsest is None:
            coarsest = 16 if ndim <= 2 else 8
        if channels < 1 or hidden < 1 or coarsest < 2:
            raise ValueError(
                "`channels` and `hidden` must be >= 1 and `coarsest` >= 2, "
                f"got {channels}, {hidden}, {coarsest}"
            )
        if cycle not in ("V", "W"):
            raise ValueError(f"`cycle` must be 'V' or 'W', got {cycle!r}")
        self.ndim = ndim
        self.channels = channels
        self.hidden = hidden
        self.coarsest = coarsest
        self.cycle = cycle
        self.gamma = 1 if cycle == "V" else 2
        self.weight_cap = _W_CYCLE_WEIGHT  # the robust W-cycle's coarse weight bound
        k = (3,) * ndim
        n_features = 2 * ndim + 2
        # the 3^d stencil offsets in the order of a flattened 3^d kernel
        offsets: list[list[int]] = [[]]
        for _ in range(ndim):
            offsets = [o + [d] for o in offsets for d in (-1, 0, 1)]
        self.offsets = offsets
        g = torch.Generator().manual_seed(0)
        centre = (slice(None), 0) + tuple(1 for _ in range(ndim))
        # initial smoother: damped Jacobi, omega/diag, split evenly over the channels (plus a little noise
        # so that the channels can differentiate during training)
        smoother = 1e-3 * torch.randn((channels, 1) + k, generator=g)
        smoother[centre] += omega / channels
        self.smoother = nn.Parameter(smoother)
        self.gate_w1 = nn.Parameter(
            torch.randn((hidden, n_features) + k, generator=g) / (n_features * 3**ndim) ** 0.5
        )
        self.gate_b1 = nn.Parameter(torch.zeros(hidden))
        self.gate_w2 = nn.Parameter(torch.zeros((channels + 1, hidden) + (1,) * ndim))
        # initial gates: 1 per smoothing channel; the coarse weight w over-corrects (w² = 2 for V, 1.4 for
        # W, measured), since piecewise-constant Galerkin coarse grids under-correct the Laplacian
        coarse_weight = (2.0 if cycle == "V" else 1.4) ** 0.5
        self.gate_b2 = nn.Parameter(torch.cat([torch.ones(channels), torch.full((1,), coarse_weight)]))

    def config(self) -> dict[str, Any]:
        return {
            "architecture": "multigrid",
            "ndim": self.ndim,
            "channels": self.channels,
            "hidden": self.hidden,
            "coarsest": self.coarsest,
            "cycle": self.cycle,
        }

    def setup(self, diag: Tensor, couplings: list[Tensor], robust: bool = False) -> list[Tensor]:
        """Hierarchy, gates and coarsest factor for operators ``(diag, couplings)`` of shape ``(B, *shape)``.

        Returns per level ``[diag, *couplings, smoother gates (B, channels, ...), coarse weight]``, for
        the coarsest level ``[diag, *couplings, inverse (B, N, N)]``, and last a flag (1 when some axis is
        periodic: the operators then include the wrap-around couplings; the smoother stays zero-padded).

        ``robust=True`` builds the scale-consistent form of the same cycle, which is symmetric positive
        (semi-)definite for every diffusion operator (:meth:`_robust_smoother`, :meth:`_robust_weight`);
        the default is the trained cycle exactly (the training layouts' form).

        Raises:
            ValueError: when the coarsest Galerkin operator is indefinite (not a diffusion operator); a
                singular one (pure Neumann) gets its pseudo-inverse.
        """
        nd = self.ndim
        c = self.channels
        shapes = _level_shapes(list(diag.shape[1:]), self.coarsest)
        periodic = is_periodic(couplings)
        context: list[Tensor] = []
        for level in range(len(shapes)):
            context.append(diag)
            context.extend(couplings)
            if level < len(shapes) - 1:
                feats, dinv, mask = _features(diag, couplings)
                # the gate net runs in the weights' precision; the hierarchy stays in the fields' (float64
                # from DCDMIteration.setup, so that a singular coarsest operator is detected reliably)
                hid = torch.tanh(_conv(feats.to(self.gate_w1.dtype), self.gate_w1, self.gate_b1, nd, 1))
                gates = _conv(hid, self.gate_w2, self.gate_b2, nd, 0).to(diag.dtype)
                # S r = Σ_k a_k ⊙ (K_k ∗ r) = Σ_o β_o ⊙ r(· + o) with β_o = Σ_k a_k K_k[o]: a per-cell
                # 3^d stencil, so each application costs 3^d multiply-adds per cell whatever `channels` is
                if robust:
                    context.append(self._robust_smoother(gates[:, :c], diag, couplings))
                    context.append(self._robust_weight(gates[:, c], mask))
                else:
                    a = gates[:, :c] * dinv.unsqueeze(1)
                    kernel = self.smoother.reshape([1, c, len(self.offsets)] + [1] * nd).to(diag.dtype)
                    context.append((a.unsqueeze(2) * kernel).sum(1))
                    context.append(gates[:, c] * mask)
                diag, couplings = coarsen(diag, couplings)
            else:
                context.append(_coarse_inverse(diag, couplings))
        context.append(torch.full([1], float(periodic), dtype=diag.dtype, device=diag.device))
        return context

    def _robust_smoother(self, gates: Tensor, diag: Tensor, couplings: list[Tensor]) -> Tensor:
        """The smoother's per-cell stencil in its scale-consistent form, damped until it provably converges.

        The trained smoother weighs the residual of a neighbour ``j`` by ``g_k(i) K_k[j − i] / d_i``: scaled
        by the cell's own diagonal, which is right where neighbouring diagonals are alike (the training
        layouts) but multiplies a neighbour's error by ``d_j / d_i`` where they are not (a low-κ cell next
        to a high-κ one, an identity row among ``1/h²`` rows), and the smoother then diverges in the
        A-norm. Here, in the variables scaled by ``D^{1/2}`` (``Ŝ = D^{1/2} S D^{1/2}``,
        ``Â = D^{-1/2} A D^{-1/2}``), ``Ŝ_ij = Σ_k √(g_k(i) g_k(j)) K̄_k[j − i]`` with the symmetrised kernels
        ``K̄_k`` (the trained stencil where the cell and its neighbours are alike); its centre is raised to
        the off-centre absolute row sum where needed (Gershgorin: ``Ŝ`` positive definite), and the whole
        stencil is damped by ``θ = min(1, (2 − 10⁻³) / max_i Σ_j |(Â Ŝ)_ij|)``. Then the eigenvalues of
        ``Â Ŝ`` lie in ``[0, 2)``, so ``S + Sᵀ − Sᵀ A S = D^{-1/2} Ŝ^{1/2} (2 − Ŝ^{1/2} Â Ŝ^{1/2}) Ŝ^{1/2}
        D^{-1/2}`` is positive definite: the smoother converges in the A-norm for any diffusion operator.
        """
        nd = self.ndim
        n_off = len(self.offsets)
        centre = n_off // 2
        shape: list[int] = list(diag.shape[1:])
        mask = (diag > 0).to(diag.dtype)
        root = torch.sqrt(torch.clamp(diag, min=0.0))
        inv_root = torch.where(diag > 0, 1.0 / torch.where(diag > 0, root, torch.ones_like(root)), 0.0 * root)
        g = torch.clamp(gates, min=0.0)
        g_pad = F.pad(g, [1, 1] * nd)
        mask_pad = F.pad(mask, [1, 1] * nd)
        kernel = self.smoother.detach().reshape(self.channels, n_off).to(diag.dtype)
        scaled: list[Tensor] = []  # Ŝ_{i, i+o} per offset o
        for i, offset in enumerate(self.offsets):
            kbar = 0.5 * (kernel[:, i] + kernel[:, n_off - 1 - i])  # offsets[n_off - 1 - i] == -offset
            weight = torch.sqrt(g * self._shifted(g_pad, offset, shape))
            s = (weight * kbar.reshape([1, self.channels] + [1] * nd)).sum(1)
            scaled.append(s * mask * self._shifted(mask_pad, offset, shape))
        off = torch.zeros_like(diag)
        for i in range(n_off):
            if i != centre:
                off = off + scaled[i].abs()
        scaled[centre] = torch.maximum(scaled[centre], 1.001 * off + 1e-3) * mask
        bound = self._product_row_sum(scaled, diag, couplings, inv_root)
        theta = torch.clamp((2.0 - 1e-3) / bound, max=1.0).reshape([-1] + [1] * nd)
        inv_pad = F.pad(inv_root, [1, 1] * nd)
        beta: list[Tensor] = []
        for i, offset in enumerate(self.offsets):
            beta.append(theta * scaled[i] * inv_root * self._shifted(inv_pad, offset, shape))
        return torch.stack(beta, 1)

    def _product_row_sum(
        self, scaled: list[Tensor], diag: Tensor, couplings: list[Tensor], inv_root: Tensor
    ) -> Tensor:
        """``max_i Σ_j |(Â Ŝ)_ij|`` per batch entry, ``Ŝ`` given per offset (zero-padded) and ``Â`` the
        unit-diagonal operator (periodic wrap-around rows bounded without cancellation)."""
        nd = self.ndim
        shape: list[int] = list(diag.shape[1:])
        mask = (diag > 0).to(diag.dtype)
        span = 1
        for _ in range(nd):
            span *= 5
        acc: list[Tensor] = []
        for _ in range(span):
            acc.append(torch.zeros_like(diag))
        # Â's rows: the unit diagonal and the in-grid neighbours ±e_a (the wrap-around terms come below)
        steps: list[list[int]] = [[0] * nd]
        values: list[Tensor] = [mask]
        inv_pad = F.pad(inv_root, [1, 1] * nd)
        for a in range(nd):
            dim = a - nd
            n = shape[a]
            inner = torch.zeros_like(diag)
            if n > 1:
                inner.narrow(dim, 0, n - 1).copy_(couplings[a].narrow(dim, 0, n - 1))
            step = [0] * nd
            step[a] = 1
            up = -inner * inv_root * self._shifted(inv_pad, step, shape)  # Â_{i, i+e_a}
            down = self._shifted(F.pad(up, [1, 1] * nd), [-x for x in step], shape)  # Â_{i, i-e_a}
            steps.append(step)
            values.append(up)
            steps.append([-x for x in step])
            values.append(down)
        padded: list[Tensor] = []
        for s in scaled:
            padded.append(F.pad(s, [1, 1] * nd))
        for k in range(len(steps)):
            step = steps[k]
            for i, offset in enumerate(self.offsets):
                index = 0
                for a in range(nd):
                    index = index * 5 + step[a] + offset[a] + 2
                acc[index] = acc[index] + values[k] * self._shifted(padded[i], step, shape)
        total = torch.zeros_like(diag)
        for t in acc:
            total = total + t.abs()
        row_abs = torch.zeros_like(diag)  # Σ_o |Ŝ_{i, i+o}|
        for s in scaled:
            row_abs = row_abs + s.abs()
        for a in range(nd):  # periodic wrap-around couplings: |Â_ij| Σ_o |Ŝ_{j, j+o}|
            dim = a - nd
            n = shape[a]
            wrap = (
                couplings[a].narrow(dim, n - 1, 1).abs()
                * inv_root.narrow(dim, n - 1, 1)
                * inv_root.narrow(dim, 0, 1)
            )
            total.narrow(dim, n - 1, 1).add_(wrap * row_abs.narrow(dim, 0, 1))
            total.narrow(dim, 0, 1).add_(wrap * row_abs.narrow(dim, n - 1, 1))
        return torch.amax((total * mask).flatten(1), 1)

    def _robust_weight(self, weight: Tensor, mask: Tensor) -> Tensor:
        """The coarse-grid weight of the robust cycle: one value per level (the mean of the trained weight,
        at most ``2^{1/4}`` for the W-cycle) instead of one per cell.

        A weight that varies between the cells of a coarse block adds energy the Galerkin operator does not
        see (where the block is strongly coupled inside), and the W-cycle's second coarse visit, ``(I −
        C A)²``, turns a coarse correction ``C A`` above 2 into a negative direction. With a constant ``w``,
        ``C A ≤ w² B A_c``: below ``√2`` at the level above the coarsest, so at most 2 at the level above
        that, and at most 1 after each W-cycle level, so every level stays positive definite.
        """
        dims: list[int] = list(range(1, weight.dim()))
        count = torch.clamp(mask.sum(dims, keepdim=True), min=1.0)
        mean = torch.clamp((weight * mask).sum(dims, keepdim=True) / count, min=0.0)
        if self.gamma > 1:
            mean = torch.clamp(mean, max=self.weight_cap)
        return mean * mask

    def _shifted(self, x: Tensor, offset: list[int], shape: list[int]) -> Tensor:
        """The window of the 1-padded field ``x`` shifted by ``offset`` (``x(· + offset)``)."""
        nd = self.ndim
        for a in range(nd):
            x = x.narrow(a - nd, 1 + offset[a], shape[a])
        return x

    def _smooth(self, r: Tensor, beta: Tensor) -> Tensor:
        """``S r = Σ_o β_o ⊙ r(· + o)`` (= ``Σ_k a_k ⊙ (K_k ∗ r)``, zero padding)."""
        shape: list[int] = list(r.shape[1:])
        if self.ndim == 2:  # one im2col instead of 9 shifted multiply-adds (fewer, larger operations)
            cols = F.unfold(r.unsqueeze(1), 3, padding=1)
            return (cols * beta.flatten(2)).sum(1).reshape(r.shape)
        padded = F.pad(r, [1, 1] * self.ndim)
        out = torch.zeros_like(r)
        for i, offset in enumerate(self.offsets):
            out = out + beta[:, i] * self._shifted(padded, offset, shape)
        return out

    def _smooth_adjoint(self, r: Tensor, beta: Tensor, mask: Tensor) -> Tensor:
        """``Sᵀ r = mask ⊙ Σ_o (β_o ⊙ r)(· − o)``."""
        shape: list[int] = list(r.shape[1:])
        if self.ndim == 2:  # col2im, the adjoint of the im2col in _smooth
            cols = (beta * r.unsqueeze(1)).flatten(2)
            return F.fold(cols, shape, 3, padding=1).reshape(r.shape) * mask
        padded = F.pad(torch.zeros_like(r), [1, 1] * self.ndim)
        for i, offset in enumerate(self.offsets):
            window = self._shifted(padded, offset, shape)
            window.add_(beta[:, i] * r)
        zero: list[int] = [0] * self.ndim
        return self._shifted(padded, zero, shape) * mask

    def precondition(self, r: Tensor, context: list[Tensor]) -> Tensor:
        """One multigrid cycle on residuals ``r`` of shape ``(B, *shape)``, zero outside the unknowns."""
        nd = self.ndim
        shapes = _level_shapes(list(r.shape[1:]), self.coarsest)
        last = len(shapes) - 1
        stride = nd + 3
        wrap = bool(context[len(context) - 1][0] > 0)
        rhs: list[Tensor] = [r]  # right-hand side of each level's correction equation
        res: list[Tensor] = [r]  # its residual for the level's current iterate
        xs: list[Tensor] = [r]  # the level's current iterate
        visits: list[int] = [0]
        for _ in range(last):
            rhs.append(r)
            res.append(r)
            xs.append(r)
            visits.append(0)
        level = self._descend(0, last, rhs, res, xs, visits, context, wrap)
        while level > 0:
            level -= 1
            base = level * stride
            diag = context[base]
            couplings = context[base + 1 : base + 1 + nd]
            e = context[base + nd + 2] * prolong(xs[level + 1], shapes[level])
            xs[level] = xs[level] + e
            res[level] = res[level] - apply_stencil(e, diag, couplings, wrap)
            visits[level] += 1
            if visits[level] < self.gamma and level + 1 < last:  # W-cycle: visit the coarse level again
                rhs[level + 1] = restrict(context[base + nd + 2] * res[level], nd)
                level = self._descend(level + 1, last, rhs, res, xs, visits, context, wrap)
            else:
                mask = (diag > 0).to(diag.dtype)
                xs[level] = xs[level] + self._smooth_adjoint(res[level], context[base + nd + 1], mask)
        return xs[0]

    def _descend(
        self,
        level: int,
        last: int,
        rhs: list[Tensor],
        res: list[Tensor],
        xs: list[Tensor],
        visits: list[int],
        context: list[Tensor],
        wrap: bool,
    ) -> int:
        """Pre-smooth and restrict from ``level`` down to the coarsest level, solve there exactly."""
        nd = self.ndim
        stride = nd + 3
        while level < last:
            base = level * stride
            x = self._smooth(rhs[level], context[base + nd + 1])
            xs[level] = x
            res[level] = rhs[level] - apply_stencil(x, context[base], context[base + 1 : base + 1 + nd], wrap)
            visits[level] = 0
            rhs[level + 1] = restrict(context[base + nd + 2] * res[level], nd)
            level += 1
        coarse = rhs[last]
        inverse = context[last * stride + nd + 1]
        xs[last] = torch.bmm(inverse, coarse.reshape(coarse.shape[0], -1, 1)).reshape(coarse.shape)
        return last

    def forward(self, r: Tensor, diag: Tensor, couplings: list[Tensor]) -> Tensor:
        return self.precondition(r, self.setup(diag, couplings))


def _coarse_inverse(diag: Tensor, couplings: list[Tensor]) -> Tensor:
    """Dense inverse ``(B, N, N)`` of a small operator on its unknowns (zero rows/columns elsewhere).

    A singular operator (a pure-Neumann group: its Cholesky factor breaks down or has a pivot below
    1e-10 of its diagonal, computed in float64) gets the pseudo-inverse instead (eigenvalues below 1e-9 of
    the largest dropped), so the cycle never amplifies the null space; the DCDM iteration projects it out.
    """
    batch = diag.shape[0]
    n = diag[0].numel()
    eye = torch.eye(n, dtype=diag.dtype, device=diag.device)
    basis = eye.reshape([1, n] + list(diag.shape[1:]))
    lead: list[int] = [batch, 1] + list(diag.shape[1:])
    cols: list[Tensor] = []
    for c in couplings:
        cols.append(c.reshape(lead))
    matrix = apply_stencil(basis, diag.reshape(lead), cols).reshape(batch, n, n)
    mask = (diag.reshape(batch, n) > 0).to(diag.dtype)
    matrix = (matrix + torch.diag_embed(1.0 - mask)).double()
    factor, info = torch.linalg.cholesky_ex(matrix)
    pivots = torch.diagonal(factor, dim1=-2, dim2=-1) ** 2 / torch.diagonal(matrix, dim1=-2, dim2=-1)
    if bool((info != 0).any()) or not bool((pivots > 1e-10).all()):
        values, vectors = torch.linalg.eigh(matrix)
        if not bool((values > -1e-8 * values.abs().amax(-1, keepdim=True)).all()):
            raise ValueError(
                "the coarsest multigrid operator is indefinite: the system is not a diffusion (Poisson) "
                "operator"
            )
        keep = values > 1e-9 * values.amax(-1, keepdim=True)
        inv_values = torch.where(keep, 1.0 / torch.where(keep, values, torch.ones_like(values)), 0.0 * values)
        inverse = (vectors * inv_values.unsqueeze(-2)) @ vectors.transpose(-1, -2)
    else:
        inverse = torch.cholesky_inverse(factor)
    inverse = inverse.to(diag.dtype)
    return inverse * mask.unsqueeze(1) * mask.unsqueeze(2)


class PaperNet(nn.Module):
    """The DCDM paper's network (Kaneda et al., ICML 2023), in 2D or 3D, sees the residual only.

    Layout: a 3^d convolution to ``channels`` channels; ``blocks`` residual blocks (two convolutions with
    ReLU and an identity addition); average pooling by 2; ``blocks`` residual blocks; upsampling and a skip
    addition; ``blocks`` residual blocks; a linear 1x1 convolution to one channel. The output is masked to
    the unknowns.

    Args:
        ndim: 2 or 3.
        channels: width (16 in the paper).
        blocks: residual blocks per stage.
    """

    def __init__(self, ndim: int = 2, channels: int = 16, blocks: int = 2):
        super().__init__()
        if ndim not in (2, 3):
            raise ValueError(f"`ndim` must be 2 or 3 for PaperNet, got {ndim}")
        if channels < 1 or blocks < 1:
            raise ValueError(f"`channels` and `blocks` must be >= 1, got {channels}, {blocks}")
        conv = nn.Conv2d if ndim == 2 else nn.Conv3d
        self.ndim = ndim
        self.channels = channels
        self.blocks = blocks
        self.inp = conv(1, channels, 3, padding=1)
        self.layers = nn.ModuleList([conv(channels, channels, 3, padding=1) for _ in range(6 * blocks)])
        self.out = conv(channels, 1, 1)

    def config(self) -> dict[str, Any]:
        return {"architecture": "paper", "ndim": self.ndim, "channels": self.channels, "blocks": self.blocks}

    def setup(self, diag: Tensor, couplings: list[Tensor], robust: bool = False) -> list[Tensor]:
        """The mask of unknowns (the network sees the residual only; ``robust`` has no meaning here)."""
        return [(diag > 0).to(diag.dtype)]

    def _block_stage(self, h: Tensor, stage: int) -> Tensor:
        i = 0
        start = 2 * self.blocks * stage
        inner = h
        for layer in self.layers:
            if start <= i < start + 2 * self.blocks:
                if (i - start) % 2 == 0:
                    inner = layer(torch.relu(h))
                else:
                    h = h + layer(torch.relu(inner))
            i += 1
        return h

    def precondition(self, r: Tensor, context: list[Tensor]) -> Tensor:
        mask = context[0]
        shape = list(r.shape[1:])
        nd = self.ndim
        h = self.inp(r.unsqueeze(1))
        h = self._block_stage(h, 0)
        skip = h
        pads: list[int] = []
        for a in range(nd):
            pads += [0, h.shape[h.dim() - 1 - a] % 2]
        padded = F.pad(h, pads)
        coarse = F.avg_pool2d(padded, 2) if nd == 2 else F.avg_pool3d(padded, 2)
        coarse = self._block_stage(coarse, 1)
        up = prolong(coarse, shape)
        h = self._block_stage(skip + up, 2)
        return self.out(h).squeeze(1) * mask

    def forward(self, r: Tensor, diag: Tensor, couplings: list[Tensor]) -> Tensor:
        return self.precondition(r, self.setup(diag, couplings))


ARCHITECTURES = {"multigrid": MultigridNet, "paper": PaperNet}


def build_network(config: dict[str, Any]) -> nn.Module:
    """Build a network from its :meth:`config` dict (``{"architecture": ..., "ndim": ..., ...}``).

    Raises:
        ValueError: an unknown architecture or a config the architecture does not accept.
    """
    config = dict(config)
    arch = config.pop("architecture", None)
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown network architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}")
    try:
        return ARCHITECTURES[arch](**config)
    except TypeError as exc:
        raise ValueError(f"bad configuration for the {arch!r} network: {exc}") from exc
