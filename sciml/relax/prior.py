"""Tuners that are safe from the first system: a spectral prior from the system itself, and exploration
whose cost is capped by a multiple of the incumbent's.

The bandits of Khodak et al. (*Learning to Relax*, ICLR 2024) start knowing nothing, so on a short
sequence they pay for trying ω = 1 (thousands of iterations where ~300 would do) before they can earn it
back. :class:`PriorTuner` instead

1. **estimates the Jacobi spectrum of every system** with a few warm-started Lanczos steps
   (:class:`SpectralPrior`, :func:`~sciml.solvers.linear.estimate_jacobi_spectrum`), giving
   ``δ̂ ≈ λ_min(D^{-1/2} A D^{-1/2})`` and ``s = √(δ̂ (2 − δ̂))``; for a consistently ordered matrix
   ``ω(0) = 2 / (1 + s)`` is Young's optimal factor (Young 1971, ch. 6), elsewhere a starting point;
2. **learns a correction** ``θ`` on a grid of offsets, ``ω(θ) = 2 / (1 + e^θ s)``, from the costs it
   observes, with the context ``log s`` in a shared-slope regression
   ``log(iterations) ≈ α_θ + γ log s`` (so costs of easy and hard systems are comparable);
3. **explores only neighbours of the incumbent offset**, on about ``explore · √t`` of the first ``t``
   systems, and **caps each trial** at ``cap ×`` the incumbent's predicted iterations: a trial that hits
   the cap is stopped and the solve continues from its iterate with the incumbent's ω, so one exploration
   costs at most ``cap`` times an incumbent solve more than it would have. The censored trial still
   teaches: its cost is recorded as the larger of the cap and the residual-decay extrapolation
   ``cap · log(tol/r₀) / log(r_cap/r₀)`` — a capped loss, as in the paper's analysis, where costs are
   bounded by an iteration limit.

For SOR the residual history also says on which side of the optimum ω lies: past the optimum every
eigenvalue of the SOR iteration has modulus ``ω − 1`` (Young), so an observed decay rate close to
``ω − 1`` sends the next exploration towards smaller ω, a slower one towards larger ω.

The same tuner serves SSOR-preconditioned CG (``solver="ssor-pcg"``), whose optimal ω has the same
``2 / (1 + c √δ)`` form (Axelsson, *Iterative Solution Methods*, 1994, §7.4).
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
import torch

from sciml.problems.linear.stencil_matrix import ROW_SUM_TOLERANCE
from sciml.solvers.linear import (
    LinearSolveResult,
    SolveStatus,
    cg,
    estimate_jacobi_spectrum,
    sor,
    ssor_preconditioner,
)
from sciml.solvers.linear.preconditioners import _square_sparse

__all__ = ["SpectralPrior", "PriorTuner", "TunedSolve", "default_offsets", "SOLVERS"]

SOLVERS = ("sor", "ssor-pcg")
_SLOPE = {"sor": -1.0, "ssor-pcg": -0.5}  # iterations ∝ s^γ: SOR ~ 1/√δ, SSOR-PCG ~ δ^{-1/4}
_OMEGA_RANGE = (0.5, 1.995)
_SINGULAR = 1e-8  # an estimate δ̂ at or below this: A is (nearly) singular


def _cost(result: LinearSolveResult, maxiter: int) -> float:
    """The cost a solve teaches: its iterations, or at least ``maxiter`` when it did not converge."""
    its = float(result.iterations)
    return its if result.converged else max(its, float(maxiter))


def _then(
    first: LinearSolveResult, second: LinearSolveResult, message: str | None = None
) -> LinearSolveResult:
    """One result for a solve ``first`` continued by ``second`` (from its iterate or afresh): ``second``'s
    solution and status, both iteration counts and residual histories, ``second``'s message by default."""
    return LinearSolveResult(
        second.x,
        first.iterations + second.iterations,
        np.concatenate([first.residual_history, second.residual_history[1:]]),
        second.converged,
        second.status,
        second.message if message is None else message,
    )


