"""Jacobian providers and linear-solve strategies for the implicit ODE methods.

An implicit step needs ``J = ∂f/∂y`` at the step's start and solves systems with ``W = I/(hγ) − J``. Both
are objects handed to the method, not branches inside it:

* a :class:`JacobianProvider` returns a :class:`Jacobian` — dense ``(n, n)`` for the flat state, or
  block-diagonal ``(B, d, d)`` when the rows of a ``(*batch, d)`` state are independent samples;
  :class:`AutodiffJacobian` (reverse mode: ``n`` vector–Jacobian products in one vectorised backward),
  :class:`BatchedJacobian` (``d`` products whose cotangents are broadcast over the batch, so a batch of
  256 three-species systems costs three, not 768, and each block is its own sample's Jacobian),
  :class:`UserJacobian` (an analytic ``jac(t, y[, params])``; sparse results densified) and
  :class:`FiniteDifferenceJacobian` (for fields autograd cannot differentiate, e.g. the continuous adjoint's
  augmented system, or a user field that detaches its input: the autodiff providers detect those, probing
  an output without autograd history once with a perturbed ``y``, and fall back to differences);
* :class:`DenseLU` factorises ``W`` once per step with :func:`torch.linalg.lu_factor` (batched over the
  blocks) and solves every stage with :func:`torch.linalg.lu_solve`;
* :class:`NewtonKrylov` (``jac="krylov"``, ESDIRK methods) forms no matrix: its
  :class:`JacobianOperator` applies ``J`` by Jacobian–vector products and its :class:`KrylovSolve` solves
  with ``W`` by GMRES (:func:`~sciml.solvers.linear.gmres`), optionally preconditioned (a callable, or the
  built-in :class:`BandedPreconditioner` for method-of-lines states), for states too large for a dense
  ``n × n`` matrix. Newton sees the same ``factor(J, scale).solve(r)`` either way.

Differentiability: the autodiff Jacobians (built with ``create_graph`` when something requires grad),
the LU factorisation and the triangular solves are ordinary autograd operations, so a Rosenbrock step — a
fixed number of linear solves, no iteration — is differentiated exactly (no Newton loop to unroll);
solutions and error estimates carry gradients with respect to ``y0`` and the parameters of ``f``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
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
    "JacobianOperator",
    "NewtonKrylov",
    "KrylovSolve",
    "KrylovPreconditioner",
    "BandedPreconditioner",
    "NonFiniteJacobian",
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


class NonFiniteJacobian(ValueError):
    """A Jacobian with NaN/inf entries where ``f`` is finite: no smaller step repairs it (it is taken at the
    step's start), so the integration loop ends the solve with this message."""


_NON_FINITE_ADVICE = {
    "user": "`jac(t, y)` returned non-finite values (NaN/inf) at t={t:.6g}, where f is finite; check `jac`",
    "autodiff": (
        "the automatic Jacobian ∂f/∂y (reverse-mode AD of f) is non-finite (NaN/inf) at t={t:.6g}, where f "
        "is finite. The usual cause is torch.where with a branch whose derivative is infinite where it is "
        "not selected: torch.where(y > 0, torch.sqrt(y), 0) at y = 0 has a NaN gradient (0·inf). Apply the "
        "where to the input instead, e.g. torch.sqrt(torch.clamp(y, min=torch.finfo(y.dtype).tiny)), or "
        "pass an analytic `jac`"
    ),
    "differences": (
        "the finite-difference Jacobian ∂f/∂y is non-finite (NaN/inf) at t={t:.6g}: f is non-finite at a "
        "state perturbed slightly from the solution there; check the vector field, or pass an analytic `jac`"
    ),
}


def _finite(J: Jacobian, t: Any, fy: torch.Tensor, source: str) -> Jacobian:
    """``J`` when its entries are finite (one check per Jacobian); :class:`NonFiniteJacobian` naming
    ``source`` (``"user"``, ``"autodiff"`` or ``"differences"``) otherwise."""
    if bool(torch.isfinite(J.matrix).all()):
        return J
    t = float(t)
    if not bool(torch.isfinite(fy).all()):
        raise NonFiniteJacobian(
            f"f returned non-finite values (NaN/inf) at t={t:.6g}; check the vector field"
        )
    raise NonFiniteJacobian(_NON_FINITE_ADVICE[source].format(t=t))


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
            f"a dense Jacobian of {n} unknowns needs {n * n * 8 / 2**30:.1f} GiB (and a dense LU of it); "
            "pass jac='batched' if the rows of a (batch, d) state are independent, or use "
            "method='kvaerno5' (or 'kvaerno3') with jac='krylov' (matrix-free Newton-Krylov, optionally "
            "preconditioned: jac=NewtonKrylov(preconditioner=...)); an analytic jac=... returning an (n, n) "
            "matrix is factorised densely too"
        )


