"""Sparse Bayesian regression of model-error samples on the library (scikit-learn's ``ARDRegression``).

MEDIDA fits the model error with a relevance vector machine (Tipping, JMLR 2001); scikit-learn's
automatic-relevance-determination regression with ``fit_intercept=False`` and ``threshold_lambda=100``
is the same estimator (Mojgani et al. 2022). Columns and target are scaled to unit RMS first (as the
authors' RVM did with ``standardise=True``), so ``threshold_lambda`` prunes terms whose scaled weight is
below about ``1/sqrt(threshold_lambda)``; coefficients and posterior standard deviations are returned in
the original units.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ARDRegression

from sciml.medida.library import Library
from sciml.problems.semilinear import format_terms

__all__ = ["Correction", "sparse_bayesian_regression"]


@dataclass(frozen=True)
class Correction:
    """A discovered model correction ``u_t = model + Σ c_i θ_i``.

    Attributes:
        library: the candidate terms.
        weights: one coefficient per library term (0 where pruned).
        std: standard error per term (0 where pruned): the least-squares one after the refit (default),
            else ARD's posterior standard deviation. Both treat the rows as independent, which samples
            from a filter are not, so read it as an order of magnitude (in the benchmark's noisy runs it
            was larger than the actual error).
        noise_std: the residual standard deviation ARD estimated.
        n_samples: rows in the fit.
    """

    library: Library
    weights: np.ndarray
    std: np.ndarray = field(repr=False)
    noise_std: float = math.nan
    n_samples: int = 0

    @property
    def terms(self) -> dict[str, float]:
        """``{name: coefficient}`` of the kept terms."""
        return {n: float(w) for n, w in zip(self.library.names, self.weights) if w != 0}

    @property
    def uncertainties(self) -> dict[str, float]:
        """``{name: posterior std}`` of the kept terms."""
        return {n: float(s) for n, s, w in zip(self.library.names, self.std, self.weights) if w != 0}

    @property
    def keys(self) -> dict[tuple[int, int], float]:
        """``{(p, q): coefficient}`` of the kept terms that are in the ``u^p ∂^q u`` family."""
        return {
            t.key: float(w) for t, w in zip(self.library.terms, self.weights) if w != 0 and t.key is not None
        }

    def equation(self) -> str:
        """``"u_t = model + 0.015*u^2*u_x"`` style text (``"u_t = model"`` when nothing was found)."""
        body = format_terms(self.terms)
        if not body:
            return "u_t = model"
        return "u_t = model " + (f"- {body[1:]}" if body.startswith("-") else f"+ {body}")

    def with_weights(self, weights: np.ndarray, std: np.ndarray | None = None) -> Correction:
        """A copy with other weights (same library)."""
        return Correction(
            self.library,
            np.asarray(weights, dtype=np.float64),
            self.std if std is None else np.asarray(std, dtype=np.float64),
            self.noise_std,
            self.n_samples,
        )

    @classmethod
    def zero(cls, library: Library) -> Correction:
        """No correction."""
        k = len(library)
        return cls(library, np.zeros(k), np.zeros(k))


#: noise-free data: a fit whose residual is below this fraction of the RMS observed tendency explains them
#: (round-off is ~1e-12 on the shipped KS cases, ~1e-10 at L = 22, N = 64); far above it, something is missing
EXPLAINED = 1e-6
#: lower ARD thresholds tried, in order, when a noise-free fit with the default prunes a real small term
REFIT_THRESHOLDS = (1e4, 1e6)


def least_squares_residual(X: np.ndarray, Y: np.ndarray) -> float:
    """RMS residual of the unpruned least-squares fit of ``Y`` on every column of ``X`` that is not all
    zero: what the library can explain at best (compared with a pruned fit's residual)."""
    usable = np.flatnonzero(np.any(X != 0, axis=0))
    coef, *_ = np.linalg.lstsq(X[:, usable], Y, rcond=None)
    return float(np.sqrt(np.mean((Y - X[:, usable] @ coef) ** 2)))


def refit_until_explained(rounds: Callable[[float, int], tuple], history: list) -> tuple[tuple, float] | None:
    """Rerun the regression rounds at each of :data:`REFIT_THRESHOLDS` until one explains noise-free data.

    Args:
        rounds: ``rounds(threshold_lambda, first_iteration)`` runs the rounds, appends them to ``history``
            and returns a tuple whose third entry is the relative residual of the last round.
        history: the discovery's round records; the records of a refit that fails are removed again.

    Returns:
        ``(result of rounds, threshold_lambda)`` of the first refit whose residual is at most
        :data:`EXPLAINED`, or ``None`` when none is.
    """
    for lam in REFIT_THRESHOLDS:
        mark = len(history)
        trial = rounds(lam, mark)
        if trial[2] <= EXPLAINED:
            return trial, lam
        del history[mark:]
    return None


def sparse_bayesian_regression(
    features: np.ndarray,
    targets: np.ndarray,
    library: Library,
    *,
    threshold_lambda: float = 100.0,
    refit: bool = True,
    max_iter: int = 1000,
    tol: float = 1e-8,
) -> Correction:
    """Fit ``targets ≈ features @ w`` with ARD (sparse Bayesian regression) and return the correction.

    Args:
        features: ``(S, K)`` — library (or one-step sensitivity) columns, one per library term.
        targets: ``(S,)`` — model-error samples.
        library: the ``K`` terms (for names and keys).

    Other Args:
        threshold_lambda: prune a term when its weight precision exceeds this (in unit-RMS scaling).
        refit: re-fit the kept terms by least squares (removes ARD's small shrinkage toward zero, which
            would otherwise stall the Gauss–Newton rounds short of the exact coefficients); the
            uncertainties are then the least-squares ones, ``σ·sqrt(diag((XᵀX)⁻¹))``.
        max_iter, tol: passed to ``ARDRegression``.

    Returns:
        A :class:`Correction`.

    Raises:
        ValueError: mismatched shapes, too few rows, or NaN/inf in the inputs.
    """
    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64).reshape(-1)
    if X.ndim != 2 or X.shape[1] != len(library):
        raise ValueError(f"features must have shape (samples, {len(library)}), got {X.shape}")
    if X.shape[0] != y.size:
        raise ValueError(f"features have {X.shape[0]} rows but targets have {y.size}")
    if X.shape[0] < len(library):
        raise ValueError(f"need at least {len(library)} samples for {len(library)} terms, got {X.shape[0]}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("features and targets must be finite (NaN or inf found)")
    scale = np.sqrt(np.mean(X**2, axis=0))
    usable = scale > 0
    scale[~usable] = 1.0
    y_scale = float(np.sqrt(np.mean(y**2)))
    if y_scale == 0.0:
        k = len(library)
        return Correction(library, np.zeros(k), np.zeros(k), 0.0, y.size)
    Xs = X[:, usable] / scale[usable]
    ard = ARDRegression(fit_intercept=False, threshold_lambda=threshold_lambda, max_iter=max_iter, tol=tol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ard.fit(Xs, y / y_scale)
    weights = np.zeros(len(library))
    std = np.zeros(len(library))
    weights[usable] = ard.coef_ * y_scale / scale[usable]
    kept = np.flatnonzero(usable)[ard.lambda_ < threshold_lambda]
    sigma = np.sqrt(np.clip(np.diag(ard.sigma_), 0.0, None)) if ard.sigma_.size else np.zeros(0)
    std[kept] = sigma * y_scale / scale[kept]
    noise = y_scale / math.sqrt(ard.alpha_)
    if refit and kept.size:
        Xk = X[:, kept]
        coef, *_ = np.linalg.lstsq(Xk, y, rcond=None)
        residual = y - Xk @ coef
        dof = max(y.size - kept.size, 1)
        noise = float(np.sqrt(residual @ residual / dof))
        weights = np.zeros(len(library))
        weights[kept] = coef
        cov = np.linalg.pinv(Xk.T @ Xk)
        std[kept] = noise * np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return Correction(library, weights, std, float(noise), int(y.size))
