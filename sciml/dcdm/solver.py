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
from sciml.dcdm.network import build_network
from sciml.dcdm.stencil import apply_stencil, stencil_fields
from sciml.problems.linear import PoissonGrid
from sciml.solvers.linear import LinearSolveResult, SolveStatus
from sciml.solvers.linear.krylov import check_tolerances

__all__ = [
    "DCDM",
    "DCDMIteration",
    "PreparedSystem",
    "dcdm",
    "default_model_path",
    "MODEL_FORMAT",
    "STATUS_NAMES",
]

#: the ``format`` entry of a sciml DCDM model file
MODEL_FORMAT = "sciml-dcdm-model"
MODEL_VERSION = 1
#: status codes of :meth:`DCDMIteration.forward` (the exported solver) -> names of :class:`SolveStatus`
STATUS_NAMES = ["converged", "max_iterations", "negative_curvature", "non_finite", "stagnation"]
_STAGNATION_STEPS = 3


def default_model_path(ndim: int = 2) -> Path:
    """The model shipped with sciml for ``ndim``-dimensional grids (``sciml/data/dcdm_{ndim}d.pt``)."""
    return Path(__file__).resolve().parent.parent / "data" / f"dcdm_{ndim}d.pt"


class DCDMIteration(nn.Module):
    """Network + DCDM iteration on one system given as stencil fields (TorchScript-compatible).

    Fields have the grid's shape without a batch dimension: ``diag`` and ``couplings[a]`` as in
    :mod:`sciml.dcdm.stencil` (``diag[i] = A_ii``, ``couplings[a][i] = −A_{i, i+e_a}``, zero outside the
    unknowns).

    Args:
        network: a network with ``setup`` / ``precondition`` (see :mod:`sciml.dcdm.network`).
        k: number of previous directions to A-orthogonalise against (2 in the paper's code).
    """

    def __init__(self, network: nn.Module, k: int = 2):
        super().__init__()
        self.network = network
        self.k = k
        self.ndim = int(network.ndim)
        self.status_names = list(STATUS_NAMES)

    @torch.jit.export
    def setup(self, diag: Tensor, couplings: list[Tensor]) -> list[Tensor]:
        """The network's per-system context (float32), from float64 or float32 fields."""
        dtype = torch.float32
        batch: list[Tensor] = []
        for c in couplings:
            batch.append(c.unsqueeze(0).to(dtype))
        return self.network.setup(diag.unsqueeze(0).to(dtype), batch)

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
    ) -> tuple[Tensor, Tensor, float, int]:
        """One DCDM iteration. Appends the new direction and ``A q`` to ``directions``/``products``.

        Returns:
            ``(x, r, step_norm, code)``: the new iterate and true residual, ``‖α q‖``, and 0 (ok),
            2 (``qᵀAq <= 0``: negative curvature, ``A`` not positive definite) or 3 (non-finite).
        """
        q = self.direction(r, context)
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

    def forward(
        self,
        b: Tensor,
        diag: Tensor,
        couplings: list[Tensor],
        x0: Tensor | None = None,
        rtol: float = 1e-6,
        atol: float = 0.0,
        maxiter: int = 1000,
    ) -> tuple[Tensor, int, Tensor, int]:
        """Solve ``A x = b`` for the operator ``(diag, couplings)``; fields of the grid's shape.

        Returns:
            ``(x, iterations, residual_history, status)``: ``residual_history`` holds ‖r‖ per iteration
            (entry 0 for ``x0``), ``status`` indexes ``status_names`` (0 = converged).
        """
        if b.shape != diag.shape:
            raise ValueError("`b` must have the shape of `diag` (the grid shape)")
        if len(couplings) != self.ndim:
            raise ValueError("`couplings` must hold one field per grid dimension")
        mask = (diag > 0).to(b.dtype)
        b = b * mask
        context = self.setup(diag, couplings)
        if x0 is None:
            x = torch.zeros_like(b)
            r = b.clone()
        else:
            x = x0.to(b.dtype) * mask
            r = b - apply_stencil(x, diag, couplings)
        tol = max(rtol * float(torch.linalg.vector_norm(b)), atol)
        rnorm = float(torch.linalg.vector_norm(r))
        history: list[float] = [rnorm]
        if not math.isfinite(rnorm):
            return x, 0, torch.tensor(history, dtype=torch.float64), 3
        directions: list[Tensor] = []
        products: list[Tensor] = []
        stagnant = 0
        iterations = 0
        status = 1
        if rnorm <= tol:
            status = 0
        while status == 1 and iterations < maxiter:
            x, r, step_norm, code = self.step(x, r, b, diag, couplings, context, directions, products)
            if code != 0:
                status = code
                break
            iterations += 1
            rnorm = float(torch.linalg.vector_norm(r))
            history.append(rnorm)
            if not math.isfinite(rnorm):
                status = 3
            elif rnorm <= tol:
                status = 0
            elif step_norm < 2.220446049250313e-16 * float(torch.linalg.vector_norm(x)):
                stagnant += 1
                if stagnant >= 3:
                    status = 4
            else:
                stagnant = 0
        return x, iterations, torch.tensor(history, dtype=torch.float64), status