def default_offsets(solver: str = "sor") -> np.ndarray:
    """Offsets ``θ`` of ``ω(θ) = 2/(1 + e^θ s)``: fine (0.05) around Young's ``θ = 0``, coarser away.

    For ``"ssor-pcg"`` the side of smaller ω (``θ > 0``) is a coarse 0.3 grid up to 2.1: SSOR-PCG is flat in
    ω near its optimum, so steps of 0.05 change the cost by less than the noise of one solve and the tuner
    never moves, and its optimum lies well below Young's ω where the coefficients are rough (Axelsson's
    bound has a coupling constant besides ``λ_min``: e.g. ω ≈ 1.4 against Young's 1.75 for a log-normal
    coefficient per cell), so the grid must reach ω ≈ 1 in steps the exploration can tell apart.
    """
    if solver == "ssor-pcg":
        return np.array(
            [-1.2, -0.9, -0.6, -0.4, -0.25, -0.15, -0.1, -0.05, 0.0, 0.3, 0.6, 0.9, 1.2, 1.5, 1.8, 2.1]
        )
    return np.array([-1.2, -0.9, -0.6, -0.4, -0.25, -0.15, -0.1, -0.05, 0.0, 0.05, 0.1, 0.15, 0.25, 0.4, 0.6])


def _same_pattern(indptr: np.ndarray, indices: np.ndarray, A: sp.csr_array) -> bool:
    """Whether the CSR sparsity pattern ``(indptr, indices)`` is that of ``A`` (the same arrays, or equal)."""
    if indptr is A.indptr and indices is A.indices:
        return True
    return (
        indptr.shape == A.indptr.shape
        and indices.shape == A.indices.shape
        and np.array_equal(indptr, A.indptr)
        and np.array_equal(indices, A.indices)
    )


