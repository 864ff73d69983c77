"""Observations, one-step model-error samples, and the features they are regressed on.

MEDIDA's first step (Mojgani et al. 2022): from an observed state ``u(t_{k-1})`` integrate the imperfect
model one interval ``Δt`` to ``ũ(t_k)``; the model-error sample is ``(u(t_k) − ũ(t_k)) / Δt``. The paper
regresses it on the library evaluated at the observed state (:func:`library_features`). Over one step
the stiff linear part of the model (``u_xxxx``: ``k⁴Δt`` is not small at the resolved wavenumbers) weighs
each Fourier mode of the model error, so that regression is biased by 0.1–13 % on the KS cases even
without noise. :func:`one_step_features` removes the bias: each column is the change of the *one-step
map* when the model gains that term (a central difference in its coefficient), so the regression fits the
map that produced the data, and a Gauss–Newton iteration (re-linearizing about the corrected model)
makes the fit exact up to the observation error.

Noisy observations are projected onto a band of Fourier modes and sampled on a coarse grid
(:func:`band_limit`): lossless for band-limited states (KS at L = 100 has no energy above round-off
beyond k ≈ 8), it removes the noise outside the band and shrinks the filter's state.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from sciml.medida.library import Library
from sciml.medida.regression import Correction
from sciml.problems.semilinear import SemilinearPeriodicProblem
from sciml.solvers.spectral import ETDRK4

__all__ = [
    "Observations",
    "corrected_problem",
    "corrected_stepper",
    "one_step",
    "one_step_targets",
    "library_features",
    "one_step_features",
    "band_limit",
    "band_coefficients",
    "estimate_noise_std",
]


@dataclass(frozen=True, eq=False)
class Observations:
    """Windows of consecutive observed states, ``Δt`` apart, on a periodic grid.

    Args:
        values: ``(windows, steps, n)`` (or ``(steps, n)`` for one window), ``steps ≥ 2``.
        dt: time between consecutive observations in a window.
        length: the period of the grid (``n`` points at ``x0 + j·length/n``).
        t0: start time of each window (for plots and reports); default ``0, 1, …``.
        noise_std: the observation-error standard deviation if known (``None``: estimated from the
            spectrum's flat tail by :func:`estimate_noise_std`; ``0``: noise-free).

    Raises:
        ValueError: wrong number of dimensions, fewer than two observations per window, NaN/inf (the
            message gives the window and step), a non-positive ``dt`` or ``length``, a negative
            ``noise_std``.
        TypeError: ``dt``, ``length`` or ``noise_std`` is not a number (e.g. the string ``"1e-3"``).
    """

    values: np.ndarray = field(repr=False)
    dt: float
    length: float
    t0: np.ndarray | None = None
    noise_std: float | None = None

    def __post_init__(self) -> None:
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim == 2:
            values = values[None]
        if values.ndim != 3:
            raise ValueError(
                f"observations must have shape (windows, steps, n) or (steps, n), got {np.shape(self.values)}"
            )
        if values.shape[1] < 2:
            raise ValueError(
                f"each observation window needs at least 2 consecutive states (a pair), got {values.shape[1]}"
            )
        if values.shape[2] < 4:
            raise ValueError(f"observations have only {values.shape[2]} grid points; need at least 4")
        bad = ~np.isfinite(values)
        if bad.any():
            w, s, _ = np.argwhere(bad)[0]
            raise ValueError(
                f"observations hold NaN or inf (first at window {w}, step {s}); drop or fill those states"
            )
        for name in ("dt", "length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
        if self.noise_std is not None and (
            isinstance(self.noise_std, bool)
            or not isinstance(self.noise_std, (int, float, np.integer, np.floating))
        ):
            raise TypeError(f"noise_std must be a number or None, got {type(self.noise_std).__name__}")
        if not (math.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt (time between observations) must be positive, got {self.dt}")
        if not (math.isfinite(self.length) and self.length > 0):
            raise ValueError(f"length (the period) must be positive, got {self.length}")
        if self.noise_std is not None and not (math.isfinite(self.noise_std) and self.noise_std >= 0):
            raise ValueError(f"noise_std must be >= 0 or None (unknown), got {self.noise_std}")
        t0 = np.arange(values.shape[0], dtype=np.float64) if self.t0 is None else np.asarray(self.t0, float)
        if t0.shape != (values.shape[0],):
            raise ValueError(f"t0 must have one start time per window ({values.shape[0]}), got {t0.shape}")
        values.setflags(write=False)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "t0", t0)
        object.__setattr__(self, "dt", float(self.dt))
        object.__setattr__(self, "length", float(self.length))

    @property
    def n(self) -> int:
        return self.values.shape[2]

    @property
    def n_pairs(self) -> int:
        return self.values.shape[0] * (self.values.shape[1] - 1)

    def pairs(self, *, start: int = 0, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(u_prev, u_next)``, each ``(P, n)``: consecutive states from step ``start``, every ``stride``."""
        prev = self.values[:, start:-1:stride].reshape(-1, self.n)
        nxt = self.values[:, start + 1 :: stride].reshape(-1, self.n)
        return prev, nxt[: prev.shape[0]]

    def check_grid(self, model: SemilinearPeriodicProblem) -> None:
        """Raise ``ValueError`` unless the observations live on ``model``'s grid (same ``n`` and period)."""
        if self.n != model.n or not math.isclose(self.length, model.length, rel_tol=1e-12):
            raise ValueError(
                f"observations are on {self.n} points of period {self.length}, the model on {model.n} points "
                f"of period {model.length}; observe on the model's grid (or model.replace(n=...))"
            )


def check_pair_spacing(dt: float, lyapunov_exponent: float | None, *, limit: float = 0.01) -> None:
    """Warn when observation pairs are too far apart for a one-step estimate (``Δt·λ > limit``)."""
    if lyapunov_exponent is None or not lyapunov_exponent > 0:
        return
    fraction = dt * lyapunov_exponent
    if fraction > limit:
        warnings.warn(
            f"observation pairs are Δt = {dt:g} apart, {fraction:.3g} Lyapunov times "
            f"(λ = {lyapunov_exponent:.3g},"
            f" 1/λ = {1 / lyapunov_exponent:.3g}): the one-step model-error estimate assumes Δt ≪ 1/λ (here"
            f" below {limit:g}/λ = {limit / lyapunov_exponent:.3g}); expect biased coefficients, or observe"
            " more"
            " often",
            stacklevel=3,
        )


# -- the corrected model and its one-step map --------------------------------------------------------------


def corrected_problem(
    model: SemilinearPeriodicProblem, correction: Correction | None
) -> SemilinearPeriodicProblem:
    """``model`` with the correction's ``u^p ∂^q u`` terms added (``replace`` on the problem).

    Raises:
        ValueError: the correction keeps a function term, which a semilinear problem cannot hold.
    """
    if correction is None:
        return model
    function_terms = [
        t.name for t, w in zip(correction.library.terms, correction.weights) if w and t.key is None
    ]
    if function_terms:
        raise ValueError(
            f"the correction keeps function terms {function_terms}, which are outside the u^p*d^q u family; "
            "use one_step(..., correction=...) to integrate with them"
        )
    changes = {}
    for key, w in correction.keys.items():
        old = model.terms.get(key, 0.0)
        new = old + w
        # a correction that cancels a model term to round-off removes it
        changes[key] = 0.0 if abs(new) <= 1e-10 * max(abs(old), abs(w)) else new
    return model.update_terms(changes)


def _extra_function(correction: Correction | None, length: float):
    if correction is None:
        return None
    terms = [
        (t, float(w)) for t, w in zip(correction.library.terms, correction.weights) if w and t.key is None
    ]
    if not terms:
        return None
    library = Library([t for t, _ in terms])
    weights = torch.tensor([w for _, w in terms], dtype=torch.float64)

    def extra(u: torch.Tensor) -> torch.Tensor:
        return library.evaluate(u, length) @ weights

    return extra


def corrected_stepper(
    model: SemilinearPeriodicProblem, correction: Correction | None, dt: float, substeps: int = 1
) -> ETDRK4:
    """An ETDRK4 stepper of ``model`` + ``correction`` with step ``dt / substeps`` (function terms enter as
    an explicit extra nonlinearity)."""
    problem = model
    if correction is not None:
        keys = correction.keys
        problem = model.update_terms({key: model.terms.get(key, 0.0) + w for key, w in keys.items()})
    return ETDRK4(problem, dt / substeps, extra=_extra_function(correction, model.length))


def one_step(
    model: SemilinearPeriodicProblem,
    u: torch.Tensor | np.ndarray,
    dt: float,
    *,
    correction: Correction | None = None,
    substeps: int = 1,
) -> torch.Tensor:
    """Integrate ``model`` (+ ``correction``) over ``dt`` from states ``u`` ``(..., n)`` with ETDRK4."""
    stepper = corrected_stepper(model, correction, dt, substeps)
    return stepper.advance(torch.as_tensor(u, dtype=torch.float64), substeps)


def one_step_targets(
    model: SemilinearPeriodicProblem,
    u_prev: torch.Tensor | np.ndarray,
    u_next: torch.Tensor | np.ndarray,
    dt: float,
    *,
    correction: Correction | None = None,
    substeps: int = 1,
) -> torch.Tensor:
    """Model-error samples ``(u_next − Φ(u_prev)) / dt``, ``Φ`` the one-step map of model (+ correction).

    Raises:
        ValueError: ``u_prev`` and ``u_next`` differ in shape, are not on the model's grid, or hold NaN.
    """
    u_prev = torch.as_tensor(u_prev, dtype=torch.float64)
    u_next = torch.as_tensor(u_next, dtype=torch.float64)
    if u_prev.shape != u_next.shape or u_prev.shape[-1] != model.n:
        raise ValueError(
            f"u_prev {tuple(u_prev.shape)} and u_next {tuple(u_next.shape)} must have the same shape "
            f"(..., {model.n})"
        )
    if not (bool(torch.isfinite(u_prev).all()) and bool(torch.isfinite(u_next).all())):
        raise ValueError("observed states hold NaN or inf")
    predicted = one_step(model, u_prev, dt, correction=correction, substeps=substeps)
    if not bool(torch.isfinite(predicted).all()):
        raise ValueError(
            f"the model blew up within one step dt = {dt:g}; use a shorter observation interval or more "
            "substeps"
        )
    return (u_next - predicted) / dt


def library_features(library: Library, u: torch.Tensor | np.ndarray, length: float) -> torch.Tensor:
    """MEDIDA's regressors: the library at the observed state, ``(..., n, K)``."""
    return library.evaluate(torch.as_tensor(u, dtype=torch.float64), length)


def one_step_features(
    model: SemilinearPeriodicProblem,
    library: Library,
    u_prev: torch.Tensor | np.ndarray,
    dt: float,
    *,
    correction: Correction | None = None,
    substeps: int = 1,
    eps: float = 1e-4,
) -> torch.Tensor:
    """One-step-consistent regressors ``∂Φ_{model + correction + w θ_i}(u_prev)/∂w / dt`` at ``w = 0``.

    Each column is a central difference (``±eps`` on the term's coefficient) of the one-step map, so it
    carries the same stiff-linear weighting as the samples. For ``dt → 0`` it tends to the library.

    Returns:
        ``(..., n, K)``.
    """
    u_prev = torch.as_tensor(u_prev, dtype=torch.float64)
    base = correction if correction is not None else Correction.zero(library)
    if base.library is not library and base.library.names != library.names:
        raise ValueError("the correction was fitted with another library; pass the same library")
    columns = []
    for i in range(len(library)):
        plus = base.weights.copy()
        minus = base.weights.copy()
        plus[i] += eps
        minus[i] -= eps
        up = one_step(model, u_prev, dt, correction=base.with_weights(plus), substeps=substeps)
        down = one_step(model, u_prev, dt, correction=base.with_weights(minus), substeps=substeps)
        column = (up - down) / (2 * eps * dt)
        if not bool(torch.isfinite(column).all()):
            raise ValueError(
                f"the one-step regressor of {library.names[i]!r} is not finite: the model blows up within "
                f"one step dt = {dt:g} from these states (an ill-posed model, e.g. without hyperviscosity, "
                "and rough states); use smoother (analysed or band-limited) states or a shorter interval"
            )
        columns.append(column)
    return torch.stack(columns, dim=-1)


# -- spectral band ----------------------------------------------------------------------------------------


def band_limit(u: torch.Tensor | np.ndarray, n_out: int, *, max_mode: int | None = None) -> torch.Tensor:
    """Project grid values ``(..., n)`` onto Fourier modes ``≤ max_mode`` and sample them on ``n_out`` points.

    ``max_mode`` defaults to ``n_out // 2 − 1`` (no Nyquist mode). Exact for band-limited data; white noise
    of variance ``σ²`` becomes white noise of variance ``σ²·(2·max_mode + 1)/n`` on the ``n_out`` points
    when ``max_mode = n_out/2 − 1``.

    Raises:
        ValueError: ``max_mode`` does not fit in either grid.
    """
    u = torch.as_tensor(u, dtype=torch.float64)
    n = u.shape[-1]
    max_mode = n_out // 2 - 1 if max_mode is None else int(max_mode)
    if not 0 <= max_mode < min(n, n_out) / 2:
        raise ValueError(f"max_mode must be in [0, {min(n, n_out) // 2}), got {max_mode}")
    u_hat = torch.fft.rfft(u)[..., : max_mode + 1]
    return torch.fft.irfft(u_hat, n=n_out) * (n_out / n)


def band_coefficients(z: torch.Tensor, max_mode: int, *, dim: int = -1) -> torch.Tensor:
    """Orthonormal real Fourier coefficients of modes ``0..max_mode`` along ``dim``.

    ``(…, n, …) -> (…, 2·max_mode + 1, …)``: the mean, then ``√2·Re`` and ``√2·Im`` of modes
    ``1..max_mode``, scaled by ``1/√n``, so that a least-squares fit on them equals the fit on the band-
    projected grid values, with one row per degree of freedom.
    """
    n = z.shape[dim]
    if not 0 <= max_mode < n / 2:
        raise ValueError(f"max_mode must be in [0, {n // 2}), got {max_mode}")
    z_hat = torch.fft.rfft(z, dim=dim).narrow(dim if dim >= 0 else z.ndim + dim, 0, max_mode + 1) / math.sqrt(
        n
    )
    axis = dim if dim >= 0 else z.ndim + dim
    mean = z_hat.narrow(axis, 0, 1).real
    rest = z_hat.narrow(axis, 1, max_mode)
    return torch.cat([mean, math.sqrt(2) * rest.real, math.sqrt(2) * rest.imag], dim=axis)


def estimate_noise_std(values: np.ndarray | torch.Tensor, *, tail_fraction: float = 0.25) -> float:
    """The white-noise level of observed states ``(..., n)`` from the flat top of their spectrum.

    Smooth (analytic) fields have no energy near the grid's Nyquist wavenumber, so the mean power of the
    top ``tail_fraction`` of the modes is the noise floor: ``σ² = n · mean|û_m|²/n²`` per point.
    """
    u = torch.as_tensor(values, dtype=torch.float64)
    n = u.shape[-1]
    power = torch.fft.rfft(u).abs().pow(2).reshape(-1, n // 2 + 1)
    first = int((n // 2) * (1 - tail_fraction))
    tail = power[:, first : n // 2]  # skip the Nyquist entry (real only)
    return float(math.sqrt(float(tail.mean()) / n))
