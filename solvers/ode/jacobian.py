"""Jacobian providers and linear-solve strategies for the implicit ODE methods.

An implicit step needs ``J = ∂f/∂y`` at the step's start and solves systems with ``W = I/(hγ) − J``. Both
are objects handed to the method, not branches inside it:

* a :class:`JacobianProvider` returns a :class:`Jacobian` — dense ``(n, n)`` for the flat state, or
  block-diagonal ``(B, d, d)`` when the rows of a ``(*batch, d)`` state are independent samples;
  :class:`AutodiffJacobian` (reverse mode: ``n`` vector–Jacobian products in one vectorised backward),
  :class:`BatchedJacobian` (``d`` products whose cotangents are broadcast over the batch, so a batch of
  256 three-species systems costs three, not 768, and each block is its own sample's Jacobian),
  :class:`UserJacobian` (an analytic ``jac(t, y[, params])``) and :class:`FiniteDifferenceJacobian` (for
  fields ``torch.func`` cannot transform, e.g. the continuous adjoint's augmented system);
* :class:`DenseLU` factorises ``W`` once per step with :func:`torch.linalg.lu_factor` (batched over the
  blocks) and solves every stage with :func:`torch.linalg.lu_solve`.

Differentiability: the autodiff Jacobians (built with ``create_graph`` when something requires grad),
the LU factorisation and the triangular solves are ordinary autograd operations, so a Rosenbrock step — a
fixed number of linear solves, no iteration — is differentiated exactly (no Newton loop to unroll);
solutions and error estimates carry gradients with respect to ``y0`` and the parameters of ``f``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "Jacobian",
    "JacobianProvider",
    "AutodiffJacobian",
    "BatchedJacobian",
    "UserJacobian",
    "FiniteDifferenceJacobian",
    "DenseLU",
    "Factorization",
    "jacobian_provider",
]

#: ``f(t, y)`` with a host-float time and a state of the solve's shape
Field = Callable[[float, torch.Tensor], torch.Tensor]

#: dense Jacobians above this many unknowns are refused with a pointer to the batched/user options
MAX_DENSE = 8192


@dataclass(frozen=True)
class Jacobian:
    """``∂f/∂y`` of a flat state.

    Attributes:
        matrix: ``(n, n)`` (dense) or ``(B, d, d)`` (block-diagonal: block ``b`` couples entries
            ``b·d … b·d + d − 1`` of the flat state).
        blocks: True for the block-diagonal layout.
        evaluations: calls of ``f`` it took (counted in ``njev``'s work, not in ``nfe``).
    """

    matrix: torch.Tensor
    blocks: bool
    evaluations: int = 1

    def norm_inf(self) -> torch.Tensor:
        """``‖J‖_∞`` (the largest block's), an upper bound of the spectral radius (differentiable)."""
        return self.matrix.abs().sum(-1).amax()


class JacobianProvider:
    """Computes :class:`Jacobian` s of ``f`` at ``(t, y)``.

    Subclasses implement :meth:`__call__`; the returned Jacobian says how many calls of ``f`` it took
    (for the work counters: calls of ``f`` made for a Jacobian are counted in ``njev``, not ``nfe``).
    """

    def __call__(self, f: Field, t: float, y: torch.Tensor, shape: torch.Size, fy: torch.Tensor) -> Jacobian:
        """Args: ``f`` the field, ``(t, y)`` the point (``y`` flat), ``shape`` the state's shape as ``f``
        sees it, ``fy = f(t, y)`` flat (for finite differences)."""
        raise NotImplementedError


def _check_dense(n: int) -> None:
    if n > MAX_DENSE:
        raise ValueError(
            f"a dense Jacobian of {n} unknowns needs {n * n * 8 / 2**30:.1f} GiB; pass jac='batched' if the "
            "rows of a (batch, d) state are independent, or an analytic jac=..."
        )


def _leaves(out: torch.Tensor, z: torch.Tensor) -> tuple[bool, bool]:
    """Whether ``out``'s autograd graph reaches ``z``, and whether it reaches another leaf (a parameter)."""
    seen, stack = set(), [out.grad_fn]
    reaches_z = other = False
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        variable = getattr(fn, "variable", None)
        if variable is not None:
            reaches_z |= variable is z
            other |= variable is not z
            continue
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return reaches_z, other


def _vjp_rows(
    f: Field, t: float, y: torch.Tensor, shape: torch.Size, cotangents: torch.Tensor
) -> torch.Tensor | None:
    """``vᵀ ∂f/∂y`` for every ``v`` in ``cotangents`` ``(k, n)``: one evaluation of ``f`` and one vectorised
    backward pass (``is_grads_batched``). Under grad mode, when ``y`` or a parameter of ``f`` requires grad,
    the result keeps its history (``create_graph``), so it can be differentiated again. None when ``f``
    detaches its input from the graph (e.g. the continuous adjoint's augmented field): use differences."""
    grad_mode = torch.is_grad_enabled()
    with torch.enable_grad():
        tracked = grad_mode and y.requires_grad
        z = y if tracked else y.detach().requires_grad_(True)
        out = f(t, z.view(shape)).reshape(-1)
        if not out.requires_grad:  # f does not depend on y
            return torch.zeros(cotangents.shape, dtype=y.dtype, device=y.device)
        reaches_z, other = _leaves(out, z) if not tracked else (True, True)
        if not reaches_z:
            return None
        create_graph = tracked or (grad_mode and other)
        (rows,) = torch.autograd.grad(
            out, z, cotangents, is_grads_batched=True, create_graph=create_graph, allow_unused=True
        )
    if rows is None:
        return torch.zeros(cotangents.shape, dtype=y.dtype, device=y.device)
    return rows


class AutodiffJacobian(JacobianProvider):
    """Dense ``∂f/∂y`` of the whole flat state by reverse-mode AD: one evaluation of ``f`` and ``n``
    vector–Jacobian products in one vectorised backward pass (for small systems far cheaper than
    ``torch.func.jacfwd``, whose forward-mode decompositions dominate tiny fields)."""

    def __call__(self, f: Field, t: float, y: torch.Tensor, shape: torch.Size, fy: torch.Tensor) -> Jacobian:
        n = y.numel()
        _check_dense(n)
        eye = torch.eye(n, dtype=y.dtype, device=y.device)
        rows = _vjp_rows(f, t, y, shape, eye)
        if rows is None:
            return FiniteDifferenceJacobian()(f, t, y, shape, fy)
        return Jacobian(rows, blocks=False)


class BatchedJacobian(JacobianProvider):
    """Block-diagonal ``∂f/∂y`` for a state of shape ``(*batch, d)`` whose batch rows evolve independently.

    Row ``k`` of every block comes from one vector–Jacobian product with the cotangent ``e_k`` repeated in
    every batch row (exact because row ``b`` of ``f`` depends on row ``b`` of ``y`` only): ``d`` products in
    one vectorised backward pass give all ``B`` blocks ``(B, d, d)``, whatever ``B``.
    """

    def __call__(self, f: Field, t: float, y: torch.Tensor, shape: torch.Size, fy: torch.Tensor) -> Jacobian:
        if len(shape) < 2:
            raise ValueError(
                f"jac='batched' needs a state of shape (batch, ..., d); got {tuple(shape)}. Use the default "
                "dense Jacobian for a single system"
            )
        d = shape[-1]
        B = y.numel() // d
        eye = torch.eye(d, dtype=y.dtype, device=y.device)
        cot = eye[:, None, :].expand(d, B, d).reshape(d, -1)  # e_k in every row
        rows = _vjp_rows(f, t, y, shape, cot)
        if rows is None:
            raise ValueError("jac='batched' needs a field autograd can differentiate; use jac='fd'")
        rows = rows.view(d, B, d)  # (k, b, j) = ∂f_{b,k}/∂y_{b,j}
        return Jacobian(rows.transpose(0, 1), blocks=True)


class UserJacobian(JacobianProvider):
    """An analytic Jacobian ``jac(t, y)`` (tensor time, state of the problem's shape) returning ``(n, n)``
    or, for a ``(*batch, d)`` state, per-sample blocks ``(*batch, d, d)``.

    Raises:
        ValueError: (when called) the returned shape fits neither layout.
    """

    def __init__(self, jac: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        if not callable(jac):
            raise TypeError(f"`jac` must be callable as jac(t, y), got {type(jac).__name__}")
        self.jac = jac

    def __call__(self, f: Field, t: float, y: torch.Tensor, shape: torch.Size, fy: torch.Tensor) -> Jacobian:
        tt = torch.scalar_tensor(t, dtype=y.dtype, device=y.device)
        J = self.jac(tt, y.view(shape))
        n = y.numel()
        if not torch.is_tensor(J):
            raise ValueError(f"`jac` must return a tensor, got {type(J).__name__}")
        if J.shape == (n, n):
            return Jacobian(J.to(y), blocks=False, evaluations=0)
        if len(shape) >= 2 and J.shape == (*shape, shape[-1]):
            return Jacobian(J.reshape(-1, shape[-1], shape[-1]).to(y), blocks=True, evaluations=0)
        raise ValueError(
            f"`jac` returned shape {tuple(J.shape)}; expected ({n}, {n}) or per-sample blocks "
            f"{(*shape, shape[-1]) if len(shape) >= 2 else '(batch, d, d)'}"
        )


class FiniteDifferenceJacobian(JacobianProvider):
    """Dense ``∂f/∂y`` by central differences (``2n`` extra calls of ``f``, step ``ε^{1/3}·max(|y_j|, 1)``,
    error ~1e-10 relative); for fields autograd cannot differentiate, e.g. the continuous adjoint's augmented
    system (whose field detaches its input). Not differentiable with respect to ``y``."""

    def __call__(self, f: Field, t: float, y: torch.Tensor, shape: torch.Size, fy: torch.Tensor) -> Jacobian:
        n = y.numel()
        _check_dense(n)
        eps = torch.finfo(y.dtype).eps ** (1 / 3)
        with torch.no_grad():
            y = y.detach()
            steps = eps * y.abs().clamp_min(1.0)
            cols = []
            for j in range(n):
                zp, zm = y.clone(), y.clone()
                zp[j] += steps[j]
                zm[j] -= steps[j]
                diff = f(t, zp.view(shape)).reshape(-1) - f(t, zm.view(shape)).reshape(-1)
                cols.append(diff / (2 * steps[j]))
        return Jacobian(torch.stack(cols, 1), blocks=False, evaluations=2 * n)


def jacobian_provider(jac: Any) -> JacobianProvider:
    """The provider for the ``jac=`` option of :func:`~sciml.solvers.ode.solve`.

    Args:
        jac: None (dense forward-mode AD), ``"batched"`` (independent rows of a ``(*batch, d)`` state:
            block-diagonal), ``"fd"`` (finite differences), a callable ``jac(t, y)`` (analytic), or a
            :class:`JacobianProvider`.

    Raises:
        ValueError: an unknown string.
    """
    if jac is None:
        return AutodiffJacobian()
    if isinstance(jac, JacobianProvider):
        return jac
    if isinstance(jac, str):
        choices = {"autodiff": AutodiffJacobian, "batched": BatchedJacobian, "fd": FiniteDifferenceJacobian}
        if jac not in choices:
            raise ValueError(f"`jac` must be one of {sorted(choices)}, a callable or a JacobianProvider")
        return choices[jac]()
    return UserJacobian(jac)


class Factorization:
    """``W = scale·I − J`` factorised; :meth:`solve` applies ``W⁻¹`` to flat vectors."""

    def __init__(self, jacobian: Jacobian, scale: float):
        J = jacobian.matrix
        self.blocks = jacobian.blocks
        eye = torch.eye(J.shape[-1], dtype=J.dtype, device=J.device)
        self.lu, self.pivots = torch.linalg.lu_factor(scale * eye - J)

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        if self.blocks:
            B, d = self.lu.shape[0], self.lu.shape[-1]
            return torch.linalg.lu_solve(self.lu, self.pivots, rhs.view(B, d, 1)).reshape(-1)
        return torch.linalg.lu_solve(self.lu, self.pivots, rhs.unsqueeze(-1)).squeeze(-1)


class DenseLU:
    """Linear-solve strategy: LU factorisation of ``W`` (per block when the Jacobian is block-diagonal)."""

    def factor(self, jacobian: Jacobian, scale: float) -> Factorization:
        return Factorization(jacobian, scale)