class SpectralPrior:
    """``δ̂ = λ_min(D^{-1/2} A D^{-1/2})`` of each system of a sequence, cheaply.

    The Lanczos start is the previous system's Ritz vector, so for related systems one or two products
    with ``A`` suffice (one when the lowest mode did not change, as for ``A + cI`` or ``I + aK``: the Ritz
    residual of the start is then already within ``rtol · δ̂``). Whether ``A`` is symmetric is checked
    when its sparsity pattern changes, not for every system.

    A slowly drifting sequence (time steps of one simulation) need not be re-estimated every system:
    once three consecutive estimates each agreed with the one before to ``rtol / 2``, the interval between
    estimates doubles with every further such estimate, up to ``max_interval`` systems; any larger change
    resets it to 1 (i.i.d. sequences, where such agreement is rare, are estimated every time). A system is
    served by the last estimate only while Weyl's bound shows the matrix has not moved enough to matter:
    with ``B = D^{-1/2} A D^{-1/2}`` (the matrix ``δ̂`` is an eigenvalue of), ``|λ_min(B') − λ_min(B)| <=
    ‖B' − B‖₂ <= max(‖B' − B‖₁, ‖B' − B‖_∞)`` (max column / row sum of ``|B' − B|``; for a nonsymmetric
    ``A`` it bounds its symmetric part too), computed in ``O(nnz)`` against the matrix of the last estimate
    when the sparsity pattern is the same; the estimate is redone when that bound exceeds ``rtol · δ̂``, or
    when the pattern changed.

    Singular matrices whose rows all sum to 0 (pure Neumann, solved with a consistent ``b``): ``λ_min(B)``
    is 0, which says nothing about the speed of SOR on the consistent part; when an estimate is below
    ``1e-8`` and ``A 1 = 0`` (to round-off), the estimate is redone orthogonal to the null vector
    ``D^{1/2} 1`` and ``δ̂`` is the smallest *nonzero* eigenvalue. Any other ``δ̂`` below ``1e-8`` (a
    singular matrix of another kind, or nearly singular) is kept, with a ``RuntimeWarning``: ω is then pinned
    at the top of its range.

    Args:
        rtol: relative accuracy of ``δ̂`` (see :func:`~sciml.solvers.linear.estimate_jacobi_spectrum`).
        max_steps: Lanczos steps at most per estimate.
        max_interval: most systems one estimate serves (1: estimate every system).
        seed: seeds the random part of the first start vector.

    Raises:
        ValueError: ``rtol <= 0``, ``max_steps < 2``, ``max_interval < 1``.
    """

    def __init__(
        self, *, rtol: float = 0.05, max_steps: int = 80, max_interval: int = 16, seed: int = 0
    ) -> None:
        if not (math.isfinite(rtol) and rtol > 0):
            raise ValueError(f"`rtol` must be a positive number, got {rtol}")
        if isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 2:
            raise ValueError(f"`max_steps` must be an integer >= 2, got {max_steps}")
        if isinstance(max_interval, bool) or int(max_interval) != max_interval or max_interval < 1:
            raise ValueError(f"`max_interval` must be an integer >= 1, got {max_interval}")
        self.rtol, self.max_steps, self.seed = float(rtol), int(max_steps), int(seed)
        self.max_interval = int(max_interval)
        self.interval, self.since = 1, 0  # systems per estimate now; systems served by the last one
        self.streak = 0  # consecutive estimates that agreed with the one before
        self.vector: np.ndarray | None = None
        self.delta = math.nan
        self.matvecs = 0  # products with A spent over the whole sequence
        self._pattern: tuple | None = None  # (indptr, indices, transpose permutation or None)
        self._reference: tuple | None = None  # (indptr, indices, rows, scaled data) of the last estimated A
        self._deflated = False  # whether the last estimate left out the constant null vector
        #: whether the last matrix estimated was symmetric (else δ̂ is that of its symmetric part)
        self.symmetric = True

    def _symmetric(self, A: sp.csr_array) -> bool:
        """Whether ``A`` (canonical CSR) is symmetric: the transpose permutation of its sparsity pattern is
        kept while the pattern stays the same, and the values are compared with it every time (``O(nnz)``)."""
        p = self._pattern
        if p is None or not _same_pattern(p[0], p[1], A):
            order = sp.csr_array((np.arange(1, A.nnz + 1), A.indices, A.indptr), shape=A.shape).T.tocsr()
            same = np.array_equal(order.indptr, A.indptr) and np.array_equal(order.indices, A.indices)
            p = self._pattern = (A.indptr, A.indices, order.data - 1 if same else None)
        perm = p[2]
        return perm is not None and bool(
            np.allclose(A.data[perm], A.data, rtol=0, atol=1e-14 * np.abs(A.data).max())
        )

    def estimate(self, A: Any) -> float:
        """``δ̂`` for ``A`` (updates the warm-start vector and :attr:`matvecs`).

        Raises:
            TypeError: ``A`` not a matrix, or complex.
            ValueError: as :func:`~sciml.solvers.linear.estimate_jacobi_spectrum` (non-square matrix,
                zero or negative diagonal entry, non-finite entries), or a 0×0 ``A``.

        Warns:
            RuntimeWarning: ``δ̂ <= 1e-8`` for a matrix whose null space is not the constant (worded as
                "not positive definite" when the estimate is negative).
        """
        A = _square_sparse(A)
        n = A.shape[0]
        if n == 0:
            raise ValueError("`A` is 0×0: an empty system has no spectrum and nothing to tune; skip it")
        same_size = self.vector is not None and self.vector.shape == (n,)
        if same_size and self.since < self.interval and self._moved(A) <= self.rtol * self.delta:
            self.since += 1
            return self.delta
        v0 = self.vector if same_size else None
        symmetric = self.symmetric = self._symmetric(A) if A.nnz else True

        def run(v0: np.ndarray | None, deflate: np.ndarray | None) -> Any:
            est = estimate_jacobi_spectrum(
                A,
                v0,
                ends="low",
                rtol=self.rtol,
                max_steps=self.max_steps,
                seed=self.seed,
                symmetric=symmetric,
                deflate=deflate,
            )
            self.matvecs += est.matvecs
            return est

        null = self._null_vector(A) if self._deflated and same_size else None
        est = run(v0, null)
        if null is None and est.low <= _SINGULAR:
            null = self._null_vector(A)
            if null is not None:
                est = run(None, null)
        self._deflated = null is not None
        if est.low < -_SINGULAR:
            part = "" if symmetric else " (of its symmetric part)"
            warnings.warn(
                f"the matrix is not positive definite: λ_min(D^-1/2 A D^-1/2){part} ≈ {est.low:.1e} < 0, so "
                "SOR is not guaranteed to converge for any ω (ω sits at the top of its range); check the "
                "sign of A, or solve an indefinite system with gmres",
                RuntimeWarning,
                stacklevel=3,
            )
        elif est.low <= _SINGULAR:
            warnings.warn(
                f"the matrix is (nearly) singular: λ_min(D^-1/2 A D^-1/2) ≈ {est.low:.1e} and its null "
                "space is not the constant (rows do not all sum to 0), so ω sits at the top of its range; "
                "pin a value or make the singular groups explicit",
                RuntimeWarning,
                stacklevel=3,
            )
        self.vector = est.vector_low
        self._remember(A)
        delta = float(min(max(est.low, 1e-14), 1.0))
        steady = same_size and abs(delta - self.delta) <= 0.5 * self.rtol * delta
        self.streak = self.streak + 1 if steady else 0
        self.interval = min(2 * self.interval, self.max_interval) if self.streak >= 3 else 1
        self.delta, self.since = delta, 1
        return self.delta

    def _scaled(self, A: sp.csr_array, rows: np.ndarray) -> np.ndarray:
        s = 1.0 / np.sqrt(A.diagonal())
        return A.data * s[rows] * s[A.indices]

    def _remember(self, A: sp.csr_array) -> None:
        """Keep what :meth:`_moved` compares the next matrices with (``A`` is canonical CSR)."""
        if not (A.diagonal() > 0).all():
            self._reference = None
            return
        rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
        self._reference = (A.indptr, A.indices, rows, self._scaled(A, rows))

    def _moved(self, A: sp.csr_array) -> float:
        """Weyl's bound on ``|λ_min(B') − λ_min(B)|`` against the last estimated matrix (``inf`` when the
        sparsity pattern changed or ``A`` has a non-positive diagonal entry)."""
        ref = self._reference
        if ref is None or not _same_pattern(ref[0], ref[1], A):
            return math.inf
        if not (A.diagonal() > 0).all():
            return math.inf
        diff = np.abs(self._scaled(A, ref[2]) - ref[3])
        n = A.shape[0]
        rows = np.bincount(ref[2], weights=diff, minlength=n)
        cols = np.bincount(A.indices, weights=diff, minlength=n)
        return float(max(rows.max(initial=0.0), cols.max(initial=0.0)))

    @staticmethod
    def _null_vector(A: sp.csr_array) -> np.ndarray | None:
        """``D^{1/2} 1 / ‖D^{1/2} 1‖`` when every row of ``A`` sums to 0 (to round-off), else ``None``."""
        d = A.diagonal()
        if not (d > 0).all() or not (np.abs(A @ np.ones(A.shape[0])) <= ROW_SUM_TOLERANCE * d).all():
            return None
        v = np.sqrt(d)
        return v / np.linalg.norm(v)

    def state_dict(self) -> dict[str, Any]:
        return {
            "delta": self.delta,
            "matvecs": self.matvecs,
            "interval": self.interval,
            "since": self.since,
            "streak": self.streak,
            "vector": torch.as_tensor(self.vector if self.vector is not None else np.zeros(0)),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        vec = np.asarray(state["vector"], dtype=np.float64)
        self.vector = vec.copy() if vec.size else None
        self.delta, self.matvecs, self._pattern = float(state["delta"]), int(state["matvecs"]), None
        self._reference, self._deflated = None, False  # the next system is estimated afresh
        self.interval, self.since = int(state["interval"]), int(state["since"])
        self.streak = int(state["streak"])


class TunedSolve(NamedTuple):
    """One system solved by :meth:`PriorTuner.solve`.

    Attributes:
        result: the :class:`~sciml.solvers.linear.LinearSolveResult` (its ``iterations`` counts every
            iteration spent on this system, the capped trial included).
        omega: the ω the solve started with (the trial's when exploring).
        omega_incumbent: the incumbent's ω for this system (what finished a censored trial).
        explored: whether this system was an exploration.
        censored: whether the exploration hit its cap (and the incumbent finished the solve).
        cap: the trial's iteration cap (0 when not exploring).
        trial_iterations: iterations spent with the trial's ω (at most ``cap``; 0 when not exploring).
        delta: the prior ``δ̂`` of this system.
        fallback: whether the solve with the tuned ω failed (diverged or hit ``maxiter``) and SOR with
            ω = 1 solved the system again (see :meth:`PriorTuner.solve`).
    """

    result: LinearSolveResult
    omega: float
    omega_incumbent: float
    explored: bool
    censored: bool
    cap: int
    trial_iterations: int
    delta: float
    fallback: bool = False


class PriorTuner:
    """Relaxation factor for SOR or SSOR-PCG from a spectral prior, refined by capped exploration.

    ``tuner.solve(A, b, x0, rtol=...)`` solves one system of the sequence and learns from it; see the
    module docstring for the method.

    Args:
        solver: ``"sor"`` or ``"ssor-pcg"``.
        offsets: grid of ``θ`` (default :func:`default_offsets` of ``solver``; must contain 0, where it
            starts).
        cap: a trial stops after ``cap ×`` the incumbent's predicted iterations (> 1).
        explore: explorations on the first ``t`` systems are about ``explore · √t`` (>= 0; 0: never).
        prior: the :class:`SpectralPrior` (default one with its defaults).
        seed: seeds the choice of which neighbour to explore.

    Raises:
        ValueError: unknown ``solver``, offsets without 0 or non-finite, ``cap <= 1``, ``explore < 0``.
    """

    def __init__(
        self,
        solver: str = "sor",
        *,
        offsets: Any = None,
        cap: float = 1.5,
        explore: float = 1.0,
        prior: SpectralPrior | None = None,
        seed: int = 0,
    ) -> None:
        if solver not in SOLVERS:
            raise ValueError(f"`solver` must be one of {SOLVERS}, got {solver!r}")
        if offsets is None:
            offsets = default_offsets(solver)
        else:
            offsets = np.sort(np.asarray(offsets, dtype=np.float64).ravel())
        if offsets.size < 2 or not np.isfinite(offsets).all() or not np.any(offsets == 0.0):
            raise ValueError(f"`offsets` must be at least two finite values including 0, got {offsets}")
        if not (math.isfinite(cap) and cap > 1):
            raise ValueError(f"`cap` must be a number > 1 (a trial may cost cap × the incumbent), got {cap}")
        if not (math.isfinite(explore) and explore >= 0):
            raise ValueError(f"`explore` must be a number >= 0, got {explore}")
        self.solver = solver
        self.offsets = offsets
        self._scale = [math.exp(v) for v in offsets.tolist()]
        self.cap = float(cap)
        self.explore = float(explore)
        # SSOR-PCG is flat in ω near its optimum: a coarser prior (fewer Lanczos runs) loses nothing
        self.prior = SpectralPrior(rtol=0.05 if solver == "sor" else 0.2) if prior is None else prior
        self._told_nonsymmetric = False  # (the warning about a nonsymmetric A is given once)
        self.generator = torch.Generator().manual_seed(int(seed))
        d = offsets.size
        # per offset: n, Σx, Σy, Σxx, Σxy, Σyy with x = log s, y = log(iterations)
        self._stats = [[0.0] * 6 for _ in range(d)]
        self._fit()
        self.t = 0
        self.explorations = 0
        self.direction = 0  # SOR: +1 explore larger ω, −1 smaller, 0 unknown
        self._M = None

    # ------------------------------------------------------------------ model
    @property
    def stats(self) -> np.ndarray:
        """Per offset ``[n, Σx, Σy, Σxx, Σxy, Σyy]`` with ``x = log s``, ``y = log(iterations)``."""
        return np.array(self._stats)

    def _fit(self) -> None:
        """Refit the shared slope ``γ`` of ``log(iterations)`` on ``log s`` (within-offset regression, prior
        −1 for SOR and −0.5 for SSOR-PCG with the weight of one unit of ``Σ(x − x̄)²``), the intercepts
        ``α_θ``, the pooled residual spread ``σ`` (prior 0.1 with the weight of two residuals) and the
        incumbent: another offset takes over only when its *upper* bound ``α_θ + σ/√n_θ`` is below the
        incumbent's ``α`` — an offset tried once or twice must look better by more than the noise of a
        single solve (plain Python: 15 offsets, called once per system)."""
        cxx = cxy = 0.0
        rows = self._stats
        for n, sx, sy, sxx, sxy, _ in rows:
            if n > 0:
                cxx += sxx - sx * sx / n
                cxy += sxy - sx * sy / n
        g = (cxy + _SLOPE[self.solver]) / (cxx + 1.0)
        alpha = [(sy - g * sx) / n if n > 0 else math.nan for n, sx, sy, _, _, _ in rows]
        rss, dof = 2 * 0.1**2, 2.0
        for n, sx, sy, sxx, sxy, syy in rows:
            if n > 1:  # Σ (r − r̄)² with r = y − γx
                rss += max(syy - 2 * g * sxy + g * g * sxx - (sy - g * sx) ** 2 / n, 0.0)
                dof += n - 1
        sigma = math.sqrt(rss / dof)
        inc = getattr(self, "incumbent", int(np.flatnonzero(self.offsets == 0.0)[0]))
        score = [
            math.inf if row[0] == 0 else a if j == inc else a + sigma / math.sqrt(row[0])
            for j, (a, row) in enumerate(zip(alpha, rows))
        ]
        self.slope, self.alpha, self.sigma = float(g), np.array(alpha), sigma
        if math.isfinite(min(score)):
            self.incumbent = min(range(len(score)), key=score.__getitem__)
        else:
            self.incumbent = inc

    def intercepts(self) -> np.ndarray:
        """``α_θ`` per offset (``nan`` for offsets never tried)."""
        return self.alpha.copy()

    def omega(self, delta: float, index: int) -> float:
        """``ω(θ_index) = 2 / (1 + e^θ √(δ(2 − δ)))`` clipped to [0.5, 1.995]."""
        s = math.sqrt(max(delta * (2.0 - delta), 1e-300))
        return min(max(2.0 / (1.0 + self._scale[index] * s), _OMEGA_RANGE[0]), _OMEGA_RANGE[1])

    def _record(self, index: int, delta: float, iterations: float) -> None:
        x = math.log(max(delta * (2.0 - delta), 1e-300)) / 2.0
        y = math.log(max(iterations, 1.0))
        row = self._stats[index]
        for k, v in enumerate((1.0, x, y, x * x, x * y, y * y)):
            row[k] += v
        self._fit()

    def _explore_now(self) -> bool:
        return self.t > 0 and self.explorations < math.floor(self.explore * math.sqrt(self.t))

    def _neighbour(self, inc: int) -> int | None:
        d = self.offsets.size
        options = [j for j in (inc - 1, inc + 1) if 0 <= j < d]
        if not options:
            return None
        u = float(torch.rand((), generator=self.generator, dtype=torch.float64))
        if len(options) == 1:
            return options[0]
        if self.solver == "sor" and self.direction != 0 and u < 0.75:
            return inc - 1 if self.direction > 0 else inc + 1  # smaller θ = larger ω
        n = np.array([self._stats[j][0] for j in options])
        if n[0] != n[1] and u < 0.75:
            return options[int(np.argmin(n))]
        return options[int(u * 2) % 2]

    # ------------------------------------------------------------------ solving
    def _run(self, A, b, x0, omega, rtol, maxiter) -> LinearSolveResult:
        if self.solver == "sor":
            return sor(A, b, omega, x0, rtol=rtol, maxiter=maxiter)
        self._M = (
            ssor_preconditioner(A, omega)
            if self._M is None or self._M.shape != A.shape
            else self._M.update(A, omega)
        )
        return cg(A, b, x0, rtol=rtol, maxiter=maxiter, M=self._M)

    def solve(
        self, A: Any, b: Any, x0: Any = None, *, rtol: float = 1e-8, maxiter: int = 10_000
    ) -> TunedSolve:
        """Solve ``A x = b`` with the tuned ω and learn from the cost.

        A solve that does not converge (``non_finite``: diverged, or ``max_iterations``) is learned as a
        censored cost of at least ``maxiter`` iterations, so a diverging ω never looks cheap. For SOR, where ω
        decides convergence (ω > 1 can diverge on a nonsymmetric ``A``), the system is then solved again with
        ω = 1 (Gauss–Seidel; from the failed iterate if its residual fell, else from ``x0``, with another
        ``maxiter`` iterations) and the next explorations go towards smaller ω: the returned ``result`` is
        that re-solve's (``x``, status, message), its ``iterations`` and ``residual_history`` covering both
        solves, and ``fallback`` is set.

        Args:
            A: square sparse matrix with a positive diagonal (symmetric positive definite for
                ``ssor-pcg``).
            b: right-hand side; x0: initial guess (default zero).
            rtol: relative residual tolerance; maxiter: iteration limit of the solve with the tuned ω (the
                trial and the incumbent together; the ω = 1 re-solve after a failure has its own).

        Returns:
            :class:`TunedSolve`.

        Raises:
            ValueError: as :func:`~sciml.solvers.linear.sor` / :func:`~sciml.solvers.linear.cg` and the
                prior (non-square or 0×0 matrix, non-positive diagonal entry, shapes, tolerances).

        Warns:
            RuntimeWarning: once per tuner, for SOR on the first nonsymmetric ``A`` (the prior does not hold
                there); and as :meth:`SpectralPrior.estimate`.
        """
        delta = self.prior.estimate(A)  # (validates A; the solver checks it again)
        if self.solver == "sor" and not self.prior.symmetric and not self._told_nonsymmetric:
            self._told_nonsymmetric = True
            warnings.warn(
                "`A` is not symmetric: the prior is Young's ω of its symmetric part, a poor start for SOR on "
                "nonsymmetric (e.g. convection-dominated) systems, where the tuner can cost many times SOR "
                "with ω = 1 (26× on a measured sequence, README); prefer sor(A, b, omega=1.0) or gmres",
                RuntimeWarning,
                stacklevel=2,
            )
        inc = self.incumbent
        w_inc = self.omega(delta, inc)
        trial = self._neighbour(inc) if self._explore_now() else None
        explored = censored = False
        cap = trial_its = 0
        if trial is not None:
            self.explorations += 1
            explored = True
            alpha = self.alpha[inc]
            predicted = math.exp(alpha + self.slope * math.log(max(delta * (2 - delta), 1e-300)) / 2)
            cap = max(2, math.ceil(self.cap * predicted))
            w = self.omega(delta, trial)
            first = self._run(A, b, x0, w, rtol, min(cap, maxiter))
            trial_its = first.iterations
            if first.converged or cap >= maxiter:
                result, cost, w_last = first, _cost(first, maxiter), w
            else:
                censored = True
                h = first.residual_history
                stopped_at_cap = first.status == SolveStatus.MAX_ITERATIONS and np.isfinite(h[-1])
                # continue from the trial's iterate, unless the trial diverged: then from the start
                restart = first.x if stopped_at_cap else x0
                rest = self._run(A, b, restart, w_inc, rtol, maxiter - first.iterations)
                tol = rtol * float(np.linalg.norm(np.asarray(b, dtype=np.float64)))
                drop = math.log(max(h[-1], 1e-300) / max(h[0], 1e-300)) if stopped_at_cap else 0.0
                need = math.log(max(tol, 1e-300) / max(h[0], 1e-300))
                cost = cap * (need / drop if drop < 0 else 10.0)
                cost = max(float(cap), cost) if stopped_at_cap else max(cost, float(maxiter))  # diverged
                w_last = w_inc
                if not rest.converged:  # the incumbent failed too: that is worth knowing
                    self._record(inc, delta, _cost(rest, maxiter))
                result = _then(first, rest)
            self._record(trial, delta, cost)  # (a censored run's incumbent part is no clean sample)
            omega_used = w
        else:
            result = self._run(A, b, x0, w_inc, rtol, maxiter)
            self._record(inc, delta, _cost(result, maxiter))
            omega_used = w_last = w_inc
            h = result.residual_history
            k = h.size - 1
            if self.solver == "sor" and k >= 8 and result.converged:
                rate = (h[k] / max(h[k // 2], 1e-300)) ** (1.0 / (k - k // 2))
                self.direction = -1 if rate <= 1.05 * abs(w_inc - 1.0) + 1e-3 else 1
        fallback = (
            self.solver == "sor"
            and result.status in (SolveStatus.NON_FINITE, SolveStatus.MAX_ITERATIONS)
            and w_last != 1.0
            and maxiter > 0
        )
        if fallback:  # a safe ω, so the caller still gets a solution
            h = result.residual_history
            restart = result.x if np.isfinite(h[-1]) and h[-1] < h[0] else x0
            safe = self._run(A, b, restart, 1.0, rtol, maxiter)
            note = f"{safe.message} (after SOR with ω = {w_last:.4g} failed: {result.status})"
            result = _then(result, safe, note)
            self.direction = -1  # explore smaller ω next
        self.t += 1
        return TunedSolve(result, omega_used, w_inc, explored, censored, cap, trial_its, delta, fallback)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (tensors and plain values; ``weights_only``-loadable)."""
        return {
            "kind": "PriorTuner",
            "solver": self.solver,
            "offsets": torch.as_tensor(self.offsets),
            "stats": torch.as_tensor(self.stats),
            "t": self.t,
            "explorations": self.explorations,
            "direction": self.direction,
            "incumbent": self.incumbent,
            "generator": self.generator.get_state(),
            "prior": self.prior.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`.

        Raises:
            ValueError: a state of another kind, solver or offset grid.
        """
        if state.get("kind") != "PriorTuner":
            raise ValueError(f"state is for a {state.get('kind')!r}, not a PriorTuner")
        if state["solver"] != self.solver:
            raise ValueError(f"state was saved for solver {state['solver']!r}, this tuner is {self.solver!r}")
        offsets = np.asarray(state["offsets"], dtype=np.float64)
        if offsets.shape != self.offsets.shape or not np.allclose(offsets, self.offsets):
            raise ValueError("state was saved with another grid of offsets")
        self._stats = np.asarray(state["stats"], dtype=np.float64).tolist()
        self.incumbent = int(state["incumbent"])
        self._fit()
        self.t, self.explorations = int(state["t"]), int(state["explorations"])
        self.direction = int(state["direction"])
        self.generator.set_state(state["generator"])
        self.prior.load_state_dict(state["prior"])
