"""Training strategies of the trainer: causal weighting, residual-based adaptive resampling, loss balancing.

All three are from the list in Wang, Sankaran, Wang & Perdikaris, *An expert's guide to training
physics-informed neural networks* (2023) and apply to PINNs and PIGs alike (they act on the loss and the
collocation points, not on the model):

* :func:`causal_residual` — Wang, Sankaran & Perdikaris, *Respecting causality is all you need for
  training physics-informed neural networks* (CMAME 2024): the time interval is cut into ``M`` chunks with
  mean squared residuals ``L_1..L_M``; chunk ``i`` is weighted by ``w_i = exp(−ε Σ_{k<i} L_k)`` (held
  constant in the gradient), so later times are trained only once earlier ones are resolved.
* :func:`rad_points` — Wu, Zhu, Tan, Kartha & Lu, *A comprehensive study of non-adaptive and
  residual-based adaptive sampling for PINNs* (CMAME 2023), RAD: from a uniform pool, draw collocation
  points with probability ``∝ |r|^k / mean(|r|^k) + c``.
* :class:`GradNormBalance` — the guide's gradient-norm weighting (Wang, Teng & Perdikaris, SIAM J. Sci.
  Comput. 2021, in the guide's form): ``λ_j = Σ_i ‖∇L_i‖ / ‖∇L_j‖`` relative to the total, smoothed by
  ``λ ← α λ + (1 − α) λ_new``, recomputed every ``every`` iterations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

__all__ = ["causal_residual", "rad_points", "GradNormBalance"]


def causal_residual(
    squares: torch.Tensor, t: torch.Tensor, t0: float, t1: float, chunks: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The causally weighted mean squared residual.

    Args:
        squares: squared residuals ``(n,)`` (or ``(n, m)``, summed over equations first).
        t: the time coordinate of the same points ``(n,)``.
        t0, t1: the time interval.
        chunks: number of time chunks ``M`` (≥ 1).
        eps: causality parameter ``ε`` (≥ 0; 0 gives equal weights, i.e. the plain mean over chunks).

    Returns:
        ``(loss, weights)``: ``mean_i w_i L_i`` and the weights ``(M,)`` (detached). Empty chunks count 0.
    """
    if squares.ndim > 1:
        squares = squares.sum(dim=tuple(range(1, squares.ndim)))
    index = ((t.detach() - t0) / (t1 - t0) * chunks).long().clamp_(0, chunks - 1)
    sums = squares.new_zeros(chunks).index_add(0, index, squares)
    counts = squares.new_zeros(chunks).index_add(0, index, torch.ones_like(squares)).clamp_(min=1)
    means = sums / counts
    with torch.no_grad():
        before = torch.cumsum(means, 0) - means
        weights = torch.exp(-eps * before)
    return (weights * means).mean(), weights


def rad_points(
    pool: torch.Tensor,
    residual: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    generator: torch.Generator,
    *,
    k: float = 1.0,
    c: float = 1.0,
) -> torch.Tensor:
    """``n`` of the ``pool`` points drawn without replacement with probability ``∝ |r|^k / mean|r|^k + c``.

    Args:
        pool: candidate points ``(m, d)``, ``m ≥ n`` (uniform in the domain).
        residual: maps points to residuals (``(m,)`` or ``(m, e)``); called once.
        n: points to keep.
        generator: the trainer's random stream.
        k, c: RAD's exponent and offset (k = 1, c = 1 in Wu et al.'s recommendation; c → ∞ is uniform).

    Returns:
        The chosen points ``(n, d)``.
    """
    r = residual(pool).detach()
    if r.ndim > 1:
        r = r.abs().sum(dim=tuple(range(1, r.ndim)))
    density = r.abs().double() ** k
    mean = density.mean()
    if not torch.isfinite(mean) or mean <= 0:  # nothing to adapt to: uniform
        density = torch.ones_like(density)
    else:
        density = density / mean + c
    chosen = torch.multinomial(density, n, replacement=False, generator=generator)
    return pool[chosen]


class GradNormBalance:
    """Loss weights from the gradient norms of the terms (see the module docstring).

    Args:
        terms: names of the loss terms.
        base: the configured weights (the balance multiplies them).
        every: iterations between updates.
        alpha: smoothing factor in [0, 1).
    """

    def __init__(self, terms: Sequence[str], base: Mapping[str, float], every: int, alpha: float) -> None:
        self.terms = list(terms)
        self.base = dict(base)
        self.every = int(every)
        self.alpha = float(alpha)
        self.factors = {t: 1.0 for t in self.terms}

    def weights(self) -> dict[str, float]:
        """The weights to use now: the configured ones times the balance factors."""
        return {t: self.base[t] * self.factors[t] for t in self.terms}

    def due(self, iteration: int) -> bool:
        return iteration % self.every == 0

    def update(self, terms: Mapping[str, torch.Tensor], params: Sequence[torch.nn.Parameter]) -> None:
        """Recompute the factors from the gradient norms of the (weighted by ``base``) terms."""
        norms = {}
        for name in self.terms:
            value = self.base[name] * terms[name]
            if not value.requires_grad or self.base[name] == 0:
                norms[name] = None
                continue
            grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            squared = sum(float((g.detach() ** 2).sum()) for g in grads if g is not None)
            norms[name] = squared**0.5
        valid = {k: v for k, v in norms.items() if v is not None and v > 0}
        if not valid:
            return
        total = sum(valid.values())
        for name, norm in valid.items():
            new = total / norm
            self.factors[name] = self.alpha * self.factors[name] + (1 - self.alpha) * new
