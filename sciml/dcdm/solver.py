"""The deep conjugate-direction method (DCDM) and its model files, scipy operator and TorchScript export.

Kaneda, Akar, Chen, Kala, Hyde, Teran, *A Deep Conjugate Direction Method for Iteratively Solving Linear
Systems*, ICML 2023. For ``A x = b`` with ``A`` a grid Poisson operator::

    r = b − A x0
    repeat:  q = f(r / ‖r‖)                                       (the network)
             q ← q − Σ_{j ∈ last k} p_j (qᵀ A p_j)/(p_jᵀ A p_j)      (A-orthogonalise)
             x ← x + q (qᵀ r)/(qᵀ A q);  r = b − A x                 (exact line search, true residual)
    until ‖r‖ <= max(rtol ‖b‖, atol)

The network runs in float32, the iteration in the precision of ``b`` (float64 by default), so the
tolerance can go below float32 round-off. :class:`DCDMIteration` holds network and iteration in one
TorchScript-compatible module: the Python :class:`DCDM` drives its ``step`` (adding callbacks, statuses and
messages) and :meth:`DCDM.export` scripts it whole, so a simulation code runs the identical iteration with
``torch.jit.load`` alone.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sciml.checkpoint import load_checkpoint, save_checkpoint
from sciml.dcdm.network import MultigridNet, build_network
from sciml.dcdm.stencil import apply_stencil, needs_cycle_check, null_projector, project_null
from sciml.problems.linear import PoissonGrid, as_grid_stencil
from sciml.solvers.linear import LinearSolveResult, SolveStatus
from sciml.solvers.linear.krylov import check_tolerances

__all__ = [
    "DCDM",
    "DCDMIteration",
    "PreparedSystem",
    "dcdm",
    "default_model_path",
    "default_threads",
    "MODEL_FORMAT",
    "STATUS_NAMES",
    "CYCLE_NAMES",
]

#: the ``format`` entry of a sciml DCDM model file
MODEL_FORMAT = "sciml-dcdm-model"
MODEL_VERSION = 1
#: status codes of :meth:`DCDMIteration.forward` (the exported solver) -> names of :class:`SolveStatus`
STATUS_NAMES = [
    "converged",
    "max_iterations",
    "negative_curvature",
    "non_finite",
    "stagnation",
    "inconsistent",
]
#: which multigrid cycle a prepared system runs (:meth:`DCDMIteration.setup_checked`), by code
CYCLE_NAMES = [
    "trained",  # the system is like the training layouts: no check needed
    "trained, checked",  # coefficient jumps or a reaction term, but no negative curvature found
    "robust",  # the trained cycle had negative curvature on this system: the robust form replaces it
    "robust (requested)",
    "trained (requested)",
]
#: Lanczos steps of the negative-curvature check (measured: every indefinite case found in at most 7)
_CHECK_STEPS = 12
#: a Ritz value of M A below this proves the cycle indefinite (M A's spectrum is positive, of order 1, where
#: the cycle works: 0.04–1 on the training layouts)
_CHECK_LEVEL = -1e-4
_STAGNATION_STEPS = 3
#: iterations over which the best residual must at least halve once it is at the round-off level
_STAGNATION_WINDOW = 20
#: the torch.jit deprecation warnings (FutureWarning in torch >= 2.5) silenced at sciml's own jit calls
_JIT_DEPRECATED = r"`torch\.jit\.\w+` is deprecated"
#: torch threads of a DCDM setup/solve unless ``threads=`` is given (measured: see :func:`default_threads`)
DEFAULT_THREADS = 1


def default_model_path(ndim: int = 2) -> Path:
    """The model shipped with sciml for ``ndim``-dimensional grids (``sciml/data/dcdm_{ndim}d.pt``)."""
    return Path(__file__).resolve().parent.parent / "data" / f"dcdm_{ndim}d.pt"


def _float64_tensor(values: list[float]) -> Tensor:
    """``values`` as a float64 tensor, exactly: in TorchScript ``torch.tensor(list, dtype=float64)`` (and an
    element assignment of a float) passes through the default float32, so a 1e-300 residual became 0."""
    out = torch.zeros(len(values), dtype=torch.float64)
    for i in range(len(values)):
        out[i] = torch.full([1], values[i], dtype=torch.float64)[0]
    return out


class DCDMIteration(nn.Module):
    """Network + DCDM iteration on one system given as stencil fields (TorchScript-compatible).

    Fields have the grid's shape without a batch dimension: ``diag`` and ``couplings[a]`` as in
    :mod:`sciml.dcdm.stencil` (``diag[i] = A_ii``, ``couplings[a][i] = −A_{i, i+e_a}``, zero outside the
    unknowns; the last layer couples to the first on periodic axes).

    Args:
        network: a network with ``setup`` / ``precondition`` (see :mod:`sciml.dcdm.network`).
        k: number of previous directions to A-orthogonalise against (2 in the paper's code).
    """

    def __init__(self, network: nn.Module, k: int = 2):
        super().__init__()
        self.network = network
        self.k = k
        self.window = _STAGNATION_WINDOW
        self.ndim = int(network.ndim)
        self.status_names = list(STATUS_NAMES)
        self.cycle_names = list(CYCLE_NAMES)
        # the multigrid network is a linear symmetric cycle with a robust form: its definiteness is checked
        self.checkable = isinstance(network, MultigridNet)
        self.check_steps = _CHECK_STEPS
        self.check_level = _CHECK_LEVEL

    @torch.jit.export
    def setup(self, diag: Tensor, couplings: list[Tensor]) -> list[Tensor]:
        """The network's per-system context (float32), computed from the fields in float64 (the Galerkin
        hierarchy and its coarsest solve; the gate net runs in float32): the trained cycle, or its robust
        form where the trained one is proven indefinite (:meth:`setup_checked`)."""
        context, _ = self.setup_checked(diag, couplings, -1)
        return context

    @torch.jit.export
    def context(self, diag: Tensor, couplings: list[Tensor], robust: bool) -> list[Tensor]:
        """The network's context for the trained cycle (``robust=False``) or its robust form."""
        dtype = torch.float64
        batch: list[Tensor] = []
        for c in couplings:
            batch.append(c.unsqueeze(0).to(dtype))
        context: list[Tensor] = []
        for t in self.network.setup(diag.unsqueeze(0).to(dtype), batch, robust):
            context.append(t.to(torch.float32))
        return context

    @torch.jit.export
    def setup_checked(self, diag: Tensor, couplings: list[Tensor], mode: int) -> tuple[list[Tensor], int]:
        """The context and the code of its cycle (index into ``cycle_names``).

        ``mode`` 0 and 1 ask for the trained cycle and its robust form. ``mode`` −1 (automatic) keeps the
        trained cycle, exactly, on systems like the training layouts; on jumping coefficients or a
        reaction term (:func:`~sciml.dcdm.stencil.needs_cycle_check`) it looks for negative curvature of
        the cycle (:meth:`negative_curvature`) and, where there is some, returns the robust form instead
        (:meth:`~sciml.dcdm.network.MultigridNet.setup` with ``robust=True``), which is symmetric positive
        (semi-)definite on every diffusion operator. Networks without a robust form (the paper's) always
        run as they are.
        """
        if not self.checkable:
            return self.context(diag, couplings, False), 0
        if mode == 1:
            return self.context(diag, couplings, True), 3
        context = self.context(diag, couplings, False)
        if mode == 0:
            return context, 4
        if not needs_cycle_check(diag, couplings):
            return context, 0
        if not self.negative_curvature(context, diag, couplings):
            return context, 1
        return self.context(diag, couplings, True), 2

    @torch.jit.export
    def negative_curvature(self, context: list[Tensor], diag: Tensor, couplings: list[Tensor]) -> bool:
        """Whether the cycle ``M`` of ``context`` is provably indefinite on this operator.

        Runs a few Lanczos steps for ``M A`` in the A-inner product (``M A`` is self-adjoint there when
        ``M`` is symmetric; its eigenvalues are positive, of order 1, where the cycle works) from a fixed
        pseudo-random start. Ritz values are weighted means of eigenvalues, so one below ``−10⁻⁴``
        proves an eigenvalue below it, that is a direction with ``rᵀ M r < 0``. A non-finite product counts
        as indefinite too. On a singular operator the A-inner product ignores the null space.
        """
        unknown = (diag > 0).to(torch.float64)
        index = torch.arange(diag.numel(), dtype=torch.float64).reshape(diag.shape)
        v = (torch.frac(torch.sin(index * 12.9898 + 78.233) * 43758.5453) - 0.5) * unknown
        Av = apply_stencil(v, diag, couplings)
        vAv = float(torch.sum(v * Av))
        if not vAv > 0.0:
            return False
        scale = math.sqrt(vAv)
        basis: list[Tensor] = [v / scale]
        products: list[Tensor] = [Av / scale]  # A times each basis vector
        alphas: list[float] = []
        betas: list[float] = []
        for _ in range(self.check_steps):
            p = products[len(products) - 1]
            size = torch.linalg.vector_norm(p)
            w = self.direction(p, context) * size  # M A v
            alpha = float(torch.sum(w * p))
            if not math.isfinite(alpha):
                return True
            alphas.append(alpha)
            for _ in range(2):  # full reorthogonalisation in the A-inner product
                for j in range(len(basis)):
                    w = w - basis[j] * torch.sum(w * products[j])
            Aw = apply_stencil(w, diag, couplings)
            beta2 = float(torch.sum(w * Aw))
            m = len(alphas)
            T = torch.diag(_float64_tensor(alphas))
            if m > 1:
                off = _float64_tensor(betas)
                T = T + torch.diag(off, 1) + torch.diag(off, -1)
            if float(torch.linalg.eigvalsh(T)[0]) < self.check_level:
                return True
            if not (math.isfinite(beta2) and beta2 > 1e-20):
                break  # an invariant subspace (or a breakdown): no negative Ritz value so far
            beta = math.sqrt(beta2)
            betas.append(beta)
            basis.append(w / beta)
            products.append(Aw / beta)
        return False

    @torch.jit.export
    def direction(self, r: Tensor, context: list[Tensor]) -> Tensor:
        """The network on the normalised residual, in the dtype of ``r``."""
        scale = torch.linalg.vector_norm(r)
        rn = r / torch.where(scale > 0, scale, torch.ones_like(scale))
        return self.network.precondition(rn.unsqueeze(0).to(torch.float32), context)[0].to(r.dtype)

    @torch.jit.export
    def step(
        self,
        x: Tensor,
        r: Tensor,
        b: Tensor,
        diag: Tensor,
        couplings: list[Tensor],
        context: list[Tensor],
        directions: list[Tensor],
        products: list[Tensor],
        null: list[Tensor],
    ) -> tuple[Tensor, Tensor, float, int]:
        """One DCDM iteration: :meth:`update` with the network's direction for ``r``.

        Returns:
            See :meth:`update`.
        """
        return self.update(x, r, b, self.direction(r, context), diag, couplings, directions, products, null)

    @torch.jit.export
    def update(
        self,
        x: Tensor,
        r: Tensor,
        b: Tensor,
        q: Tensor,
        diag: Tensor,
        couplings: list[Tensor],
        directions: list[Tensor],
        products: list[Tensor],
        null: list[Tensor],
    ) -> tuple[Tensor, Tensor, float, int]:
        """The iteration around a direction ``q``: A-orthogonalise it against the last ``k`` directions, take
        the exact line search step, recompute the true residual. Appends ``q`` and ``A q`` to
        ``directions``/``products`` (from Python, lists passed to a *scripted* module are copies: drive the
        loop with the eager module, as :class:`PreparedSystem` does, or call ``forward``).

        ``null`` (from :func:`~sciml.dcdm.stencil.null_projector`, empty for a nonsingular system) makes the
        direction orthogonal to the constant null space, so ``x`` keeps zero mean on each singular group.

        Returns:
            ``(x, r, step_norm, code)``: the new iterate and true residual, ``‖α q‖``, and 0 (ok),
            2 (``qᵀAq <= 0``: negative curvature, ``A`` not positive definite) or 3 (non-finite).
        """
        q = project_null(q, null)
        for j in range(len(directions)):
            p = directions[j]
            Ap = products[j]
            q = q - p * (torch.sum(q * Ap) / torch.sum(p * Ap))
        Aq = apply_stencil(q, diag, couplings)
        qAq = float(torch.sum(q * Aq))
        qr = float(torch.sum(q * r))
        if not (math.isfinite(qAq) and math.isfinite(qr)):
            return x, r, 0.0, 3
        if qAq <= 0.0:
            return x, r, 0.0, 2
        alpha = qr / qAq
        x = x + alpha * q
        r = b - apply_stencil(x, diag, couplings)
        directions.append(q)
        products.append(Aq)
        if len(directions) > self.k:
            directions.pop(0)
            products.pop(0)
        return x, r, abs(alpha) * float(torch.linalg.vector_norm(q)), 0

    @torch.jit.export
    def roundoff(self, x: Tensor, b: Tensor, diag: Tensor, couplings: list[Tensor]) -> float:
        """``eps · ‖|b| + |A| |x|‖`` (``eps`` of the dtype of ``x``): the size of the rounding error in
        computing ``b − A x`` at ``x``, below which no iteration can push the true residual."""
        absolute: list[Tensor] = []
        for c in couplings:
            absolute.append(-torch.abs(c))
        eps = 2.220446049250313e-16 if x.dtype == torch.float64 else 1.1920928955078125e-07
        spread = torch.abs(b) + apply_stencil(torch.abs(x), torch.abs(diag), absolute)
        return eps * float(torch.linalg.vector_norm(spread))

    @torch.jit.export
    def stalled(self, best: list[float], x: Tensor, b: Tensor, diag: Tensor, couplings: list[Tensor]) -> bool:
        """Whether the iteration has stagnated at the attainable accuracy: ``best`` (the lowest residual norm
        after each iteration, entry 0 for ``x0``) has not halved over the last ``window`` (20) iterations and
        is below :meth:`roundoff` (the network's directions then only stir round-off)."""
        n = len(best)
        if n <= self.window or best[n - 1] <= 0.5 * best[n - 1 - self.window]:
            return False
        return best[n - 1] <= self.roundoff(x, b, diag, couplings)

    def forward(
        self,
        b: Tensor,
        diag: Tensor,
        couplings: list[Tensor],
        x0: Tensor | None = None,
        rtol: float = 1e-6,
        atol: float = 0.0,
        maxiter: int = 1000,
        null_labels: Tensor | None = None,
    ) -> tuple[Tensor, int, Tensor, int]:
        """Solve ``A x = b`` for the operator ``(diag, couplings)``; fields of the grid's shape.

        ``null_labels`` (int64 field, ``-1`` outside, ``0..m-1`` on each pure-Neumann group) declares the
        constant null space of a singular system: ``b`` must then be consistent (its part in the null space
        below the tolerance, else status ``inconsistent``), and ``x`` is returned with zero mean on each
        group. Values of ``b`` and ``x0`` off the unknowns (``diag <= 0``) are ignored, NaN and inf included.
        Status ``stagnation``: the step fell below round-off three times in a row, or the best residual has
        not halved in 20 iterations and is at the round-off level (:meth:`stalled`).

        Returns:
            ``(x, iterations, residual_history, status)``: ``residual_history`` holds ‖b − A x‖ per iteration
            (entry 0 for ``x0``), ``status`` indexes ``status_names`` (0 = converged).

        Raises:
            ValueError (``torch.jit.Error`` from TorchScript): shape mismatch, ``rtol``/``atol`` negative or
                not finite or both 0, or a negative ``maxiter`` (as the Python API).
        """
        if b.shape != diag.shape:
            raise ValueError("`b` must have the shape of `diag` (the grid shape)")
        if len(couplings) != self.ndim:
            raise ValueError("`couplings` must hold one field per grid dimension")
        if not (math.isfinite(rtol) and rtol >= 0.0):
            raise ValueError(f"`rtol` must be a finite number >= 0, got {rtol}")
        if not (math.isfinite(atol) and atol >= 0.0):
            raise ValueError(f"`atol` must be a finite number >= 0, got {atol}")
        if rtol == 0.0 and atol == 0.0:
            raise ValueError("`rtol` and `atol` are both 0, so the solve could never stop; set one > 0")
        if maxiter < 0:
            raise ValueError(f"`maxiter` must be a non-negative integer, got {maxiter}")
        unknown = diag > 0
        mask = unknown.to(b.dtype)
        b = torch.where(unknown | torch.isfinite(b), b, torch.zeros_like(b)) * mask  # values off the unknowns
        null: list[Tensor] = []
        if null_labels is not None:
            if null_labels.shape != diag.shape:
                raise ValueError("`null_labels` must have the shape of `diag` (the grid shape)")
            null = null_projector(torch.where(diag > 0, null_labels, -torch.ones_like(null_labels)))
        if not bool((b != 0).any()):  # b = 0: x = 0 exactly
            zero: list[float] = [0.0]
            return torch.zeros_like(b), 0, torch.tensor(zero, dtype=torch.float64), 0
        tol = max(rtol * float(torch.linalg.vector_norm(b)), atol)
        consistent = project_null(b, null)
        inconsistency = float(torch.linalg.vector_norm(b - consistent))
        if inconsistency > 0.0 and inconsistency >= tol:
            history0: list[float] = [float(torch.linalg.vector_norm(b))]
            return torch.zeros_like(b), 0, _float64_tensor(history0), 5
        b = consistent
        tol = math.sqrt(tol * tol - inconsistency * inconsistency)
        context = self.setup(diag, couplings)
        if x0 is None:
            x = torch.zeros_like(b)
            r = b.clone()
        else:
            x0 = x0.to(b.dtype)
            x = project_null(torch.where(unknown | torch.isfinite(x0), x0, torch.zeros_like(x0)) * mask, null)
            r = b - apply_stencil(x, diag, couplings)
        rnorm = float(torch.linalg.vector_norm(r))
        history: list[float] = [math.sqrt(rnorm * rnorm + inconsistency * inconsistency)]
        if not math.isfinite(rnorm):
            return x, 0, _float64_tensor(history), 3
        directions: list[Tensor] = []
        products: list[Tensor] = []
        best: list[float] = [rnorm]
        stagnant = 0
        iterations = 0
        status = 1
        if rnorm <= tol:
            status = 0
        while status == 1 and iterations < maxiter:
            x, r, step_norm, code = self.step(x, r, b, diag, couplings, context, directions, products, null)
            if code != 0:
                status = code
                break
            iterations += 1
            rnorm = float(torch.linalg.vector_norm(r))
            history.append(math.sqrt(rnorm * rnorm + inconsistency * inconsistency))
            if not math.isfinite(rnorm):
                status = 3
            elif rnorm <= tol:
                status = 0
            else:
                if step_norm < 2.220446049250313e-16 * float(torch.linalg.vector_norm(x)):
                    stagnant += 1
                    if stagnant >= 3:
                        status = 4
                else:
                    stagnant = 0
                best.append(min(best[-1], rnorm))
                if status == 1 and self.stalled(best, x, b, diag, couplings):
                    status = 4
        return x, iterations, _float64_tensor(history), status


