"""The DCDM training loss (Kaneda et al., ICML 2023, eq. 5): scale-invariant one-step residual."""

from __future__ import annotations

import torch
from torch import Tensor

from sciml.dcdm.stencil import apply_stencil

__all__ = ["scale_invariant_loss"]


def scale_invariant_loss(q: Tensor, b: Tensor, diag: Tensor, couplings: list[Tensor]) -> Tensor:
    """Mean over the batch of ``‖b − A x̃‖² / ‖b‖²`` with ``x̃ = q (qᵀb)/(qᵀAq)``.

    ``x̃`` is the exact line-search step along the network's direction ``q = f(b)``, so the loss does not
    depend on the scale of ``q``: the network only has to point in the direction of ``A⁻¹ b``. The paper
    uses unit ``b``; dividing by ``‖b‖²`` makes that explicit.

    Args:
        q: network outputs, shape ``(B, *shape)``.
        b: right-hand sides, same shape.
        diag, couplings: the operators (see :mod:`sciml.dcdm.stencil`), shape ``(B, *shape)``.

    Returns:
        A scalar tensor ``>= 0``: 0 when ``q`` is parallel to ``A⁻¹ b``, 1 when ``qᵀb = 0``; it can exceed 1,
        since the line-search step minimises the A-norm of the error, not the residual's 2-norm.

    Raises:
        ValueError: mismatched shapes.
    """
    if q.shape != b.shape or diag.shape != b.shape:
        raise ValueError(
            f"`q`, `b` and `diag` must have one shape (B, *grid), got {tuple(q.shape)}, {tuple(b.shape)}, "
            f"{tuple(diag.shape)}"
        )
    dims = list(range(1, b.dim()))
    Aq = apply_stencil(q, diag, couplings)
    qAq = (q * Aq).sum(dims)
    alpha = (q * b).sum(dims) / qAq.clamp_min(torch.finfo(qAq.dtype).tiny)
    residual = b - alpha.reshape([-1] + [1] * len(dims)) * Aq
    return ((residual**2).sum(dims) / (b**2).sum(dims)).mean()
