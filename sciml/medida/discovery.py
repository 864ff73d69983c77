"""MEDIDA end to end: observations → (EnKF analyses) → one-step model-error samples → ARD → corrected model.

Mojgani, Chattopadhyay & Hassanzadeh, *Discovery of interpretable structural model errors by combining
Bayesian sparse regression and data assimilation: a chaotic Kuramoto–Sivashinsky test case*, Chaos 32
(2022). What this implementation adds, and why (measured in ``sciml bench medida``):

* **One-step-consistent regressors** (:func:`~sciml.medida.samples.one_step_features`) and a Gauss–Newton
  iteration: each round regresses ``r + F·w`` on ``F``, with ``r`` the samples and ``F`` the regressors of
  the model corrected by the current ``w``, and ARD re-selects the terms from the whole library. Without
  noise this recovers the coefficients to round-off; the paper's regressors (library at the observed
  state, ``features="library"``) are biased by the stiff linear part over one step.
* **Noisy observations**: an EnKF (:mod:`sciml.medida.enkf`) on the band-limited state supplies analysis
  states. A filter run with an imperfect model lags behind the truth, and the model-error samples taken
  from its analyses capture only part of the error, least at the weakly observed (high) wavenumbers.
  Remedies: (1) the regression uses only the Fourier modes whose observed signal-to-noise power ratio is
  at least ``band_snr`` (there the filter follows the observations closely); (2) the filter is **re-run
  with the corrected model** and the correction re-fitted, until the terms repeat and the coefficients
  change by less than ``tol`` — each round the filter's model error, hence its lag, shrinks; (3)
  **adaptive inflation**: the filter inflates in proportion to its innovations, so in the first round
  (poor model) it follows the observations and in later rounds (good model) it averages their noise.
  The observations are first projected on the resolved band and sampled on ``filter_n`` points, which is
  lossless for the smooth KS states and makes a 100-member filter cheap.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sciml.medida.enkf import EnsembleKalmanFilter, gaspari_cohn, periodic_distances
from sciml.medida.library import Library, as_library
from sciml.medida.regression import (
    EXPLAINED,
    Correction,
    least_squares_residual,
    refit_until_explained,
    sparse_bayesian_regression,
)
from sciml.medida.samples import (
    Observations,
    band_coefficients,
    band_limit,
    check_pair_spacing,
    corrected_problem,
    corrected_stepper,
    estimate_noise_std,
    library_features,
    one_step_features,
    one_step_targets,
)
from sciml.problems.semilinear import SemilinearPeriodicProblem
from sciml.solvers.spectral import small_work_threads

__all__ = ["Discovery", "discover", "regression_band"]


@dataclass
class Discovery:
    """The result of :func:`discover`.

    Attributes:
        model: the imperfect model.
        correction: the discovered correction (terms, coefficients, uncertainties).
        corrected: ``model`` with the correction (``None`` if the correction holds function terms).
        history: per iteration: the terms found, seconds, and (noisy data) the filter's final spread.
        noise_std: the observation noise used (given or estimated); 0 for noise-free data.
        band: the highest Fourier mode used in the regression (noisy data), else ``None``.
        features: ``"one-step"`` or ``"library"``.
        analysis: the final analysis means ``(windows, steps, filter_n)`` (noisy data), else ``None``.
        seconds: wall time.
        converged: whether the last round's kept terms repeated and its coefficients changed by less than
            ``tol``; ``None`` for ``features="library"`` (one pass, nothing to converge). ``False`` comes
            with a warning.
        threshold_lambda: the ARD pruning threshold of the final fit (it differs from the default when a
            noise-free fit was refitted with a lower threshold; see :func:`discover`).
        residual: (noise-free data) the last round's RMS regression residual relative to the RMS
            observed tendency ``(u_next − u_prev)/dt`` (round-off, ~1e-12, when the data are explained
            exactly); NaN for noisy data.
    """

    model: SemilinearPeriodicProblem
    correction: Correction
    corrected: SemilinearPeriodicProblem | None
    history: list[dict[str, Any]] = field(default_factory=list)
    noise_std: float = 0.0
    band: int | None = None
    features: str = "one-step"
    analysis: np.ndarray | None = field(default=None, repr=False)
    seconds: float = math.nan
    converged: bool | None = None
    threshold_lambda: float = math.nan
    residual: float = math.nan

    @property
    def terms(self) -> dict[str, float]:
        """``{name: coefficient}`` of the correction (in ``u_t = model + Σ c θ``)."""
        return self.correction.terms

    def equation(self) -> str:
        """The corrected model as ``u_t + … = 0`` text, or the correction when it cannot be written so."""
        if self.corrected is None:
            return self.correction.equation()
        return self.corrected.equation("=0")

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "model": self.model.equation("=0"),
            "correction": self.correction.equation(),
            "corrected_model": self.equation(),
            "terms": self.terms,
            "uncertainties": self.correction.uncertainties,
            "noise_std": self.noise_std,
            "band": self.band,
            "features": self.features,
            "iterations": self.history,
            "converged": self.converged,
            "threshold_lambda": self.threshold_lambda,
            "residual": self.residual,
            "seconds": self.seconds,
        }


def regression_band(values: torch.Tensor, noise_std: float, band_snr: float) -> int:
    """Highest Fourier mode whose mean observed power exceeds the noise power by ``band_snr``.

    Raises:
        ValueError: no mode is that far above the noise (the observations are too noisy).
    """
    n = values.shape[-1]
    power = torch.fft.rfft(values).abs().pow(2).reshape(-1, n // 2 + 1).mean(dim=0)
    noise_power = n * noise_std**2
    signal = power - noise_power
    good = torch.nonzero(signal[1:] >= band_snr * noise_power).flatten()
    if good.numel() == 0:
        raise ValueError(
            f"no Fourier mode of the observations has a signal-to-noise power ratio >= {band_snr:g} "
            f"(noise std "
            f"{noise_std:.3g}); lower band_snr or use less noisy observations"
        )
    return int(good.max()) + 1


def _changed(old: Correction | None, new: Correction) -> float:
    """Largest relative change of a kept coefficient (inf if the kept terms differ)."""
    if old is None:
        return math.inf
    if not np.array_equal(old.weights != 0, new.weights != 0):
        return math.inf
    kept = new.weights != 0
    if not kept.any():
        return 0.0
    return float(np.max(np.abs(new.weights[kept] - old.weights[kept]) / np.abs(new.weights[kept])))


#: noise-free data: a kept term whose contribution (RMS of its column times its weight) is below this
#: fraction of the RMS observed tendency is round-off (measured: <= 3e-10 on a perfect KS model at N = 64;
#: the smallest real term of the shipped cases contributes 4e-2) and is dropped
ROUNDOFF_TERM = 1e-8


def _rms(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.sqrt(np.mean(x**2))) if x.size else 0.0


def _system(
    model, library, u_prev, u_next, dt, correction, features, substeps, band
) -> tuple[np.ndarray, np.ndarray]:
    """The regression rows ``(X, Y)`` of one round on pairs ``(u_prev, u_next)``, linearized about
    ``correction``."""
    r = one_step_targets(model, u_prev, u_next, dt, correction=correction, substeps=substeps)
    if features == "library":
        F = library_features(library, u_prev, model.length)
        y = r
    else:
        F = one_step_features(model, library, u_prev, dt, correction=correction, substeps=substeps)
        y = r + F @ torch.as_tensor(correction.weights) if correction is not None else r
    if band is None:
        X, Y = F.reshape(-1, len(library)), y.reshape(-1)
    else:  # one row per degree of freedom of the band
        X = band_coefficients(F, band, dim=-2).reshape(-1, len(library))
        Y = band_coefficients(y, band, dim=-1).reshape(-1)
    if X.shape[0] < len(library):
        per_state = 2 * band + 1 if band is not None else model.n
        where = f"band = {band}: {per_state} Fourier rows per state" if band is not None else "the grid"
        raise ValueError(
            f"the regression has {X.shape[0]} rows ({where}, {X.shape[0] // per_state} pair(s)) for "
            f"{len(library)} library terms and needs at least {len(library)}: "
            + ("raise band (at most n/2 - 1), " if band is not None else "")
            + "observe more pairs, or use a smaller library"
        )
    return X.numpy(), Y.numpy()


def _fit(
    model, library, u_prev, u_next, dt, correction, features, substeps, threshold_lambda, band
) -> Correction:
    """One regression round on pairs ``(u_prev, u_next)`` (``(P, n)``), linearized about ``correction``."""
    X, Y = _system(model, library, u_prev, u_next, dt, correction, features, substeps, band)
    return sparse_bayesian_regression(X, Y, library, threshold_lambda=threshold_lambda)


def _drop_roundoff_terms(fit: Correction, X: np.ndarray, Y: np.ndarray, floor: float) -> Correction:
    """``fit`` without the kept terms whose contribution ``RMS(w_i X_i)`` is below ``floor`` (round-off),
    the rest re-fitted by least squares; ``fit`` itself when none is that small."""
    kept = np.flatnonzero(fit.weights)
    small = [i for i in kept if _rms(X[:, i] * fit.weights[i]) < floor]
    if not small:
        return fit
    keep = np.array([i for i in kept if i not in small], dtype=int)
    weights, std = np.zeros_like(fit.weights), np.zeros_like(fit.std)
    noise = _rms(Y)
    if keep.size:
        coef, *_ = np.linalg.lstsq(X[:, keep], Y, rcond=None)
        residual = Y - X[:, keep] @ coef
        noise = float(np.sqrt(residual @ residual / max(Y.size - keep.size, 1)))
        weights[keep] = coef
        cov = np.linalg.pinv(X[:, keep].T @ X[:, keep])
        std[keep] = noise * np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return Correction(fit.library, weights, std, noise, fit.n_samples)


def _threads_by_work(fn):
    """Run ``discover`` single-threaded when its batches are small (see ``small_work_threads``)."""

    @functools.wraps(fn)
    def wrapper(model, observations, *args, **kwargs):
        members, filter_n = kwargs.get("members", 100), kwargs.get("filter_n", 256)
        pairs = observations.n_pairs if isinstance(observations, Observations) else 1
        n = getattr(model, "n", 1)
        with small_work_threads(max(int(members) * int(filter_n), pairs * n)):
            return fn(model, observations, *args, **kwargs)

    return wrapper


@_threads_by_work
def discover(
    model: SemilinearPeriodicProblem,
    observations: Observations,
    *,
    library: Library | list | None = None,
    features: str = "one-step",
    noise_std: float | None = None,
    threshold_lambda: float | None = None,
    max_iterations: int = 6,
    tol: float | None = None,
    substeps: int = 1,
    stride: int = 1,
    members: int = 100,
    inflation: float | str = "adaptive",
    localization_radius: float | None = 10.0,
    filter_n: int = 256,
    burn_in: int = 300,
    band_snr: float = 1000.0,
    band: int | None = None,
    ablations: bool = False,
    method: str = "deterministic",
    lyapunov_exponent: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Discovery:
    """Discover the terms missing from ``model`` from ``observations`` of the true system (MEDIDA).

    Args:
        model: the imperfect model (a :class:`~sciml.problems.semilinear.SemilinearPeriodicProblem`).
        observations: windows of consecutive observed states on the model's grid.

    Other Args:
        library: candidate terms (default: the 24-term ``u^p ∂^q u`` library).
        features: ``"one-step"`` (consistent regressors, iterated) or ``"library"`` (the paper's: library at
            the observed state, one pass).
        noise_std: observation noise (``>= 0``); default ``observations.noise_std``, else estimated from
            the spectrum. Zero (or an estimate below ``1e-9`` of the RMS) means noise-free: no filter.
        threshold_lambda: ARD pruning threshold in unit-RMS scaling; default 100 (the paper's) for
            noise-free data and 1000 for noisy data, whose target RMS is mostly the filter's increment
            noise, so that 100 would prune a real but small term (|w| below ~0.1 of that RMS; case 18).
            Irrelevant terms are still removed by ARD's evidence. With the default on noise-free data
            (``features="one-step"``), a fit that leaves a residual above ``1e-6`` of the observed tendency
            while a fit with every term leaves 100 times less (ARD pruned a real but small term) is
            refitted, continuing the rounds, with ``threshold_lambda`` 1e4, then 1e6; the first that explains
            the data (residual <= 1e-6) is kept (``Discovery.threshold_lambda``, and
            ``history[i]["threshold_lambda"]`` on those rounds). A given ``threshold_lambda`` is never
            changed. On noise-free data, kept terms that contribute less than ``1e-8`` of the RMS observed
            tendency are round-off and dropped (a perfect model gets no terms).
        max_iterations, tol: Gauss–Newton / filter-re-run rounds; stop when the kept terms repeat and no
            coefficient changes by more than ``tol`` (default ``1e-8`` noise-free, ``0.02`` noisy).
        substeps: ETDRK4 steps per observation interval in the one-step map.
        stride: use every ``stride``-th pair.
        members, inflation, localization_radius, method: the EnKF (noisy data); ``inflation`` may be
            ``"adaptive"`` (see :class:`~sciml.medida.enkf.EnsembleKalmanFilter`).
        filter_n: grid points of the band-limited filter state (noisy data).
        burn_in: filter steps per window before samples are taken (noisy data).
        band: the highest Fourier mode used in the regression; default: all modes for noise-free data,
            the ``band_snr`` rule for noisy data.
        ablations: (noisy data) also fit, on the first round's analyses, the paper's regressors (library
            at the state) on all modes and on the band, and store them in ``history[0]["ablations"]``.
        band_snr: the regression uses Fourier modes up to the highest one whose observed signal-to-noise
            power ratio is at least this (noisy data).
        lyapunov_exponent: if given, warn when pairs are more than 0.01 Lyapunov times apart.
        seed: for the initial ensembles.
        progress: tqdm bars.

    Returns:
        A :class:`Discovery` (``converged``, ``threshold_lambda`` and ``residual`` say how it ended; each
        ``history`` round has its ``terms``, ``change`` and, noise-free, ``residual``).

    Raises:
        ValueError: observations on another grid, bad settings (``features``, ``members < 2``,
            ``burn_in`` leaving no pairs, ``filter_n`` larger than the grid — the message says when the
            data were classified noisy by the estimated ``noise_std`` —, a negative or NaN ``noise_std``,
            a ``band`` or pair count giving fewer regression rows than library terms), a model that blows
            up.
        TypeError: ``model`` or ``observations`` of the wrong type, ``noise_std`` not a number.

    Warns:
        UserWarning: the rounds stopped at ``max_iterations`` before the kept terms repeated and the
            coefficients changed by less than ``tol`` (``Discovery.converged`` is ``False``); or, on
            noise-free data, the final fit leaves a residual far above round-off (above ``1e-6`` of the
            observed tendency): a term missing from the library, noisy data, an interval too long for
            one model step (``substeps``), or — with a given ``threshold_lambda`` — a real term it pruned
            (the message says which).
    """
    start = time.perf_counter()
    if not isinstance(model, SemilinearPeriodicProblem):
        raise TypeError(f"model must be a SemilinearPeriodicProblem, got {type(model).__name__}")
    if not isinstance(observations, Observations):
        raise TypeError("observations must be an Observations object (windows of consecutive states)")
    if features not in ("one-step", "library"):
        raise ValueError(f"features must be 'one-step' or 'library', got {features!r}")
    if int(stride) < 1 or int(substeps) < 1 or int(max_iterations) < 1:
        raise ValueError("stride, substeps and max_iterations must be positive integers")
    observations.check_grid(model)
    library = as_library(library)
    check_pair_spacing(observations.dt, lyapunov_exponent)
    if noise_std is not None:  # the same rule as Observations(noise_std=...): a real number, not a bool
        if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float, np.integer, np.floating)):
            raise TypeError(f"noise_std must be a number or None, got {type(noise_std).__name__}")
        noise_std = float(noise_std)
        if not (math.isfinite(noise_std) and noise_std >= 0):
            raise ValueError(
                f"noise_std must be >= 0 (0: noise-free) or None (estimate it from the spectrum), got "
                f"{noise_std}"
            )
    values = torch.tensor(observations.values)
    sigma = observations.noise_std if noise_std is None else noise_std
    estimated = sigma is None
    if sigma is None:
        sigma = estimate_noise_std(values)
    rms = float(values.pow(2).mean().sqrt())
    noisy = sigma > 1e-9 * rms
    iterations = 1 if features == "library" else int(max_iterations)
    history: list[dict[str, Any]] = []
    correction: Correction | None = None
    analysis = None
    if band is not None and not 0 <= int(band) < model.n // 2:
        raise ValueError(f"band must be a Fourier mode in [0, {model.n // 2}), got {band}")

    user_threshold = threshold_lambda is not None
    if threshold_lambda is None:
        threshold_lambda = 1000.0 if noisy else 100.0
    residual = math.nan
    if not noisy:
        tol = 1e-8 if tol is None else tol
        u_prev, u_next = (torch.tensor(a) for a in observations.pairs(stride=stride))
        tendency = _rms(((u_next - u_prev) / observations.dt).numpy())
        one_step = features == "one-step"

        def rounds(start: Correction | None, lam: float, first: int):
            """Gauss–Newton rounds from ``start`` with threshold ``lam``; returns the last fit, the change,
            the relative residual and the unpruned least-squares one of the last round."""
            current, change, rel, rel_full = start, math.inf, math.nan, math.nan
            for it in range(first, first + iterations):
                t = time.perf_counter()
                X, Y = _system(
                    model, library, u_prev, u_next, observations.dt, current, features, substeps, band
                )
                new = sparse_bayesian_regression(X, Y, library, threshold_lambda=lam)
                if one_step:  # round-off "terms" of a (nearly) perfect model
                    new = _drop_roundoff_terms(new, X, Y, ROUNDOFF_TERM * tendency)
                change = _changed(current, new)
                current = new
                rel = _rms(Y - X @ new.weights) / tendency if tendency > 0 else 0.0
                record = {"iteration": it, "terms": new.terms, "change": change, "residual": rel}
                if lam != threshold_lambda:
                    record["threshold_lambda"] = lam
                history.append({**record, "seconds": time.perf_counter() - t})
                if change < tol:
                    break
            if one_step and rel > EXPLAINED:
                rel_full = least_squares_residual(X, Y) / tendency
            return current, change, rel, rel_full

        correction, change, residual, residual_full = rounds(None, threshold_lambda, 0)
        if one_step and residual > EXPLAINED:
            # noise-free data not explained to round-off by the pruned fit
            if residual_full < 1e-2 * residual and not user_threshold:
                # ... while all terms explain them far better: ARD pruned a real but small term (its scaled
                # weight below ~1/sqrt(threshold_lambda)); refit with lower thresholds, keep the first that
                # explains the data
                pruned_fit = correction
                refit = refit_until_explained(lambda lam, first: rounds(pruned_fit, lam, first), history)
                if refit is not None:
                    (correction, change, residual, _), threshold_lambda = refit
            if residual > EXPLAINED:
                pruned = residual_full < 1e-2 * residual
                cause = (
                    f"a fit with all {len(library)} terms leaves {residual_full:.2g}: "
                    f"threshold_lambda={threshold_lambda:g} likely pruned a real but small term; pass a "
                    "larger threshold_lambda (e.g. 1e4)"
                    if pruned
                    else "the library may lack a term of the truth (extend it), the data may be noisy (pass "
                    "noise_std), or the observation interval is too long for one ETDRK4 step of the model "
                    "(raise substeps)"
                )
                warnings.warn(
                    f"discover: the noise-free observations are not explained: the fit leaves a residual of "
                    f"{residual:.3g} of the observed tendency (round-off would be below {EXPLAINED:g}); "
                    f"{cause}",
                    stacklevel=3,
                )
        sigma = 0.0
    else:
        tol = 0.02 if tol is None else tol
        if int(members) < 2:
            raise ValueError(f"members must be at least 2, got {members}")
        if not 8 <= int(filter_n) <= model.n:
            why = (
                f"the observations were classified noisy: noise_std is unknown and the spectrum's tail "
                f"estimates it at {sigma:.3g} ({sigma / rms:.2g} of the RMS, above the 1e-09 noise-free "
                "cutoff), so the filter runs on filter_n points; if the data are noise-free pass "
                "noise_std=0, else pass filter_n <= n (e.g. filter_n=n)"
                if estimated
                else "pass filter_n <= n (e.g. filter_n=n)"
            )
            raise ValueError(
                f"filter_n must be between 8 and the model's n = {model.n}, got {filter_n}: {why}"
            )
        steps = observations.values.shape[1]
        if burn_in < 0 or burn_in >= steps - 1:
            raise ValueError(f"burn_in must leave pairs in each window of {steps} states, got {burn_in}")
        n_f = int(filter_n)
        sigma_f = sigma * math.sqrt((n_f - 1) / model.n)  # noise left in the band, per coarse point
        y = band_limit(values, n_f)  # (W, S, n_f)
        if band is None:
            band = regression_band(values, sigma, band_snr)
        band = min(int(band), n_f // 2 - 1)
        if (2 * band + 1) * y.shape[0] < len(library):
            warnings.warn(
                f"the regression band (Fourier modes <= {band}) gives {2 * band + 1} numbers per state and "
                f"{y.shape[0]} window(s) for {len(library)} library terms: consecutive states add little new "
                "information, so the fit may be under-determined; observe more windows spread in time or use "
                "a smaller library",
                stacklevel=2,
            )
        coarse = model.replace(n=n_f, u0=np.zeros(n_f))
        taper = None
        if localization_radius is not None:
            taper = gaspari_cohn(periodic_distances(n_f, model.length), float(localization_radius))
        generator = torch.Generator().manual_seed(seed)

        def keep_band(E: torch.Tensor) -> torch.Tensor:
            return band_limit(E, n_f)

        def filter_round(candidate: Correction | None, it: int):
            """Run the EnKF over every window with the model corrected by ``candidate``."""
            stepper = corrected_stepper(coarse, candidate, observations.dt, substeps)
            enkf = EnsembleKalmanFilter(
                lambda E: stepper.advance(E, substeps),
                sigma_f,
                inflation=inflation,
                localization=taper,
                method=method,
                seed=seed + it,
            )
            means, spreads, rhos = [], [], []
            for w in tqdm(range(y.shape[0]), disable=not progress, desc=f"EnKF round {it}", leave=False):
                noise = torch.randn(int(members), n_f, generator=generator, dtype=torch.float64) * sigma_f
                prior = y[w, 0] + keep_band(noise)
                result = enkf.run(prior, y[w], transform=keep_band)
                means.append(result.means)
                spreads.append(float(result.spreads[-1]))
                rhos.append(float(result.inflation.mean()))
            return torch.stack(means), spreads, rhos

        used: Correction | None = None  # the correction of the last filter run that stayed finite
        for it in range(iterations):
            t = time.perf_counter()
            damped = 0
            while True:
                try:
                    analysis, spreads, rhos = filter_round(correction, it)
                    break
                except ValueError as exc:  # the corrected model blew up inside the filter
                    if correction is None or damped == 8:
                        raise ValueError(f"round {it}: {exc}") from exc
                    # damped Gauss-Newton step: halfway back towards the last correction that ran
                    back = np.zeros(len(library)) if used is None else used.weights
                    correction = correction.with_weights(0.5 * (back + correction.weights))
                    damped += 1
            used = correction
            u_prev = analysis[:, burn_in:-1:stride].reshape(-1, n_f)
            u_next = analysis[:, burn_in + 1 :: stride].reshape(-1, n_f)[: u_prev.shape[0]]
            new = _fit(
                coarse,
                library,
                u_prev,
                u_next,
                observations.dt,
                correction,
                features,
                substeps,
                threshold_lambda,
                band,
            )
            record = {
                "iteration": it,
                "terms": new.terms,
                "change": _changed(correction, new),
                "spread": float(np.mean(spreads)),
                "inflation": float(np.mean(rhos)),
                "damped": damped,
                "seconds": time.perf_counter() - t,
            }
            if ablations and it == 0:
                record["ablations"] = {
                    f"library_{name}": _fit(
                        coarse,
                        library,
                        u_prev,
                        u_next,
                        observations.dt,
                        None,
                        "library",
                        substeps,
                        threshold_lambda,
                        b,
                    ).terms
                    for name, b in (("all_modes", None), ("band", band))
                }
            correction = new
            history.append(record)
            change = record["change"]
            if change < tol:
                break
        analysis = analysis.numpy()

    converged = None if features == "library" else bool(change < tol)
    if converged is False:
        warnings.warn(
            f"discover stopped after max_iterations={iterations} rounds without converging (last relative "
            f"coefficient change {change:.3g} > tol={tol:g}"
            + (", the kept terms still changing" if math.isinf(change) else "")
            + "): the terms and coefficients may be wrong; raise max_iterations, read the history, or "
            "check the library and the noise level",
            stacklevel=3,
        )
    try:
        corrected = corrected_problem(model, correction)
    except ValueError:
        corrected = None
    return Discovery(
        model=model,
        correction=correction,
        corrected=corrected,
        history=history,
        noise_std=float(sigma),
        band=band,
        features=features,
        analysis=analysis,
        seconds=time.perf_counter() - start,
        converged=converged,
        threshold_lambda=float(threshold_lambda),
        residual=residual,
    )