class DCDM:
    """A trained DCDM solver for grid Poisson systems: solve, scipy operator, TorchScript export.

    Args:
        network: a network from :mod:`sciml.dcdm.network` (its weights are used as they are).
        k: directions to A-orthogonalise against.
        info: free-form metadata kept in the model file (training command, data, metrics).

    Example:
        >>> solver = DCDM.load()                       # the model shipped with sciml
        >>> result = solver.solve(grid, b, rtol=1e-6)  # LinearSolveResult
        >>> M = solver.as_linear_operator(grid)        # scipy LinearOperator ≈ A⁻¹ (a preconditioner)
        >>> Ainv = solver.as_linear_operator(grid, mode="solve")  # each product a DCDM solve
        >>> solver.export("dcdm.pt")                   # torch.jit.load("dcdm.pt")(b, diag, couplings)
    """

    def __init__(self, network: nn.Module, *, k: int = 2, info: dict[str, Any] | None = None):
        if not (
            hasattr(network, "setup") and hasattr(network, "precondition") and hasattr(network, "config")
        ):
            raise TypeError(
                "`network` must be a sciml.dcdm network (with setup/precondition/config), "
                f"got {type(network).__name__}"
            )
        if int(k) != k or k < 0:
            raise ValueError(f"`k` must be a non-negative integer, got {k}")
        self.network = network.float().eval()
        self.k = int(k)
        self.info = dict(info or {})
        self._iteration = DCDMIteration(self.network, self.k)
        self._scripted: Any = None

    def _direction_module(self) -> Any:
        """The iteration scripted (TorchScript), for the network application inside :class:`PreparedSystem`:
        the cycle's many small operations run without Python overhead (measured 1.2–3× faster per
        application, 512² to 128²). Falls back to the eager module where scripting is unavailable."""
        if self._scripted is None:
            module = DCDMIteration(copy.deepcopy(self.network).requires_grad_(False), self.k)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    warnings.filterwarnings("ignore", _JIT_DEPRECATED, FutureWarning)
                    self._scripted = torch.jit.script(module)
            except Exception:  # noqa: BLE001 - TorchScript unavailable: the eager module is equivalent
                self._scripted = self._iteration
        return self._scripted

    # ------------------------------------------------------------------ files
    @property
    def ndim(self) -> int:
        return int(self.network.ndim)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.network.config())

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model file (atomically): config, weights, ``k`` and ``info``."""
        save_checkpoint(
            {
                "format": MODEL_FORMAT,
                "version": MODEL_VERSION,
                "config": self.config,
                "k": self.k,
                "state_dict": {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
                "info": json.dumps(self.info),
            },
            path,
        )
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, *, ndim: int = 2) -> DCDM:
        """Load a model file written by :meth:`save` (default: the model shipped for ``ndim``).

        Raises:
            FileNotFoundError: no such file (for the default: no shipped model for ``ndim``).
            ValueError: a corrupt file, a file that is not a sciml DCDM model, or weights that do not fit
                the stored configuration.
        """
        path = Path(path) if path is not None else default_model_path(ndim)
        if not path.exists():
            hint = "" if ndim == 2 else f"; train one with `sciml dcdm train --ndim {ndim} --out DIR`"
            raise FileNotFoundError(f"no DCDM model at {path}{hint}")
        state = load_checkpoint(path)
        if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
            raise ValueError(
                f"{path} is not a sciml DCDM model file (no format {MODEL_FORMAT!r}); write one with "
                "`DCDM.save` or `sciml dcdm train`"
            )
        if state.get("version") != MODEL_VERSION:
            raise ValueError(
                f"{path} has model-file version {state.get('version')}, expected {MODEL_VERSION}"
            )
        network = build_network(state["config"])
        try:
            network.load_state_dict(state["state_dict"])
        except (RuntimeError, KeyError) as exc:
            raise ValueError(
                f"the weights in {path} do not fit its configuration {state['config']} (a different channel "
                f"layout?): {exc}"
            ) from exc
        try:
            info = json.loads(state.get("info", "{}"))
        except json.JSONDecodeError:
            info = {}
        return cls(network, k=int(state.get("k", 2)), info=info)

    # ------------------------------------------------------------------ solving
    def prepare(
        self,
        system: Any,
        *,
        shape: tuple[int, ...] | None = None,
        mask: Any = None,
        robust: bool | None = None,
    ) -> PreparedSystem:
        """Read the system's operator and run the network's setup once, for many right-hand sides.

        Args:
            system: a :class:`~sciml.problems.linear.PoissonGrid`, a
                :class:`~sciml.problems.linear.GridStencil` (coefficient arrays: the matrix-free form), or a
                scipy sparse matrix on the unknowns with ``shape`` (and ``mask``), whose 5/7-point stencil is
                recognised by :func:`~sciml.problems.linear.as_grid_stencil`.
            shape, mask: the grid of a matrix: cells per axis and the boolean field of unknowns (C order).
            robust: which multigrid cycle (multigrid networks): ``None`` (default) the trained one, unless
                the system has jumping coefficients or a reaction term and the trained cycle is found
                indefinite on it (a few Lanczos steps at setup), then its robust form, which is positive
                definite for every diffusion operator (``PreparedSystem.cycle`` says which); ``True`` the
                robust form; ``False`` the trained cycle as it is.

        Raises:
            TypeError: another kind of ``system``.
            ValueError: a matrix that is not a grid stencil (the message says what was expected), a model
                for another dimension, or a system without unknowns.
        """
        return PreparedSystem(self, system, shape=shape, mask=mask, robust=robust)

    def solve(
        self,
        system: Any,
        b: Any,
        x0: Any = None,
        *,
        shape: tuple[int, ...] | None = None,
        mask: Any = None,
        rtol: float = 1e-6,
        atol: float = 0.0,
        maxiter: int | None = None,
        callback: Callable[[Any], None] | None = None,
        threads: int | None = None,
        robust: bool | None = None,
    ) -> LinearSolveResult:
        """Solve ``A x = b`` by DCDM: ``prepare(system, shape=..., mask=..., robust=...).solve(b, ...)``.

        See :meth:`prepare` for ``system``/``shape``/``mask``/``robust`` and :meth:`PreparedSystem.solve`
        for the rest.
        """
        return self.prepare(system, shape=shape, mask=mask, robust=robust).solve(
            b, x0, rtol=rtol, atol=atol, maxiter=maxiter, callback=callback, threads=threads
        )

    def precondition(self, system: Any, r: Any) -> Any:
        """One network application (≈ ``A⁻¹ r``); see :meth:`PreparedSystem.precondition`."""
        return self.prepare(system).precondition(r)

    def as_linear_operator(
        self,
        system: Any,
        *,
        mode: str | None = None,
        rtol: float | None = None,
        maxiter: int | None = None,
    ):
        """A scipy ``LinearOperator`` approximating ``A⁻¹``: ``prepare(system).as_linear_operator(...)``.

        The default ``mode`` is ``"precondition"`` (one network application per product, the ``M`` of a
        Krylov solver), or ``"solve"`` when ``rtol`` or ``maxiter`` is given; see
        :meth:`PreparedSystem.as_linear_operator`.
        """
        return self.prepare(system).as_linear_operator(mode=mode, rtol=rtol, maxiter=maxiter)

    def export(self, path: str | os.PathLike) -> Path:
        """Write the network and the DCDM iteration as one TorchScript file.

        Load it anywhere with plain PyTorch (no sciml import; C++: ``torch::jit::load``, see
        ``examples/cpp``). The input/output contract::

            solver = torch.jit.load(path)
            x, iterations, residuals, status = solver(b, diag, couplings, x0, rtol, atol, maxiter, labels)
            solver.status_names[status]   # "converged", "max_iterations", "negative_curvature",
                                          # "non_finite", "stagnation", "inconsistent"

        * ``b``, ``diag`` and every ``couplings[a]`` (a list of ``ndim`` fields): float64 tensors of the grid
          shape (2D ``(ny, nx)``, 3D ``(nz, ny, nx)``, no batch dimension): ``diag[i] = A_ii`` (> 0 on the
          unknowns, 0 elsewhere), ``couplings[a][i] = −A_{i, i+e_a}`` (zero unless both cells are unknowns;
          in the last layer along axis ``a`` the coupling to the first layer: nonzero only on a periodic
          axis) — the layout a fluid code stores its pressure matrix in;
        * ``x0``: ``None`` or a float64 field (initial guess); ``rtol``, ``atol``: stop when
          ``‖b − A x‖ <= max(rtol ‖b‖, atol)`` (2-norm over the unknowns); ``maxiter``: int;
        * ``null_labels``: ``None`` (a nonsingular system) or an int64 field, ``-1`` outside and
          ``0..m−1`` on each connected group of unknowns without Dirichlet contact (pure Neumann or
          periodic; a closed box: all zeros). ``b`` must then be consistent (else status
          ``inconsistent``); ``x`` has zero mean on each group;
        * returns ``x`` (float64 field, zero off the unknowns), ``iterations`` (int), ``residuals`` (float64
          1-D tensor: ‖b − A x‖ for ``x0`` and after every iteration) and ``status`` (int, index into
          ``status_names``; 0 = converged).

        ``solver.setup``, ``solver.direction`` and ``solver.step`` are exported too. The model's config and
        ``info`` are in the archive's extra file ``sciml.json``.
        """
        from sciml.solvers.cache import atomic_write

        module = DCDMIteration(copy.deepcopy(self.network).requires_grad_(False), self.k)  # inference only
        path = Path(path)
        extra = {"sciml.json": json.dumps({"config": self.config, "k": self.k, "info": self.info})}
        with warnings.catch_warnings():
            # TorchScript is in maintenance mode (torch.jit.* warn); it is still the format that C++ and
            # plain-PyTorch simulation codes load without Python-side dependencies
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", _JIT_DEPRECATED, FutureWarning)
            scripted = torch.jit.script(module)
            with atomic_write(path) as tmp:
                torch.jit.save(scripted, str(tmp), _extra_files=extra)
        return path


def default_threads(n_unknowns: int) -> int:
    """Torch threads for a DCDM setup/solve when the caller does not choose: :data:`DEFAULT_THREADS`.

    Measured (prepare + solve, shipped 2D model, random layouts, 2-core machine shared with other jobs; see
    README): torch's default of 2 threads took 9.1× (128²), 3.0× (256²) and 8.1× (512²) the time of one
    thread (an earlier run: 9.5×, 8.6×, 1.24×). The per-operation work of a multigrid cycle is small, so
    thread hand-offs cost more than they save, and far more on a busy machine; one thread is the default
    at every size.
    Pass ``threads=`` to use more (a large grid on an idle many-core machine).
    """
    if n_unknowns < 0:
        raise ValueError(f"`n_unknowns` must be >= 0, got {n_unknowns}")
    return DEFAULT_THREADS


class _Threads:
    """Context manager: run torch with ``n`` intra-op threads, restore the previous count afterwards."""

    def __init__(self, n: int):
        self.n = n
        self.previous = torch.get_num_threads()

    def __enter__(self) -> None:
        if self.n != self.previous:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.n != self.previous:
            torch.set_num_threads(self.previous)


class PreparedSystem:
    """DCDM for one system: the operator's fields and the network's setup, reused across right-hand sides.

    A simulation with fixed obstacles prepares once and solves every frame (``setup_seconds`` is the
    one-off cost). ``system`` is the :class:`~sciml.problems.linear.GridStencil` it solves (from a grid, a
    matrix or coefficient arrays); a singular system (pure-Neumann groups, ``system.null_space()``) is
    solved as a simulation code does: see :meth:`solve`.
    """

    def __init__(
        self, solver: DCDM, system: Any, *, shape: Any = None, mask: Any = None, robust: bool | None = None
    ):
        start = time.perf_counter()
        if robust is not None and not isinstance(robust, (bool, np.bool_)):
            raise TypeError(f"`robust` must be None, True or False, got {robust!r}")
        stencil = as_grid_stencil(system, shape, mask)
        if stencil.ndim != solver.ndim:
            raise ValueError(
                f"this DCDM model was trained for {solver.ndim}D grids but the system is {stencil.ndim}D; "
                f"load or train a {stencil.ndim}D model (`DCDM.load(ndim={stencil.ndim})`, "
                f"`sciml dcdm train --ndim {stencil.ndim}`)"
            )
        if stencil.n_unknowns == 0:
            raise ValueError("the system has no unknowns (`diag` is 0 everywhere): there is nothing to solve")
        self.solver = solver
        self.system = stencil
        self.grid = system if isinstance(system, PoissonGrid) else stencil
        self.diag = torch.tensor(stencil.diag, dtype=torch.float64)
        self.couplings = [torch.tensor(c, dtype=torch.float64) for c in stencil.couplings]
        self.null_space = stencil.null_space()
        self._null = null_projector(torch.tensor(self.null_space.labels))
        self._fluid = torch.tensor(stencil.fluid, dtype=torch.float64)
        with torch.no_grad(), _Threads(default_threads(stencil.n_unknowns)):
            self.context, self._cycle = self._setup(robust)
        self.setup_seconds = time.perf_counter() - start

    def _setup(self, robust: bool | None) -> tuple[list[Tensor], int]:
        """:meth:`DCDMIteration.setup_checked`, with the check's cycle applications run by the scripted
        module (the contexts themselves come from the eager one, as always)."""
        it = self.solver._iteration
        if robust is not None or not it.checkable:
            return it.setup_checked(self.diag, self.couplings, int(bool(robust)) if robust is not None else 0)
        context = it.context(self.diag, self.couplings, False)
        if not needs_cycle_check(self.diag, self.couplings):
            return context, 0
        if not self.solver._direction_module().negative_curvature(context, self.diag, self.couplings):
            return context, 1
        return it.context(self.diag, self.couplings, True), 2

    @property
    def cycle(self) -> str:
        """Which multigrid cycle runs: ``"trained"`` (a system like the training layouts), ``"trained,
        checked"`` (jumping coefficients or a reaction term, and no negative curvature found), ``"robust"``
        (the trained cycle was indefinite here, so its robust form replaced it), or the one requested by
        ``prepare(..., robust=True/False)``."""
        return CYCLE_NAMES[self._cycle]

    @property
    def robust(self) -> bool:
        """Whether the robust form of the multigrid cycle runs (see :attr:`cycle`)."""
        return self._cycle in (2, 3)

    @property
    def singular(self) -> bool:
        """Whether the operator has a (constant, per pure-Neumann group) null space."""
        return self.null_space.count > 0

    def _as_field(self, v: Any, name: str) -> tuple[Tensor, Callable[[Tensor], Any]]:
        """``v`` (field or vector of unknowns, numpy or torch) as a float64 field, and the inverse map."""
        stencil = self.system
        is_torch = torch.is_tensor(v)
        arr = v if is_torch else np.asarray(v)
        if (arr.dtype.is_complex if is_torch else np.iscomplexobj(arr)) or (
            not is_torch and arr.dtype == object
        ):
            raise TypeError(f"`{name}` must be a real array, got dtype {arr.dtype}")
        shape = tuple(arr.shape)
        dtype = arr.dtype
        if not is_torch and np.issubdtype(dtype, np.floating) and dtype.itemsize > 8:
            arr = arr.astype(np.float64)  # long double: torch has no such dtype; the iteration is float64
        elif not is_torch and not arr.flags.writeable:
            arr = arr.copy()  # torch.as_tensor warns on read-only arrays (np.frombuffer, broadcasts)
        try:
            values = torch.as_tensor(arr, dtype=torch.float64).cpu()
        except TypeError as exc:
            raise TypeError(f"`{name}` must be a real array that torch can read, got dtype {dtype}") from exc
        if shape == stencil.shape:
            fluid = self._fluid
            # values off the unknowns are ignored, NaN and inf included (a simulation's marker for solids)
            values = torch.where((fluid > 0) | torch.isfinite(values), values, torch.zeros_like(values))
            field = values * fluid
            as_field = True
        elif shape == (stencil.n_unknowns,):
            field = stencil.to_field(values)
            as_field = False
        else:
            raise ValueError(
                f"`{name}` must be a field of the grid shape {stencil.shape} or a vector of its "
                f"{stencil.n_unknowns} unknowns, got shape {shape}"
            )
        if not bool(torch.isfinite(field).all()):
            raise ValueError(f"`{name}` must be finite on the unknowns (it holds NaN or inf there)")

        def back(x: Tensor) -> Any:
            """``x`` in the form, type and dtype of ``v`` (``back.dtype``: float64 for integer input)."""
            out = x if as_field else stencil.to_vector(x)
            if is_torch:
                return out.to(dtype=dtype if dtype.is_floating_point else torch.float64, device=v.device)
            return out.numpy().astype(dtype if np.issubdtype(dtype, np.floating) else np.float64)

        floating = dtype.is_floating_point if is_torch else np.issubdtype(dtype, np.floating)
        # rounds the iterate: a dtype below float64 (long double keeps it exactly)
        back.lossy = floating and (dtype != torch.float64 if is_torch else dtype.itemsize < 8)
        return field, back

    def project(self, v: Any) -> Any:
        """``v`` with its null-space part removed (each pure-Neumann group's mean subtracted), in the form of
        ``v``; how a simulation code makes its right-hand side consistent. Identity when nonsingular."""
        field, back = self._as_field(v, "v")
        return back(project_null(field, self._null))

    def solve(
        self,
        b: Any,
        x0: Any = None,
        *,
        rtol: float = 1e-6,
        atol: float = 0.0,
        maxiter: int | None = None,
        callback: Callable[[Any], None] | None = None,
        threads: int | None = None,
    ) -> LinearSolveResult:
        """Solve ``A x = b`` by DCDM.

        Singular systems (pure-Neumann groups, constant null space): the part of ``b`` in the null space
        (each group's mean) is measured; when it is below the tolerance it is removed and the rest solved to
        the remaining tolerance, so that the reported ‖b − A x‖ (against the ``b`` given) meets it; the
        iterates are kept orthogonal to the null space, so ``x`` has **zero mean on each group** (the
        minimum-norm solution; add a constant to pin a reference value). When it is not below the tolerance
        no ``x`` can meet it and the solve is refused (``ValueError``) instead of returning a non-solution.

        Args:
            b: right-hand side: a field of the grid shape (values off the unknowns are ignored, NaN and inf
                included) or a vector of the ``n_unknowns`` unknowns; numpy or torch.
            x0: initial guess in the same form (default zero).
            rtol, atol: stop when ``‖b − A x‖ <= max(rtol·‖b‖, atol)`` (true residual, 2-norm over the
                unknowns).
            maxiter: iteration limit (default ``10 · n_unknowns``, as CG).
            callback: called as ``callback(x)`` after every iteration (``x`` in the form of ``b``).
            threads: torch threads for this solve (restored afterwards); default :func:`default_threads`.

        ``b = 0`` returns ``x = 0`` at once. The iteration runs in float64; for a ``b`` of lower precision
        (float32) the returned ``x`` is rounded to it, and convergence is judged on that rounded ``x`` (a
        tolerance below float32's resolution ends as ``stagnation``, with the reason); a long double ``b`` is
        rounded to float64 (``x`` is returned as long double with float64 accuracy). A tolerance below
        float64's attainable accuracy ends as ``stagnation`` too: when the best residual has not halved in 20
        iterations and is below the round-off level ``eps ‖|b| + |A| |x|‖`` of ``b − A x``.

        Returns:
            :class:`~sciml.solvers.linear.LinearSolveResult`, ``x`` in the form, type and dtype of ``b``;
            ``status`` is ``converged``, ``max_iterations``, ``negative_curvature`` (``qᵀAq <= 0``),
            ``non_finite`` or ``stagnation``. A message says when the returned ``x`` has a larger residual
            than ``x0`` (a nearly singular system, or one far from the training layouts).

        Raises:
            TypeError: complex or object input.
            ValueError: shape mismatch, non-finite input on the unknowns, bad tolerances or ``threads``, an
                inconsistent right-hand side of a singular system, or a nonzero ``b`` whose norm underflows
                in float64.
        """
        n = self.system.n_unknowns
        maxiter = check_tolerances(rtol, atol, maxiter, n)
        if threads is None:
            threads = default_threads(n)
        elif int(threads) != threads or threads < 1:
            raise ValueError(f"`threads` must be a positive integer, got {threads}")
        bf, back = self._as_field(b, "b")
        with torch.no_grad(), _Threads(int(threads)):
            return self._solve(bf, back, x0, rtol, atol, maxiter, callback)

    def _solve(self, bf, back, x0, rtol, atol, maxiter, callback) -> LinearSolveResult:
        diag, couplings, context, null = self.diag, self.couplings, self.context, self._null
        it = self.solver._iteration
        network = self.solver._direction_module()
        bnorm = float(torch.linalg.vector_norm(bf))
        tol = max(rtol * bnorm, atol)
        consistent = project_null(bf, null)
        inconsistency = float(torch.linalg.vector_norm(bf - consistent))
        if inconsistency > 0 and inconsistency >= tol:
            raise ValueError(
                f"inconsistent right-hand side: the system is singular ({self.null_space.count} group(s) of "
                f"unknowns without a Dirichlet boundary, where A x sums to zero), and the part of `b` that "
                f"no x can match (its mean over those groups) has norm {inconsistency:.3e} >= the tolerance "
                f"{tol:.3e}. The net source of a closed region must balance: make `b` consistent (e.g. "
                "`b = prepared.project(b)`, which subtracts each group's mean, as pressure solvers do) or "
                "add a Dirichlet boundary"
            )
        bf = consistent
        tol_inner = math.sqrt(tol * tol - inconsistency * inconsistency)
        if x0 is None:
            x = torch.zeros_like(bf)
            r = bf.clone()
        else:
            x = project_null(self._as_field(x0, "x0")[0], null)
            r = bf - apply_stencil(x, diag, couplings)

        def true_norm(rn: float) -> float:
            return math.sqrt(rn * rn + inconsistency * inconsistency)

        history = [true_norm(float(torch.linalg.vector_norm(r)))]

        def finish(status: SolveStatus, iterations: int, message: str) -> LinearSolveResult:
            out = back(x)
            if back.lossy and iterations > 0:  # judge the rounded x that is returned
                xr = self._as_field(out, "x")[0]
                history[-1] = true_norm(
                    float(torch.linalg.vector_norm(bf - apply_stencil(xr, diag, couplings)))
                )
                if status == SolveStatus.CONVERGED and history[-1] > tol:
                    status = SolveStatus.STAGNATION
                    message = (
                        f"converged in float64 in {iterations} iterations, but x rounded to the dtype of `b` "
                        f"has ‖b − A x‖/‖b‖ = {history[-1] / bnorm:.3e} > rtol: pass `b` in float64 or "
                        "loosen rtol/atol"
                    )
            if status != SolveStatus.CONVERGED and history[-1] > history[0]:
                message += (
                    f". The returned x has {history[-1] / history[0]:.3g}× the residual of x0 (DCDM "
                    "lowers the A-norm of the error, not the residual): the system is probably nearly "
                    "singular (e.g. a pure-Neumann operator plus a tiny shift) or far from the training "
                    "layouts; use a classical solver (cg), or drop the shift and solve it as singular with a "
                    "consistent `b`"
                )
            return LinearSolveResult(
                out, iterations, np.asarray(history), status == SolveStatus.CONVERGED, status, message
            )

        if bnorm == 0:
            if bool((bf != 0).any()):  # not b = 0: its norm underflows in float64
                raise ValueError(
                    f"`b` is too small to solve in float64: its norm underflows to 0 (largest entry "
                    f"{float(bf.abs().max()):.3e}); scale `b` up (x scales with it)"
                )
            x = torch.zeros_like(bf)
            history[0] = 0.0
            return finish(
                SolveStatus.CONVERGED, 0, "b = 0, so x = 0 solves the system exactly (x0 is not used)"
            )
        if not math.isfinite(history[0]):
            return finish(SolveStatus.NON_FINITE, 0, "the initial residual b - A x0 is not finite")
        if history[0] <= tol:
            return finish(SolveStatus.CONVERGED, 0, "the initial guess already meets the tolerance")
        directions: list[Tensor] = []
        products: list[Tensor] = []
        best = [float(torch.linalg.vector_norm(r))]  # the lowest residual (without the inconsistency) so far
        stagnant = 0
        for k in range(1, maxiter + 1):
            q = network.direction(r, context)
            x, r, step_norm, code = it.update(x, r, bf, q, diag, couplings, directions, products, null)
            if code == 2:
                return finish(
                    SolveStatus.NEGATIVE_CURVATURE,
                    k - 1,
                    f"qᵀAq <= 0 at iteration {k}: the operator is not positive definite (a non-diffusion "
                    "system) or the network returned a zero direction",
                )
            if code == 3:
                return finish(
                    SolveStatus.NON_FINITE,
                    k - 1,
                    f"the network's direction is not finite at iteration {k}",
                )
            rnorm = float(torch.linalg.vector_norm(r))
            history.append(true_norm(rnorm))
            if callback is not None:
                callback(back(x))
            if not math.isfinite(rnorm):
                return finish(SolveStatus.NON_FINITE, k, f"the residual is not finite at iteration {k}")
            if rnorm <= tol_inner:
                return finish(SolveStatus.CONVERGED, k, f"converged in {k} iterations")
            if step_norm < np.finfo(np.float64).eps * float(torch.linalg.vector_norm(x)):
                stagnant += 1
                if stagnant >= _STAGNATION_STEPS:
                    return finish(
                        SolveStatus.STAGNATION,
                        k,
                        f"stagnated at iteration {k} with ‖r‖/‖b‖ = {history[-1] / bnorm:.3e}: the iterate "
                        "no longer changes in float64; loosen rtol/atol",
                    )
            else:
                stagnant = 0
            best.append(min(best[-1], rnorm))
            if it.stalled(best, x, bf, diag, couplings):
                return finish(
                    SolveStatus.STAGNATION,
                    k,
                    f"stagnated at iteration {k} with ‖r‖/‖b‖ = {history[-1] / bnorm:.3e}: the best residual "
                    f"has not halved in {_STAGNATION_WINDOW} iterations and is at float64's round-off level "
                    f"for this system (‖r‖/‖b‖ ≈ {it.roundoff(x, bf, diag, couplings) / bnorm:.1e}); the "
                    "tolerance is below the attainable accuracy: loosen rtol/atol",
                )
        return finish(
            SolveStatus.MAX_ITERATIONS,
            maxiter,
            f"not converged after {maxiter} iterations (‖r‖/‖b‖ = {history[-1] / bnorm:.3e}); the system "
            "may be far from the training layouts: raise maxiter or fall back to a classical solver",
        )

    def precondition(self, r: Any, *, threads: int | None = None) -> Any:
        """One network application ``M r`` (≈ ``A⁻¹ r``), in the form of ``r``.

        For the shipped multigrid network ``M`` is linear and symmetric, and positive (semi-)definite, so it
        is a preconditioner for plain PCG: on systems like the training layouts the trained cycle is; where
        coefficients jump strongly between cells (two-phase media, identity rows among 1/h² rows) or a
        reaction term is present, the trained cycle can be indefinite, and ``prepare`` then uses its robust
        form (see :attr:`cycle`). On a singular system input and output are projected onto the range.
        """
        rf, back = self._as_field(r, "r")
        threads = default_threads(self.system.n_unknowns) if threads is None else int(threads)
        with torch.no_grad(), _Threads(threads):
            rf = project_null(rf, self._null)
            scale = torch.linalg.vector_norm(rf)
            q = self.solver._direction_module().direction(rf, self.context) * scale
            q = project_null(q, self._null)
        return back(q)

    def as_linear_operator(
        self, *, mode: str | None = None, rtol: float | None = None, maxiter: int | None = None
    ):
        """A scipy ``LinearOperator`` on the vector of unknowns (C order) approximating ``A⁻¹``.

        Args:
            mode: ``"precondition"`` — one network application per product: a preconditioner ``M`` for
                ``scipy.sparse.linalg.cg`` / ``gmres`` or pyamg's Krylov methods (``M=op``), or
                :func:`sciml.solvers.linear.cg` (``flexible=True`` for networks that are not linear, such
                as the paper's); ``"solve"`` — each product runs DCDM to ``rtol`` (an inverse accurate to
                ``rtol``, a drop-in for ``spsolve``). Default (``None``): ``"precondition"``, or
                ``"solve"`` when ``rtol`` or ``maxiter`` is given (they only apply to solving); the same
                default as :meth:`DCDM.as_linear_operator`.
            rtol, maxiter: for ``mode="solve"`` (default ``rtol=1e-6``, ``maxiter`` as :meth:`solve`).

        Raises:
            ValueError: an unknown ``mode``, or ``rtol``/``maxiter`` with ``mode="precondition"``.
        """
        from scipy.sparse.linalg import LinearOperator

        if mode is None:
            mode = "precondition" if rtol is None and maxiter is None else "solve"
        if mode not in ("solve", "precondition"):
            raise ValueError(f"`mode` must be 'solve' or 'precondition', got {mode!r}")
        if mode == "precondition" and not (rtol is None and maxiter is None):
            raise ValueError(
                "`rtol` and `maxiter` apply to mode='solve' only (mode='precondition' is one network "
                "application per product)"
            )
        rtol = 1e-6 if rtol is None else rtol
        n = self.system.n_unknowns

        def matvec(v: np.ndarray) -> np.ndarray:
            v = np.asarray(v, dtype=np.float64).reshape(n)
            if mode == "precondition":
                return self.precondition(v)
            result = self.solve(v, rtol=rtol, maxiter=maxiter)
            if not result.converged:
                warnings.warn(
                    f"DCDM did not converge inside the LinearOperator: {result.message}", stacklevel=2
                )
            return result.x

        return LinearOperator((n, n), matvec=matvec, rmatvec=matvec, dtype=np.float64)


def dcdm(
    system: Any,
    b: Any,
    x0: Any = None,
    *,
    shape: tuple[int, ...] | None = None,
    mask: Any = None,
    model: DCDM | str | os.PathLike | None = None,
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], None] | None = None,
    threads: int | None = None,
) -> LinearSolveResult:
    """Solve a grid system by DCDM with ``model`` (a :class:`DCDM`, a model path, or the shipped model for
    the system's dimension). ``system`` is a PoissonGrid, a GridStencil or a scipy matrix with ``shape``
    (and ``mask``). See :meth:`DCDM.solve`."""
    stencil = as_grid_stencil(system, shape, mask)
    if not isinstance(model, DCDM):
        model = DCDM.load(model, ndim=stencil.ndim)
    return model.solve(
        stencil, b, x0, rtol=rtol, atol=atol, maxiter=maxiter, callback=callback, threads=threads
    )