class DCDM:
    """A trained DCDM solver for grid Poisson systems: solve, scipy operator, TorchScript export.

    Args:
        network: a network from :mod:`sciml.dcdm.network` (its weights are used as they are).
        k: directions to A-orthogonalise against.
        info: free-form metadata kept in the model file (training command, data, metrics).

    Example:
        >>> solver = DCDM.load()                       # the model shipped with sciml
        >>> result = solver.solve(grid, b, rtol=1e-6)  # LinearSolveResult
        >>> Ainv = solver.as_linear_operator(grid)     # scipy LinearOperator ≈ A⁻¹
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
    def prepare(self, grid: PoissonGrid) -> PreparedSystem:
        """Read the grid's operator and run the network's setup once, for many right-hand sides.

        Raises:
            TypeError: ``grid`` is not a :class:`PoissonGrid`.
            ValueError: a model for another dimension, a grid without unknowns, or a singular system.
        """
        return PreparedSystem(self, grid)

    def solve(
        self,
        grid: PoissonGrid,
        b: Any,
        x0: Any = None,
        *,
        rtol: float = 1e-6,
        atol: float = 0.0,
        maxiter: int | None = None,
        callback: Callable[[Any], None] | None = None,
    ) -> LinearSolveResult:
        """Solve ``A x = b`` for the grid's operator by DCDM (``prepare(grid).solve(b, ...)``).

        See :meth:`PreparedSystem.solve` for the arguments, result and errors.
        """
        return self.prepare(grid).solve(b, x0, rtol=rtol, atol=atol, maxiter=maxiter, callback=callback)

    def precondition(self, grid: PoissonGrid, r: Any) -> Any:
        """One network application (≈ ``A⁻¹ r``); see :meth:`PreparedSystem.precondition`."""
        return self.prepare(grid).precondition(r)

    def as_linear_operator(
        self, grid: PoissonGrid, *, mode: str = "solve", rtol: float = 1e-6, maxiter: int | None = None
    ):
        """A scipy ``LinearOperator`` approximating ``A⁻¹``; see :meth:`PreparedSystem.as_linear_operator`."""
        return self.prepare(grid).as_linear_operator(mode=mode, rtol=rtol, maxiter=maxiter)

    def export(self, path: str | os.PathLike) -> Path:
        """Write the network and the DCDM iteration as one TorchScript file.

        Load it anywhere with plain PyTorch (no sciml import)::

            solver = torch.jit.load(path)
            x, iterations, residuals, status = solver(b, diag, couplings, None, 1e-6, 0.0, 1000)
            solver.status_names[status]          # "converged", "max_iterations", ...

        with ``b``, ``diag`` and ``couplings`` (a list of ``ndim`` fields) float64 tensors of the grid shape:
        ``diag[i] = A_ii``, ``couplings[a][i] = −A_{i, i+e_a}`` (zero outside the unknowns and in the last
        layer along axis ``a``) — the layout a fluid code stores its pressure matrix in. ``solver.setup``,
        ``solver.direction`` and ``solver.step`` are exported too. The model's config and ``info`` are in the
        archive's extra file ``sciml.json``.
        """
        from sciml.solvers.cache import atomic_write

        module = DCDMIteration(copy.deepcopy(self.network).requires_grad_(False), self.k)  # inference only
        path = Path(path)
        extra = {"sciml.json": json.dumps({"config": self.config, "k": self.k, "info": self.info})}
        with warnings.catch_warnings():
            # TorchScript is in maintenance mode (torch.jit.* warn); it is still the format that C++ and
            # plain-PyTorch simulation codes load without Python-side dependencies
            warnings.simplefilter("ignore", DeprecationWarning)
            scripted = torch.jit.script(module)
            with atomic_write(path) as tmp:
                torch.jit.save(scripted, str(tmp), _extra_files=extra)
        return path


class PreparedSystem:
    """DCDM for one grid: the operator's fields and the network's setup, reused across right-hand sides.

    A simulation with fixed obstacles prepares once and solves every frame (``setup_seconds`` is the
    one-off cost).
    """

    def __init__(self, solver: DCDM, grid: PoissonGrid):
        start = time.perf_counter()
        if not isinstance(grid, PoissonGrid):
            raise TypeError(f"`grid` must be a sciml.problems.linear.PoissonGrid, got {type(grid).__name__}")
        if grid.ndim != solver.ndim:
            raise ValueError(
                f"this DCDM model was trained for {solver.ndim}D grids but `grid` is {grid.ndim}D; load or "
                f"train a {grid.ndim}D model (`sciml dcdm train --ndim {grid.ndim}`)"
            )
        if grid.n_unknowns == 0:
            raise ValueError("`grid` has no fluid cells: there is nothing to solve")
        singular = grid.singular_components()
        if singular:
            raise ValueError(
                f"the system is singular: {singular} fluid region(s) touch no Dirichlet cell or wall, so A "
                "is only positive semi-definite; add a Dirichlet boundary, pin a value, or fix the mean"
            )
        self.solver = solver
        self.grid = grid
        diag, couplings = stencil_fields(grid, torch.float64)
        self.diag = diag[0]
        self.couplings = [c[0] for c in couplings]
        self._fluid = torch.as_tensor(grid.fluid, dtype=torch.float64)
        with torch.no_grad():
            self.context = solver._iteration.setup(self.diag, self.couplings)
        self.setup_seconds = time.perf_counter() - start

    def _as_field(self, v: Any, name: str) -> tuple[Tensor, Callable[[Tensor], Any]]:
        """``v`` (field or vector of unknowns, numpy or torch) as a float64 field, and the inverse map."""
        grid = self.grid
        is_torch = torch.is_tensor(v)
        arr = v if is_torch else np.asarray(v)
        if (arr.dtype.is_complex if is_torch else np.iscomplexobj(arr)) or (
            not is_torch and arr.dtype == object
        ):
            raise TypeError(f"`{name}` must be a real array, got dtype {arr.dtype}")
        shape = tuple(arr.shape)
        if shape == grid.shape:
            field = torch.as_tensor(arr, dtype=torch.float64).cpu() * self._fluid
            as_field = True
        elif shape == (grid.n_unknowns,):
            field = grid.to_field(torch.as_tensor(arr, dtype=torch.float64).cpu())
            as_field = False
        else:
            raise ValueError(
                f"`{name}` must be a field of the grid shape {grid.shape} or a vector of its "
                f"{grid.n_unknowns} "
                f"unknowns, got shape {shape}"
            )
        if not bool(torch.isfinite(field).all()):
            raise ValueError(f"`{name}` must be finite (it holds NaN or inf)")
        dtype = arr.dtype

        def back(x: Tensor) -> Any:
            out = x if as_field else grid.to_vector(x)
            if is_torch:
                return out.to(dtype=dtype if dtype.is_floating_point else torch.float64, device=v.device)
            return out.numpy().astype(dtype if np.issubdtype(dtype, np.floating) else np.float64)

        return field, back

    def solve(
        self,
        b: Any,
        x0: Any = None,
        *,
        rtol: float = 1e-6,
        atol: float = 0.0,
        maxiter: int | None = None,
        callback: Callable[[Any], None] | None = None,
    ) -> LinearSolveResult:
        """Solve ``A x = b`` by DCDM.

        Args:
            b: right-hand side: a field of ``grid.shape`` (values outside the fluid are ignored) or a vector
                of the ``grid.n_unknowns`` unknowns; numpy or torch.
            x0: initial guess in the same form (default zero).
            rtol, atol: stop when ``‖r‖ <= max(rtol·‖b‖, atol)`` (true residual, 2-norm over the unknowns).
            maxiter: iteration limit (default ``10 · n_unknowns``, as CG).
            callback: called as ``callback(x)`` after every iteration (``x`` in the form of ``b``).

        Returns:
            :class:`~sciml.solvers.linear.LinearSolveResult`, ``x`` in the form, type and dtype of ``b``;
            ``status`` is ``converged``, ``max_iterations``, ``negative_curvature`` (``qᵀAq <= 0``),
            ``non_finite`` or ``stagnation``.

        Raises:
            TypeError: complex or object input.
            ValueError: shape mismatch, non-finite input, bad tolerances.
        """
        maxiter = check_tolerances(rtol, atol, maxiter, self.grid.n_unknowns)
        bf, back = self._as_field(b, "b")
        diag, couplings, context = self.diag, self.couplings, self.context
        it = self.solver._iteration
        with torch.no_grad():
            if x0 is None:
                x = torch.zeros_like(bf)
                r = bf.clone()
            else:
                x = self._as_field(x0, "x0")[0]
                r = bf - apply_stencil(x, diag, couplings)
            bnorm = float(torch.linalg.vector_norm(bf))
            tol = max(rtol * bnorm, atol)
            history = [float(torch.linalg.vector_norm(r))]

            def finish(status: SolveStatus, iterations: int, message: str) -> LinearSolveResult:
                return LinearSolveResult(
                    back(x), iterations, np.asarray(history), status == SolveStatus.CONVERGED, status, message
                )

            if not math.isfinite(history[0]):
                return finish(SolveStatus.NON_FINITE, 0, "the initial residual b - A x0 is not finite")
            if history[0] <= tol:
                return finish(SolveStatus.CONVERGED, 0, "the initial guess already meets the tolerance")
            directions: list[Tensor] = []
            products: list[Tensor] = []
            stagnant = 0
            for k in range(1, maxiter + 1):
                x, r, step_norm, code = it.step(x, r, bf, diag, couplings, context, directions, products)
                if code == 2:
                    return finish(
                        SolveStatus.NEGATIVE_CURVATURE,
                        k - 1,
                        f"qᵀAq <= 0 at iteration {k}: the operator is not positive definite (a singular or "
                        "non-Poisson system) or the network returned a zero direction",
                    )
                if code == 3:
                    return finish(
                        SolveStatus.NON_FINITE,
                        k - 1,
                        f"the network's direction is not finite at iteration {k}",
                    )
                rnorm = float(torch.linalg.vector_norm(r))
                history.append(rnorm)
                if callback is not None:
                    callback(back(x))
                if not math.isfinite(rnorm):
                    return finish(SolveStatus.NON_FINITE, k, f"the residual is not finite at iteration {k}")
                if rnorm <= tol:
                    return finish(SolveStatus.CONVERGED, k, f"converged in {k} iterations")
                if step_norm < np.finfo(np.float64).eps * float(torch.linalg.vector_norm(x)):
                    stagnant += 1
                    if stagnant >= _STAGNATION_STEPS:
                        return finish(
                            SolveStatus.STAGNATION,
                            k,
                            f"stagnated at iteration {k} with ‖r‖/‖b‖ = {rnorm / bnorm:.3e}: the iterate no "
                            "longer changes in float64; loosen rtol/atol",
                        )
                else:
                    stagnant = 0
            return finish(
                SolveStatus.MAX_ITERATIONS,
                maxiter,
                f"not converged after {maxiter} iterations (‖r‖/‖b‖ = {history[-1] / bnorm:.3e}); the layout "
                "may be far from the training layouts: raise maxiter or fall back to a classical solver",
            )

    def precondition(self, r: Any) -> Any:
        """One network application ``‖r‖ f(r/‖r‖)`` (≈ ``A⁻¹ r``), in the form of ``r``."""
        rf, back = self._as_field(r, "r")
        with torch.no_grad():
            q = self.solver._iteration.direction(rf, self.context) * torch.linalg.vector_norm(rf)
        return back(q)

    def as_linear_operator(self, *, mode: str = "solve", rtol: float = 1e-6, maxiter: int | None = None):
        """A scipy ``LinearOperator`` on the vector of unknowns (``grid.to_vector`` order) approximating A⁻¹.

        Args:
            mode: ``"solve"`` — each product runs DCDM to ``rtol`` (an inverse accurate to ``rtol``, a
                drop-in for ``spsolve``); ``"precondition"`` — one network application per product (cheap
                but nonsymmetric and nonlinear: use it with a flexible method such as
                ``scipy.sparse.linalg.gmres``, not with ``cg``).
            rtol, maxiter: for ``mode="solve"``.

        Raises:
            ValueError: an unknown ``mode``.
        """
        from scipy.sparse.linalg import LinearOperator

        if mode not in ("solve", "precondition"):
            raise ValueError(f"`mode` must be 'solve' or 'precondition', got {mode!r}")
        n = self.grid.n_unknowns

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

        return LinearOperator((n, n), matvec=matvec, dtype=np.float64)


def dcdm(
    grid: PoissonGrid,
    b: Any,
    x0: Any = None,
    *,
    model: DCDM | str | os.PathLike | None = None,
    rtol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[Any], None] | None = None,
) -> LinearSolveResult:
    """Solve a grid Poisson system by DCDM with ``model`` (a :class:`DCDM`, a model path, or the shipped
    model for ``grid.ndim``). See :meth:`DCDM.solve`."""
    if not isinstance(model, DCDM):
        ndim = grid.ndim if isinstance(grid, PoissonGrid) else 2
        model = DCDM.load(model, ndim=ndim)
    return model.solve(grid, b, x0, rtol=rtol, atol=atol, maxiter=maxiter, callback=callback)
