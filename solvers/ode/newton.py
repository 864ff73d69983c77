"""Simplified Newton iteration for one implicit stage, and its derivative by the implicit function theorem.

An implicit Runge–Kutta stage with diagonal coefficient ``γ`` solves ``Y = R + hγ f(t, Y)`` for ``Y``,
where ``R`` collects the step's start and the earlier stages. :func:`newton_stage` iterates

    (I − hγ J̃) ΔY_m = R + hγ f(t, Y_m) − Y_m,    Y_{m+1} = Y_m + ΔY_m

with one factorisation of an approximate matrix ``I − hγ J̃`` (a Jacobian kept across steps, possibly for a
nearby ``h``) and stops with the convergence test of Hairer & Wanner (*Solving ODEs II*, IV.8, 8.10–8.13):
the contraction rate ``θ_m = ‖ΔY_m‖ / ‖ΔY_{m−1}‖`` estimates the distance to the solution,
``η_m ‖ΔY_m‖`` with ``η_m = θ_m / (1 − θ_m)``, which must fall below ``κ`` (in the norm scaled by the
tolerances); the iteration is abandoned when ``θ_m ≥ 1`` (divergence) or when the rate predicts that the
remaining iterations cannot reach ``κ`` — unless ``‖ΔY_m‖`` is already below the tolerance (1 in the scaled
norm), where a stalling rate is round-off noise and the iterate is accepted, as it is when ``ΔY_m`` is
within 100 ε of ``max |Y|``.

The iteration runs without autograd history. The converged stage is then given its derivative exactly by
the implicit function theorem: with the residual ``r = R + hγ f(t, Y_m; p) − Y_m`` evaluated with history
(``Y_m`` a detached leaf, so ``r`` depends on ``R`` and on the parameters ``p`` of ``f`` only),

    Y = Y_m + S(r),    S(r) = ΔY_m in the forward pass,    ∂S/∂r = (I − hγ J(Y_m))⁻¹ in the backward pass,

so ``dY = (I − hγ J)⁻¹ (dR + hγ ∂f/∂p dp)`` — the derivative of the exact stage solution — with ``J`` the
exact Jacobian (built in the backward pass from the residual's own graph: vector–Jacobian products, no new
evaluations of ``f``) and one LU solve per stage. The value is the Newton iterate the untracked path
returns, bit for bit; nothing is unrolled through the iterations. Matrix-free (Newton–Krylov), the
transposed system ``(I − hγ J)ᵀ v = g`` is solved by GMRES with vector–Jacobian products of the same graph
instead of building ``J``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["NewtonOutcome", "newton_stage", "newton_tolerance", "STALE_RATE", "FIXED_GRID_MAXITER"]

#: a contraction rate above which a kept (earlier step's) Jacobian is taken as stale: the stage fails and is
#: retried with a fresh one (Van der Pol, ε = 1e-6: a stale J̃ stalls at θ ≈ 1 − 1e-5 with ‖ΔY‖ ≈ 0.01 κ)
STALE_RATE = 0.5

#: Newton iterations allowed where the step cannot be shrunk (fixed steps: ``fixed_grid``)
FIXED_GRID_MAXITER = 50


def newton_tolerance(rtol: float, dtype: torch.dtype = torch.float64) -> float:
    """``κ`` of the convergence test in the tolerance-scaled norm: ``max(10 ε / rtol, 0.03)`` — within the
    0.01 … 0.1 Hairer & Wanner recommend for SDIRK methods (IV.8). RADAU5's ``min(0.03, √rtol)`` took 1.3–1.6×
    the work on Robertson, Van der Pol μ = 1e3, HIRES and POLLU at rtol 1e-6 (Kvaerno5) for errors within
    a factor 2 of these. ``rtol = 0`` (pure absolute control) gives 0.03."""
    eps = torch.finfo(dtype).eps
    return max(10 * eps / rtol, 0.03) if rtol > 0 else 0.03


@dataclass
class NewtonOutcome:
    """The result of one stage's Newton solve.

    Attributes:
        Y: the stage value (with autograd history attached by the implicit function theorem when tracked).
        converged: whether the convergence test passed.
        iterations: Newton iterations made (evaluations of ``f``).
        rate: the last contraction-rate estimate ``θ`` (0 when one iteration sufficed).
        eta: ``η`` to start the next stage's test with.
    """

    Y: torch.Tensor
    converged: bool
    iterations: int
    rate: float
    eta: float


class _ImplicitSolve(torch.autograd.Function):
    """Forward: the Newton correction ``ΔY`` (already computed). Backward: ``(I − hγ J)⁻ᵀ g`` with the exact
    Jacobian ``J`` of ``F = f(Y_m)`` with respect to the leaf ``Y_m``, taken from ``F``'s graph."""

    @staticmethod
    def forward(ctx, residual, delta, F, leaf, hg, block, transpose):  # noqa: D102
        ctx.F, ctx.leaf, ctx.hg, ctx.block, ctx.transpose = F, leaf, hg, block, transpose
        return delta.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):  # noqa: D102
        F, leaf, hg, d = ctx.F, ctx.leaf, ctx.hg, ctx.block
        if ctx.transpose is not None:
            return _transpose_by_products(ctx, g), None, None, None, None, None, None
        n = leaf.numel()
        size = n if d is None else d
        eye = torch.eye(size, dtype=g.dtype, device=g.device)
        B = 1 if d is None else n // d
        cot = eye if d is None else eye[:, None, :].expand(d, B, d).reshape(d, n)
        with torch.enable_grad():
            try:
                (rows,) = torch.autograd.grad(
                    F, leaf, cot, retain_graph=True, is_grads_batched=True, allow_unused=True
                )
            except RuntimeError:  # an operation without a batching rule: one product at a time
                grad = torch.autograd.grad
                parts = [grad(F, leaf, c, retain_graph=True, allow_unused=True)[0] for c in cot]
                rows = None if parts[0] is None else torch.stack(parts)
        if rows is None:
            raise RuntimeError(
                "cannot differentiate an implicit stage: the vector field detaches its input from the "
                "autograd graph; use a field autograd can differentiate"
            )
        if d is None:
            M = torch.eye(n, dtype=g.dtype, device=g.device) - hg * rows  # rows[k] = e_kᵀ J: J itself
            v = torch.linalg.solve(M.mT, g)
        else:
            J = rows.view(d, B, d).transpose(0, 1)  # (b, k, j) = ∂f_{b,k}/∂y_{b,j}
            M = eye - hg * J
            v = torch.linalg.solve(M.mT, g.view(B, d)).reshape(-1)
        return v, None, None, None, None, None, None