def graph_leaves(out: torch.Tensor, stop: Any = None) -> list[torch.Tensor]:
    """The leaf tensors (those autograd accumulates gradients into) that ``out``'s autograd graph reaches,
    without walking past the graph node ``stop``."""
    found, seen, stack = [], set(), [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn is stop or fn in seen:
            continue
        seen.add(fn)
        variable = getattr(fn, "variable", None)
        if variable is not None:
            found.append(variable)
            continue
        stack.extend(nxt for nxt, _ in fn.next_functions)
    return found


def _leaves(out: torch.Tensor, z: torch.Tensor) -> tuple[bool, bool]:
    """Whether ``out``'s autograd graph reaches ``z``, and whether it reaches another leaf (a parameter)."""
    leaves = graph_leaves(out)
    return any(v is z for v in leaves), any(v is not z for v in leaves)


def _fd_step(y: torch.Tensor) -> torch.Tensor:
    """Central-difference steps ``ε^{1/3}·max(|y_j|, 1)``."""
    return torch.finfo(y.dtype).eps ** (1 / 3) * y.abs().clamp_min(1.0)


def _depends_on_y(f: Field, t: float, y: torch.Tensor, shape: torch.Size, fy: torch.Tensor) -> bool:
    """Whether ``f`` changes when ``y`` does: one call of ``f`` at ``y + δ`` (``δ_j`` a difference step times
    a factor in [0.5, 1.5) that varies with ``j``, so that no linear combination of the entries cancels by
    symmetry). For an output without autograd history, which is either constant in ``y`` or a field that
    detached its input (numpy inside, ``y.detach()``, ``torch.no_grad()``)."""
    with torch.no_grad():
        y = y.detach()
        j = torch.arange(y.numel(), dtype=y.dtype, device=y.device)
        weights = 0.5 + torch.remainder(j * 0.6180339887498949 + 0.3, 1.0)
        shifted = f(t, (y + _fd_step(y) * weights).view(shape)).reshape(-1)
        return not torch.equal(shifted, fy.detach().reshape(-1))


def _warn_differences(provider: str, why: str) -> None:
    import warnings

    warnings.warn(
        f"{provider}: {why}, so autograd cannot give its Jacobian; using central finite differences for the "
        "rest of this solve (the documented fallback; about 2·n extra calls of f per Jacobian). Pass "
        "jac='fd' to choose this explicitly (and silence this warning), or an analytic jac=callable",
        UserWarning,
        stacklevel=2,
    )


def _vjp_rows(
    f: Field, t: float, y: torch.Tensor, shape: torch.Size, cotangents: torch.Tensor
) -> tuple[torch.Tensor | None, int, str]:
    """``vᵀ ∂f/∂y`` for every ``v`` in ``cotangents`` ``(k, n)``: one evaluation of ``f`` and one vectorised
    backward pass (``is_grads_batched``). Under grad mode, when ``y`` or a parameter of ``f`` requires grad,
    the result keeps its history (``create_graph``), so it can be differentiated again.

    Returns ``(rows, calls of f, why)``: ``rows`` is None when ``f`` detaches its input from the graph (the
    continuous adjoint's augmented field; numpy inside, ``y.detach()``, ``torch.no_grad()``): use
    differences, for the reason ``why``. An output without any autograd history is probed once
    (:func:`_depends_on_y`): zeros if ``f`` is constant in ``y``, None if it detached ``y``."""
    grad_mode = torch.is_grad_enabled()
    with torch.enable_grad():
        tracked = grad_mode and y.requires_grad
        z = y if tracked else y.detach().requires_grad_(True)
        out = f(t, z.view(shape)).reshape(-1)
        if not out.requires_grad:  # no graph: f is constant in y, or detached it
            if _depends_on_y(f, t, y, shape, out):
                return None, 2, "f(t, y) returns a tensor without autograd history that changes with y"
            return torch.zeros(cotangents.shape, dtype=y.dtype, device=y.device), 2, ""
        reaches_z, other = _leaves(out, z) if not tracked else (True, True)
        if not reaches_z:
            return None, 1, "the autograd graph of f(t, y) does not reach y"
        create_graph = tracked or (grad_mode and other)
        (rows,) = torch.autograd.grad(
            out, z, cotangents, is_grads_batched=True, create_graph=create_graph, allow_unused=True
        )
    if rows is None:
        return torch.zeros(cotangents.shape, dtype=y.dtype, device=y.device), 1, ""
    return rows, 1, ""


class AutodiffJacobian(JacobianProvider):
    """Dense ``∂f/∂y`` of the whole flat state by reverse-mode AD: one evaluation of ``f`` and ``n``
    vector–Jacobian products in one vectorised backward pass (for small systems far cheaper than
    ``torch.func.jacfwd``, whose forward-mode decompositions dominate tiny fields).

    Fallback: a field that detaches its input (numpy inside, ``y.detach()``, ``torch.no_grad()``; its output
    has no autograd history although it changes with ``y``, which one extra call of ``f`` tells from a field
    constant in ``y``), or whose graph does not reach ``y``, gets central differences
    (:class:`FiniteDifferenceJacobian`) for the rest of the solve, with a one-time ``UserWarning`` (silenced
    by ``jac="fd"``; not for the continuous adjoint's augmented field, which always detaches)."""

    def __init__(self) -> None:
        self._differences_for: Any = None  # the field found to detach its input

    def __call__(self, f: Field, t: float, y: torch.Tensor, shape: torch.Size, fy: torch.Tensor) -> Jacobian:
        n = y.numel()
        _check_dense(n)
        if f is self._differences_for:
            return FiniteDifferenceJacobian()(f, t, y, shape, fy)
        eye = torch.eye(n, dtype=y.dtype, device=y.device)
        rows, calls, why = _vjp_rows(f, t, y, shape, eye)
        if rows is None:
            if calls > 1:  # no autograd history at all: a user field (the adjoint's keeps a graph)
                _warn_differences("the default autodiff Jacobian", why)
                self._differences_for = f
            J = FiniteDifferenceJacobian()(f, t, y, shape, fy)
            return Jacobian(J.matrix, blocks=False, evaluations=J.evaluations + calls - 1)
        return _finite(Jacobian(rows, blocks=False, evaluations=calls), t, fy, "autodiff")


def _batched_differences(
    f: Field, t: float, y: torch.Tensor, shape: torch.Size, fy: torch.Tensor
) -> Jacobian:
    """Block-diagonal ``∂f/∂y`` of a ``(*batch, d)`` state by central differences: entry ``k`` of every batch
    row is perturbed at once (the rows are independent), ``2d`` calls of ``f`` for all blocks."""
    d = shape[-1]
    with torch.no_grad():
        Y = y.detach().reshape(-1, d)
        steps = _fd_step(Y)
        cols = []
        for k in range(d):
            zp, zm = Y.clone(), Y.clone()
            zp[:, k] += steps[:, k]
            zm[:, k] -= steps[:, k]
            diff = f(t, zp.view(shape)).reshape(-1, d) - f(t, zm.view(shape)).reshape(-1, d)
            cols.append(diff / (2 * steps[:, k : k + 1]))
    return _finite(Jacobian(torch.stack(cols, -1), blocks=True, evaluations=2 * d), t, fy, "differences")


class BatchedJacobian(JacobianProvider):
    """Block-diagonal ``∂f/∂y`` for a state of shape ``(*batch, d)`` whose batch rows evolve independently.

    Row ``k`` of every block comes from one vector–Jacobian product with the cotangent ``e_k`` repeated in
    every batch row (exact because row ``b`` of ``f`` depends on row ``b`` of ``y`` only): ``d`` products in
    one vectorised backward pass give all ``B`` blocks ``(B, d, d)``, whatever ``B``. A field autograd cannot
    differentiate (one that detaches its input, as for :class:`AutodiffJacobian`) gets the blocks by central
    differences instead — entry ``k`` of every row perturbed at once, ``2d`` calls of ``f`` — with a one-time
    ``UserWarning``.
    """

    def __init__(self) -> None:
        self._differences_for: Any = None

    def __call__(self, f: Field, t: float, y: torch.Tensor, shape: torch.Size, fy: torch.Tensor) -> Jacobian:
        if len(shape) < 2:
            raise ValueError(
                f"jac='batched' needs a state of shape (batch, ..., d); got {tuple(shape)}. Use the default "
                "dense Jacobian for a single system"
            )
        if f is self._differences_for:
            return _batched_differences(f, t, y, shape, fy)
        d = shape[-1]
        B = y.numel() // d
        eye = torch.eye(d, dtype=y.dtype, device=y.device)
        cot = eye[:, None, :].expand(d, B, d).reshape(d, -1)  # e_k in every row
        rows, calls, why = _vjp_rows(f, t, y, shape, cot)
        if rows is None:
            _warn_differences("jac='batched'", why)
            self._differences_for = f
            J = _batched_differences(f, t, y, shape, fy)
            return Jacobian(J.matrix, blocks=True, evaluations=J.evaluations + calls - 1)
        rows = rows.view(d, B, d)  # (k, b, j) = ∂f_{b,k}/∂y_{b,j}
        return _finite(Jacobian(rows.transpose(0, 1), blocks=True, evaluations=calls), t, fy, "autodiff")


class UserJacobian(JacobianProvider):
    """An analytic Jacobian ``jac(t, y)`` (tensor time, state of the problem's shape) returning ``(n, n)``
    or, for a ``(*batch, d)`` state, per-sample blocks ``(*batch, d, d)``. A sparse tensor (COO, CSR, …) is
    densified with ``to_dense()``: the factorisations are dense LU, so sparsity saves nothing here (for large
    sparse systems use ``jac="batched"`` or ``jac="krylov"`` with a preconditioner), and an ``(n, n)``
    Jacobian above the dense limit (``MAX_DENSE`` unknowns) is refused as the autodiff one is.

    Raises:
        ValueError: (when called) the returned shape fits neither layout, or ``n`` exceeds the dense limit.
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
        if J.shape == (n, n):  # an (n, n) matrix is factorised densely: the same size limit
            _check_dense(n)
        if J.layout != torch.strided:  # sparse: the LU factorisations are dense
            J = J.to_dense()
        if J.shape == (n, n):
            return _finite(Jacobian(J.to(y), blocks=False, evaluations=0), t, fy, "user")
        if len(shape) >= 2 and J.shape == (*shape, shape[-1]):
            J = Jacobian(J.reshape(-1, shape[-1], shape[-1]).to(y), blocks=True, evaluations=0)
            return _finite(J, t, fy, "user")
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
        with torch.no_grad():
            y = y.detach()
            steps = _fd_step(y)
            cols = []
            for j in range(n):
                zp, zm = y.clone(), y.clone()
                zp[j] += steps[j]
                zm[j] -= steps[j]
                diff = f(t, zp.view(shape)).reshape(-1) - f(t, zm.view(shape)).reshape(-1)
                cols.append(diff / (2 * steps[j]))
        return _finite(Jacobian(torch.stack(cols, 1), blocks=False, evaluations=2 * n), t, fy, "differences")


def jacobian_provider(jac: Any, matrix_free: bool = False) -> JacobianProvider:
    """The provider for the ``jac=`` option of :func:`~sciml.solvers.ode.solve`.

    Args:
        jac: None (dense reverse-mode AD), ``"batched"`` (independent rows of a ``(*batch, d)`` state:
            block-diagonal), ``"fd"`` (finite differences), ``"krylov"`` (matrix-free Newton–Krylov with
            default settings; :class:`NewtonKrylov` for others), a callable ``jac(t, y)`` (analytic), or a
            :class:`JacobianProvider`.
        matrix_free: whether the calling method accepts a matrix-free :class:`NewtonKrylov` (the ESDIRK
            methods do; the Rosenbrock methods and Radau IIA need a matrix).

    Raises:
        ValueError: an unknown string, or a matrix-free option for a method that needs a matrix.
    """
    if jac is None:
        return AutodiffJacobian()
    if isinstance(jac, str):
        choices = {
            "autodiff": AutodiffJacobian, "batched": BatchedJacobian, "fd": FiniteDifferenceJacobian,
            "krylov": NewtonKrylov,
        }  # fmt: skip
        if jac not in choices:
            raise ValueError(f"`jac` must be one of {sorted(choices)}, a callable or a JacobianProvider")
        jac = choices[jac]()
    if isinstance(jac, NewtonKrylov) and not matrix_free:
        raise ValueError(
            "matrix-free Newton–Krylov (jac='krylov' or NewtonKrylov) is available for the ESDIRK methods "
            "'kvaerno3' and 'kvaerno5' only: Rosenbrock methods and radau5 need a Jacobian matrix "
            "(use jac='batched' or an analytic jac= for large block-diagonal systems)"
        )
    if isinstance(jac, JacobianProvider):
        return jac
    return UserJacobian(jac)


class Factorization:
    """``W = scale·I − J`` factorised; :meth:`solve` applies ``W⁻¹`` to flat vectors."""

    def set_tolerance(self, weights: torch.Tensor, tol: float) -> None:
        """The accuracy Newton needs from :meth:`solve`: residuals ``‖(r − W x)/weights‖_RMS ≲ tol``. A
        direct factorisation is exact and ignores it; :class:`KrylovSolve` stops GMRES there."""

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


# ------------------------------------------------------------------------------ matrix-free Newton–Krylov
class JacobianOperator:
    """``J = ∂f/∂y`` at one point ``(t, y)`` as products, without forming the ``n × n`` matrix.

    ``f(t, y)`` is evaluated once with autograd history (counted in ``nfe``: it is a call of ``f``). A
    product ``J v`` is then the derivative of the vector–Jacobian product ``u ↦ Jᵀu`` (built once, with
    ``create_graph``) in the direction ``v`` ("double-vjp"): two backward passes through the recorded graph,
    no new evaluation of ``f``, exact to round-off (``torch.func.jvp`` gave the same numbers at 15× the
    cost of ``f`` on the Brusselator here; this costs about 2×). For a field that detaches its input from the
    graph (the continuous adjoint's augmented system), products fall back to the one-sided difference
    ``(f(y + εv) − f(y))/ε`` with ``ε = √eps (1 + ‖y‖)/‖v‖`` (Knoll & Keyes, *Jacobian-free Newton–Krylov
    methods*, J. Comput. Phys. 193 (2004), eq. 11): one call of ``f`` each, moved from ``nfe`` to the
    product count; so do they for fields with an operation autograd cannot differentiate twice.

    Attributes:
        t, y: the point (``y`` flat, detached).
        products: Jacobian–vector products made so far (counted in ``Solution.stats.njvp``).
        evaluations: 0 (the one recorded call of ``f`` stays in ``nfe``).
    """

    matrix_free = True
    blocks = False
    evaluations = 0

    def __init__(self, f: Field, t: float, y: torch.Tensor, shape: torch.Size):
        self.t, self.y, self.shape = t, y.detach(), shape
        self.products = 0
        self.counters: Any = None  # an ImplicitCounters, set by ImplicitMethod.counted_jacobian
        self._f = f
        self._fy = self._Jt = self._u = None
        with torch.enable_grad():
            z = self.y.clone().requires_grad_(True)
            F = f(t, z.view(shape)).reshape(-1)
            if not F.requires_grad or not _leaves(F, z)[0]:  # f detaches y (or ignores it): differences
                self.mode = "differences"
                self._fy = F.detach()
                return
            self.mode = "autodiff"
            self._fy = F.detach()
            self._u = torch.zeros_like(F, requires_grad=True)
            try:
                (Jt,) = torch.autograd.grad(F, z, self._u, create_graph=True, allow_unused=True)
            except RuntimeError:  # an operation without a derivative of its backward: differences
                self.mode = "differences"
                return
        if Jt is None or not Jt.requires_grad:  # Jᵀu does not depend on u: J = 0
            self.mode = "zero"
        self._Jt = Jt

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        """``J v`` for a flat ``v``."""
        self.products += 1
        if self.counters is not None:
            self.counters.njvp += 1
        if self.mode == "zero":
            return torch.zeros_like(v)
        if self.mode == "differences":
            vnorm = float(torch.linalg.vector_norm(v))
            if vnorm == 0.0:
                return torch.zeros_like(v)
            eps = torch.finfo(v.dtype).eps ** 0.5 * (1.0 + float(torch.linalg.vector_norm(self.y))) / vnorm
            if self.counters is not None:
                self.counters.nfe_jacobian += 1
            with torch.no_grad():
                shifted = self._f(self.t, (self.y + eps * v).view(self.shape)).reshape(-1)
            return (shifted - self._fy) / eps
        try:
            (out,) = torch.autograd.grad(self._Jt, self._u, v, retain_graph=True)
        except RuntimeError:  # no double backward for some operation of f: differences from now on
            self.mode = "differences"
            self.products -= 1
            if self.counters is not None:
                self.counters.njvp -= 1
            return self.jvp(v)
        return out

    def norm_inf(self) -> torch.Tensor:
        raise NotImplementedError("a matrix-free Jacobian has no ‖J‖_∞; the stiffness index is not computed")


class KrylovPreconditioner:
    """A preconditioner for :class:`NewtonKrylov`: approximates ``(I − hγ J)⁻¹``.

    Subclasses implement :meth:`apply`; they may override :meth:`update` (called with every new
    :class:`JacobianOperator`: build an approximation from products ``J v``, which are counted),
    :meth:`factor`
    (called when ``hγ`` changes; counted in ``nlu``) and, with ``transposable = True``,
    :meth:`apply_transpose` (used by the backward pass's transposed solves; otherwise those are not
    preconditioned).
    """

    transposable = False

    def update(self, jacobian: JacobianOperator) -> None:
        """A new linearisation point."""

    def factor(self, hg: float) -> None:
        """A new ``hγ``."""

    def apply(self, v: torch.Tensor, hg: float) -> torch.Tensor:
        """``≈ (I − hγ J)⁻¹ v`` for a flat ``v``."""
        raise NotImplementedError

    def apply_transpose(self, v: torch.Tensor, hg: float) -> torch.Tensor:
        """``≈ (I − hγ J)⁻ᵀ v`` (when ``transposable``)."""
        raise NotImplementedError


class _CallablePreconditioner(KrylovPreconditioner):
    """A user callable ``P(v, hg)`` on states of the problem's shape."""

    def __init__(self, fn: Callable[[torch.Tensor, float], torch.Tensor]):
        self.fn = fn
        self.shape: torch.Size | None = None

    def update(self, jacobian: JacobianOperator) -> None:
        self.shape = jacobian.shape

    def apply(self, v: torch.Tensor, hg: float) -> torch.Tensor:
        out = self.fn(v.view(self.shape), hg)
        if not torch.is_tensor(out) or out.shape != self.shape:
            raise ValueError(
                f"the preconditioner returned {type(out).__name__} of shape "
                f"{tuple(getattr(out, 'shape', ()))} "
                f"for a state of shape {tuple(self.shape)}; it must return P(v, hg) ≈ (I − hg·J)⁻¹ v of the "
                "same shape"
            )
        return out.reshape(-1)


class BandedPreconditioner(KrylovPreconditioner):
    """``(I − hγ J_band)⁻¹`` by a banded LU (LAPACK ``gbtrf``/``gbtrs``), with ``J_band`` the entries of
    ``J`` within ``lower`` diagonals below and ``upper`` above the main one, in the flat order of the state.

    The band is computed from ``lower + upper + 1`` Jacobian–vector products per linearisation (columns
    ``j ≡ k mod (lower + upper + 1)`` share a product: Curtis, Powell & Reid, *On the estimation of sparse
    Jacobian matrices*, IMA J. Appl. Math. 13 (1974)); where ``J`` is banded (1-D method-of-lines problems:
    the 1-D Brusselator with interleaved ``(u_i, v_i)`` has ``lower = upper = 2``) it is exact and GMRES
    converges in one iteration; a wider ``J`` makes it an approximation GMRES corrects. Applied with another
    ``hγ`` than the factorised one (the backward pass's transposed solves, stage by stage), it refactorises.
    Work ``O(n·(l+u)²)`` per factorisation, ``O(n·(l+u))`` per application, on the CPU in float64.

    Args:
        lower, upper: the bandwidths (non-negative integers).

    Raises:
        ValueError: negative or non-integer bandwidths.
    """

    transposable = True

    def __init__(self, lower: int, upper: int):
        for name, value in (("lower", lower), ("upper", upper)):
            if isinstance(value, bool) or int(value) != value or value < 0:
                raise ValueError(f"`{name}` must be a non-negative integer bandwidth, got {value!r}")
        self.lower, self.upper = int(lower), int(upper)
        self.band: np.ndarray | None = None
        self._lu, self._hg = None, math.nan

    def update(self, jacobian: JacobianOperator) -> None:
        l, u = self.lower, self.upper
        y = jacobian.y
        n, w = y.numel(), l + u + 1
        band = np.zeros((l + u + 1, n))  # LAPACK band storage: band[u + i - j, j] = J[i, j]
        rows = np.arange(n)
        for k in range(min(w, n)):
            d = torch.zeros_like(y)
            d[k::w] = 1.0
            Jd = jacobian.jvp(d).detach().cpu().double().numpy()
            cols = rows - l + (k - rows + l) % w  # the column of group k that row i sees within the band
            ok = (cols >= 0) & (cols < n)
            band[u + rows[ok] - cols[ok], cols[ok]] = Jd[ok]
        self.band, self._lu = band, None

    def factor(self, hg: float) -> None:
        from scipy.linalg import lapack

        l, u = self.lower, self.upper
        ab = np.zeros((2 * l + u + 1, self.band.shape[1]))
        ab[l:] = -hg * self.band
        ab[l + u] += 1.0
        lu, piv, info = lapack.dgbtrf(ab, l, u)
        if info > 0:
            raise ValueError(
                f"BandedPreconditioner: I − hγ·J_band is singular (zero pivot {info}) at hγ = {hg}"
            )
        self._lu, self._piv = np.asfortranarray(lu), piv  # gbtrs would copy a C-ordered array per call
        self._hg = hg

    def _solve(self, v: torch.Tensor, trans: int, hg: float) -> torch.Tensor:
        from scipy.linalg import lapack

        if self._lu is None or abs(hg - self._hg) > 1e-12 * abs(self._hg):  # e.g. a backward pass's stage
            self.factor(hg)

        x, info = lapack.dgbtrs(
            self._lu,
            self.lower,
            self.upper,
            v.detach().cpu().double().numpy()[:, None],
            self._piv,
            trans=trans,
        )
        return torch.from_numpy(x[:, 0]).to(v)

    def apply(self, v: torch.Tensor, hg: float) -> torch.Tensor:
        return self._solve(v, 0, hg)

    def apply_transpose(self, v: torch.Tensor, hg: float) -> torch.Tensor:
        return self._solve(v, 1, hg)


class NewtonKrylov(JacobianProvider):
    """Matrix-free Newton–Krylov for the ESDIRK methods (``jac="krylov"`` is ``NewtonKrylov()``).

    No Jacobian matrix is formed: the simplified Newton iteration of each stage solves its linear systems
    with ``W = I/(hγ) − J`` by restarted GMRES (:func:`~sciml.solvers.linear.gmres`), ``J`` applied by
    products at the kept linearisation point (:class:`JacobianOperator`; the same reuse rules as the dense
    Jacobian). Inexact Newton: GMRES stops when the linear residual, in the tolerance-scaled RMS norm of the
    Newton test, is below ``forcing·κ`` (the convergence threshold ``κ`` of that test; CVODE's
    ``epslin = 0.05`` is the default). The implicit-function-theorem derivative of a stage (backward pass)
    solves ``(I − hγ J)ᵀ v = g`` by GMRES too, with vector–Jacobian products of the stage's recorded
    evaluation, to ``backward_rtol`` (an unconverged transposed solve raises). Counted in
    ``Solution.stats``: ``njvp`` (every product, the preconditioner's included), ``nlu`` (new ``hγ`` set-ups:
    the preconditioner's factorisations), ``njev`` stays 0; the backward pass's products are not counted.
    Memory ``O(restart · n)``. The stiffness index is not computed (it needs ``‖J‖_∞``).

    Args:
        preconditioner: None, a callable ``P(v, hg)`` returning ``≈ (I − hg·J)⁻¹ v`` for ``v`` of the state's
            shape (e.g. a diffusion-only solve), or a :class:`KrylovPreconditioner` such as
            :class:`BandedPreconditioner`. Applied on the right (GMRES minimises the true residual).
        restart: GMRES's Krylov vectors per cycle.
        max_iterations: GMRES iterations per linear solve (an unconverged solve is returned as it is: Newton's
            convergence test then rejects the step if it matters).
        forcing: the linear residual relative to the Newton threshold, in (0, 1).
        backward_rtol: relative residual of the backward pass's transposed solves.

    Raises:
        ValueError: settings out of range; TypeError: a preconditioner of another kind.
    """

    def __init__(
        self,
        preconditioner: KrylovPreconditioner | Callable[[torch.Tensor, float], torch.Tensor] | None = None,
        restart: int = 30,
        max_iterations: int = 100,
        forcing: float = 0.05,
        backward_rtol: float = 1e-10,
    ):
        for name, value in (("restart", restart), ("max_iterations", max_iterations)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}")
        if not 0 < forcing < 1:
            raise ValueError(f"`forcing` must lie in (0, 1), got {forcing!r}")
        if not 0 < backward_rtol < 1:
            raise ValueError(f"`backward_rtol` must lie in (0, 1), got {backward_rtol!r}")
        if preconditioner is not None and not isinstance(preconditioner, KrylovPreconditioner):
            if not callable(preconditioner):
                raise TypeError(
                    "`preconditioner` must be None, a callable P(v, hg) ≈ (I − hg·J)⁻¹ v or a "
                    f"KrylovPreconditioner, got {type(preconditioner).__name__}"
                )
            preconditioner = _CallablePreconditioner(preconditioner)
        self.preconditioner = preconditioner
        self.restart, self.max_iterations = int(restart), int(max_iterations)
        self.forcing, self.backward_rtol = float(forcing), float(backward_rtol)
        self._updated_for: JacobianOperator | None = None

    def __call__(
        self, f: Field, t: float, y: torch.Tensor, shape: torch.Size, fy: torch.Tensor
    ) -> JacobianOperator:
        return JacobianOperator(f, t, y, shape)

    def factor(self, jacobian: JacobianOperator, scale: float) -> KrylovSolve:
        """The linear-solve strategy's entry (as :meth:`DenseLU.factor`): ``W = scale·I − J`` to be solved
        by GMRES; updates and factorises the preconditioner."""
        if not isinstance(jacobian, JacobianOperator):
            raise TypeError("NewtonKrylov solves with a JacobianOperator (from NewtonKrylov itself)")
        P = self.preconditioner
        if P is not None:
            if self._updated_for is not jacobian:
                P.update(jacobian)
                self._updated_for = jacobian
            P.factor(1.0 / scale)
        return KrylovSolve(jacobian, scale, self)


class KrylovSolve(Factorization):
    """``W = scale·I − J`` solved by right-preconditioned GMRES on the system scaled by the Newton weights
    (``D W D⁻¹ (D x) = D r``, ``D = diag(1/weights)``: GMRES minimises the residual in the norm Newton tests).
    Built by :meth:`NewtonKrylov.factor`; nothing is factorised here but the preconditioner."""

    def __init__(self, jacobian: JacobianOperator, scale: float, options: NewtonKrylov):
        self.J, self.scale, self.options = jacobian, float(scale), options
        self.blocks = False
        self.weights: torch.Tensor | None = None
        self.tol = 1e-3
        self.last: Any = None  # the last LinearSolveResult

    def set_tolerance(self, weights: torch.Tensor, tol: float) -> None:
        self.weights, self.tol = weights, float(tol)

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        from sciml.solvers.linear import gmres

        opt, J, s = self.options, self.J, self.scale
        hg = 1.0 / s
        d = torch.ones_like(rhs) if self.weights is None else self.weights.to(rhs)
        P = opt.preconditioner
        if not bool(torch.isfinite(rhs).all()):  # a diverging Newton iterate: let Newton's test reject it
            return torch.full_like(rhs, math.nan)

        def A(v):  # D W D⁻¹ v
            return s * v - J.jvp(v * d) / d

        M = None if P is None else (lambda v: P.apply(v * d, hg) * hg / d)
        n = rhs.numel()
        # Newton's own test judges the step: no extra product with A per Newton iteration
        result = gmres(
            A, rhs / d, rtol=0.0, atol=opt.forcing * self.tol * n**0.5, restart=opt.restart,
            maxiter=opt.max_iterations, M=M, true_residual=False,
        )  # fmt: skip
        self.last = result
        return result.x * d

    def solve_transpose(
        self, vjp: Callable[[torch.Tensor], torch.Tensor], g: torch.Tensor, hg: float
    ) -> torch.Tensor:
        """``v`` with ``(I − hγ J)ᵀ v = g`` for the backward pass, ``J`` given by ``vjp(u) = Jᵀu``.

        Raises:
            RuntimeError: GMRES did not reach ``backward_rtol``.
        """
        from sciml.solvers.linear import gmres

        opt = self.options
        P = opt.preconditioner
        M = None if P is None or not P.transposable else (lambda v: P.apply_transpose(v, hg))
        result = gmres(
            lambda v: v - hg * vjp(v), g, rtol=opt.backward_rtol, atol=0.0, restart=opt.restart,
            maxiter=max(10 * opt.max_iterations, 1000), M=M, true_residual=False,
        )  # fmt: skip
        if not result.converged:
            raise RuntimeError(
                f"the backward pass of an implicit stage could not solve (I − hγJ)ᵀ v = g by GMRES: "
                f"{result.message}. Give NewtonKrylov a preconditioner with apply_transpose, or a larger "
                "`restart`/`max_iterations`"
            )
        return result.x