def _transpose_by_products(ctx, g: torch.Tensor) -> torch.Tensor:
    """``(I − hγ J)⁻ᵀ g`` by ``ctx.transpose(vjp, g, hγ)`` with ``vjp(u) = Jᵀu`` from ``F``'s graph."""
    F, leaf = ctx.F, ctx.leaf
    if not F.requires_grad:
        return g

    def vjp(u: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            (out,) = torch.autograd.grad(F, leaf, u, retain_graph=True, allow_unused=True)
        if out is None:
            raise RuntimeError(
                "cannot differentiate an implicit stage: the vector field detaches its input from the "
                "autograd graph; use a field autograd can differentiate"
            )
        return out

    return ctx.transpose(vjp, g, ctx.hg)


def newton_stage(
    f: Callable[[torch.Tensor], torch.Tensor],
    R: torch.Tensor,
    Y0: torch.Tensor,
    hg: float,
    lin: Callable[[torch.Tensor], torch.Tensor],
    scale: torch.Tensor,
    kappa: float,
    eta: float,
    max_iter: int = 10,
    track: bool = False,
    block: int | None = None,
    transpose: Callable | None = None,
    kept: bool = False,
    fixed_grid: bool = False,
) -> NewtonOutcome:
    """Solve ``Y = R + hγ f(Y)`` by simplified Newton (see the module docstring).

    Args:
        f: the field at the stage's time, on flat states.
        R: the explicit part (may carry autograd history).
        Y0: the predictor (start value).
        hg: ``hγ`` of the stage equation.
        lin: applies ``(I − hγ̃ J̃)⁻¹`` (the factorised iteration matrix).
        scale: per-component scale ``atol + rtol |y|`` of the norm.
        kappa: the convergence threshold in the scaled RMS norm.
        eta: ``η`` from the previous stage (the test's start, before a rate is known).
        max_iter: iterations allowed.
        track: attach the implicit-function-theorem derivative (``R`` or the parameters of ``f`` need it).
            With grad enabled it is also switched on when ``R`` requires grad or ``f``'s output does (a field
            whose parameters require grad, started from a first stage without gradient: one more
            evaluation), so that an untracked stage never carries a partial gradient.
        block: for a block-diagonal Jacobian, the block size (the backward pass builds blocks, not a dense
            matrix); None for dense.
        transpose: matrix-free: ``transpose(vjp, g, hg)`` solves ``(I − hγ J)ᵀ v = g`` given ``vjp(u) = Jᵀu``
            (e.g. :meth:`~sciml.solvers.ode.jacobian.KrylovSolve.solve_transpose`); used by the backward pass
            instead of building ``J``.
        kept: the iteration matrix comes from a Jacobian of an earlier step. The first correction alone then
            proves nothing (a stale ``J̃`` can give a small ``ΔY`` for a stage far from its solution, and
            take it no closer), so a stage it would accept gets one more correction, which only measures
            the contraction rate ``θ`` (the first iterate is returned); ``θ > STALE_RATE`` there, or a later
            rate that stalls or is too slow to reach ``κ``, fails the solve (the caller retries with a fresh
            Jacobian) instead of being taken for round-off.
        fixed_grid: the step cannot be shrunk (fixed steps): a contracting iteration (``θ < 1``) with a fresh
            Jacobian is not given up on a slow predicted convergence; it runs up to ``max_iter``.

    Returns:
        A :class:`NewtonOutcome`; when not converged, ``Y`` is the last iterate.
    """
    Rd = R.detach()
    Y = Y0.detach()
    tiny = 100 * torch.finfo(Y.dtype).eps
    eta = max(eta, torch.finfo(Y.dtype).eps) ** 0.8
    previous = rate = math.nan
    residual = F = leaf = None
    checking = False  # accepted on the first correction with a kept J̃: this iteration only measures θ
    track = track or (torch.is_grad_enabled() and R.requires_grad)  # an earlier stage switched to tracking
    extra = 0  # evaluations beyond one per iteration (the switch to tracking below)
    for m in range(max_iter):
        delta = None
        if not track and torch.is_grad_enabled():
            FY = f(Y)
            if FY.requires_grad:
                # f depends on tensors that require grad (its parameters) although neither R nor the start
                # does (a first stage computed without gradient): the stage needs the implicit function
                # theorem's derivative too, since untracked only the last correction would carry one (a wrong
                # one). Evaluated again below with the leaf: one more evaluation.
                track, extra = True, extra + 1
            else:
                delta = lin(Rd + hg * FY - Y)
        if track:
            with torch.enable_grad():
                leaf = Y.detach().requires_grad_(True)
                F = f(leaf)
                residual = R + hg * F - leaf
            delta = lin(residual.detach())
        elif delta is None:
            delta = lin(Rd + hg * f(Y) - Y)
        norm = float(torch.sqrt(torch.mean(torch.square(delta.detach() / scale))))
        if not math.isfinite(norm):
            return NewtonOutcome(Y, False, m + 1 + extra, math.inf, eta)
        small = float(delta.detach().abs().max()) <= tiny * float(Y.detach().abs().max())  # round-off: stop
        if checking:  # the iterate stands; the rate decides whether the kept J̃ still serves
            rate = norm / previous if previous > 0 and not small else 0.0
            if rate > STALE_RATE:
                return NewtonOutcome(Y, False, m + 1 + extra, rate, 1.0)
            if track:  # the value is the checked iterate (a zero correction), the derivative the IFT's
                zero = torch.zeros_like(delta)
                Y = leaf.detach() + _ImplicitSolve.apply(residual, zero, F, leaf, hg, block, transpose)
            return NewtonOutcome(Y, True, m + 1 + extra, rate, eta)  # η as accepted on the first correction
        if m > 0 and not small:
            rate = norm / previous if previous > 0 else 0.0
            eta = rate / (1.0 - rate) if rate < 1.0 else math.inf
            # diverging, or too slow to reach κ in the iterations left (a step that can shrink, or a kept J̃)
            slow = (not fixed_grid or kept) and rate ** (max_iter - 1 - m) / (1.0 - rate) * norm > kappa
            if rate >= 1.0 or slow:
                if norm > 1.0 or (kept and rate > STALE_RATE):  # a kept Jacobian gone stale, not round-off
                    return NewtonOutcome(Y, False, m + 1 + extra, rate, 1.0)
                small = True  # stagnating within the tolerance: round-off, not a failure
        previous = norm
        converged = small or eta * norm <= kappa
        if converged and m == 0 and kept and not small and max_iter > 1:
            checking = True
            Y = Y + delta
            continue
        if converged:
            if track:
                Y = leaf.detach() + _ImplicitSolve.apply(residual, delta, F, leaf, hg, block, transpose)
            else:
                Y = Y + delta
            return NewtonOutcome(Y, True, m + 1 + extra, 0.0 if m == 0 or small else rate, eta)
        Y = Y + delta
    return NewtonOutcome(Y, False, max_iter + extra, rate, eta)
