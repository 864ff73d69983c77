"""MEDIDA on two-layer quasi-geostrophic turbulence (Mojgani, Chattopadhyay & Hassanzadeh, JAMES 2024).

The truth is :class:`~sciml.problems.qg.QGProblem` at 32 × 32 on a square of side 10π (Rd = 1; a small
grid because the development machine is shared), spun up from small noise to baroclinic turbulence
(t = 0..300, dt = 0.1, cached in HDF5 with every parameter). An imperfect model is ``truth.replace(...)``.
Observations are pairs of consecutive truth states ``dt`` apart at ``pairs`` times in the turbulent
window. Model-error samples ``(q_next − Φ_model(q_prev))/dt`` are regressed (scikit-learn ARD, the shared
:func:`~sciml.medida.regression.sparse_bayesian_regression`) on a library of 19 candidate terms in
spectral form, each acting in one layer's equation (``∂xψ_i``, ``∂xq_i``, ``ψ_i``, ``q_i``, ``∇²ψ_i``,
``∇²q_i``, ``∇⁴q_i``, ``∇⁸q_i``, ``J(ψ_i, q_i)``; ψ from the model's inversion). As for KS, the regressors
are the one-step-consistent ones (the change of the one-step map when the term is added) with
Gauss–Newton rounds. A term diagonal in Fourier space and in the layer (``∂xq_i``, ``q_i``, ``∇²q_i``,
``∇⁴q_i``, ``∇⁸q_i``) enters the corrected model in the exactly integrated linear part, with the model's own
hyperviscosity; the others enter the explicit part, as the truth's advection, β and drag do.

Cases: ``qg-beta`` (β missing), ``qg-drag`` (bottom drag halved), ``qg-hyperviscosity`` (ν∇⁸ missing),
``qg-advection`` (Jacobian halved: a nonlinear-term error), ``qg-rd`` (deformation radius 20 % too large).
A wrong ``Rd`` changes the PV inversion, which no finite sum of additive tendency terms corrects exactly;
the library's 19th term is therefore the stretching coefficient ``Rd⁻²`` itself (``F_i(ψ_j − ψ_i)`` in
``q_i``), a parameter of the model's operator whose one-step regressor is, like the others, the change of
the one-step map; the exact answer for ``qg-rd`` is ``1 − 1/1.2²``.

Observations: full pairs (:func:`qg_observations`); 25 % sparse points interpolated back to the grid by the
shared interpolators (:func:`sparse_qg_pairs`: cubic, plain MLP, RFF-MLP); noisy states assimilated by the
shared EnKF with the imperfect model (:func:`qg_enkf_pairs`: consecutive analysis means are the pairs).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sciml.medida.library import Library, Term
from sciml.medida.regression import (
    EXPLAINED,
    Correction,
    least_squares_residual,
    refit_until_explained,
    sparse_bayesian_regression,
)
from sciml.problems.qg import QGProblem
from sciml.solvers.spectral.qg import QGStepper, cached_qg

__all__ = [
    "QG_CASES",
    "QGCase",
    "qg_truth",
    "qg_observations",
    "qg_window",
    "qg_library",
    "discover_qg",
    "sparse_qg_pairs",
    "shell_disagreement",
    "choose_band",
    "qg_enkf_pairs",
    "QG_DT",
    "STRETCHING",
]

QG_DT = 0.1
SPIN_UP = 300.0
WINDOW = (300.0, 400.0)


def qg_truth(n: int = 32) -> QGProblem:
    """The truth: side 10π, Rd = 1, δ = 0.25, β = 0.135, U1 − U2 = 1, r = 0.347, ν = 2e-3 (∇⁸), on ``n²``
    (32 by default; the sparse-observation runs use 64², the same physics on a grid that resolves it)."""
    return QGProblem(n=n, L=10 * math.pi, nu=2e-3, t_span=(0.0, WINDOW[1]), name="qg-truth")


_OPS = ("dpsi/dx", "dq/dx", "psi", "q", "lap psi", "lap q", "lap2 q", "lap4 q", "J(psi,q)")
#: the last library term: a change ``c`` of the stretching coefficient ``Rd⁻²`` (``F1 = Rd⁻²/(1 + δ)``,
#: ``F2 = δ F1``) wherever it enters the model — the PV inversion and the mean PV gradients
STRETCHING = "Rd^-2 stretching"


def _term_name(op: str, layer: int) -> str:
    return (
        op.replace("psi", f"psi{layer}").replace("q", f"q{layer}")
        if op != "J(psi,q)"
        else f"J(psi{layer},q{layer})"
    )


def _term_hat(stepper: QGStepper, op: str, q_hat: torch.Tensor, psi_hat: torch.Tensor) -> torch.Tensor:
    """A candidate term for both layers at once (``(..., 2, n, n//2+1)``), dealiased."""
    ikx, iky, k2 = stepper.ikx, stepper.iky, stepper.k2
    n = stepper.problem.n
    if op == "dpsi/dx":
        out = ikx * psi_hat
    elif op == "dq/dx":
        out = ikx * q_hat
    elif op == "psi":
        out = psi_hat
    elif op == "q":
        out = q_hat
    elif op == "lap psi":
        out = -k2 * psi_hat
    elif op == "lap q":
        out = -k2 * q_hat
    elif op == "lap2 q":
        out = k2**2 * q_hat
    elif op == "lap4 q":
        out = k2**4 * q_hat
    else:
        u = torch.fft.irfft2(-iky * psi_hat, s=(n, n))
        v = torch.fft.irfft2(ikx * psi_hat, s=(n, n))
        q = torch.fft.irfft2(q_hat, s=(n, n))
        out = ikx * torch.fft.rfft2(u * q) + iky * torch.fft.rfft2(v * q)
    return out * stepper.mask


def qg_library() -> Library:
    """The 19 candidate terms (9 operators × 2 layers, then the stretching coefficient) as a Library.

    Each term is a function term (evaluated in spectral form by :func:`discover_qg`, not by
    ``Library.evaluate``, which is for 1-D states).
    """

    def unavailable(u, d):  # pragma: no cover - the QG terms are evaluated spectrally
        raise ValueError("QG library terms are evaluated by sciml.medida.qg, on (…, 2, n, n) PV states")

    terms = [Term(_term_name(op, i), fn=unavailable) for i in (1, 2) for op in _OPS]
    return Library([*terms, Term(STRETCHING, fn=unavailable)])


#: the operators that are diagonal in Fourier space and in the layer, with their symbols: a correction by
#: them is integrated exactly with the model's hyperviscosity (a ``∇⁸q`` term is as stiff as ``ν∇⁸q``)
_DIAGONAL = {
    "dq/dx": lambda kx, k2: 1j * kx,
    "q": lambda kx, k2: torch.ones_like(k2),
    "lap q": lambda kx, k2: -k2,
    "lap2 q": lambda kx, k2: k2**2,
    "lap4 q": lambda kx, k2: k2**4,
}


def _symbol(model: QGProblem, op: str) -> torch.Tensor:
    """The Fourier symbol ``(n, n//2+1)`` of a diagonal operator, zero outside the 2/3-dealiased modes."""
    kx, ky, k2 = model.wavenumbers()
    cut = (2.0 / 3.0) * (model.n / 2) * (2 * math.pi / model.L)
    mask = (kx.abs() < cut) & (ky.abs() < cut)
    return torch.as_tensor(_DIAGONAL[op](kx, k2)).to(torch.complex128) * mask


def _extra(weights: np.ndarray):
    """``extra(q̂, ψ̂)`` of the additive non-diagonal terms of ``weights`` (layer 1 terms first, then 2)."""
    w = np.asarray(weights, dtype=np.float64)[: 2 * len(_OPS)].reshape(2, len(_OPS))
    active = [
        (j, float(w[0, j]), float(w[1, j]))
        for j in range(len(_OPS))
        if (w[0, j] or w[1, j]) and _OPS[j] not in _DIAGONAL
    ]
    if not active:
        return None

    def extra(stepper: QGStepper, q_hat: torch.Tensor, psi_hat: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(q_hat)
        for j, w1, w2 in active:
            term = _term_hat(stepper, _OPS[j], q_hat, psi_hat)
            scale = torch.tensor([w1, w2], dtype=torch.float64).reshape(2, 1, 1)
            out = out + scale * term
        return out

    return extra


def _linear(model: QGProblem, weights: np.ndarray) -> torch.Tensor | None:
    """The per-layer symbol ``(2, n, n//2+1)`` of the diagonal terms of ``weights`` (``None``: none)."""
    w = np.asarray(weights, dtype=np.float64)[: 2 * len(_OPS)].reshape(2, len(_OPS))
    out = None
    for j, op in enumerate(_OPS):
        if op in _DIAGONAL and (w[0, j] or w[1, j]):
            scale = torch.tensor([w[0, j], w[1, j]], dtype=torch.float64).reshape(2, 1, 1)
            term = scale * _symbol(model, op)
            out = term if out is None else out + term
    return out


def corrected_stepper(model: QGProblem, weights: np.ndarray | None, dt: float) -> QGStepper:
    """A stepper of ``model`` plus the correction ``Σ w_j θ_j``.

    The terms diagonal in Fourier space and in the layer (``∂xq_i``, ``q_i``, ``∇²q_i``, ``∇⁴q_i``,
    ``∇⁸q_i``; on the 2/3-dealiased modes) join the exactly integrated linear part, as the model's own
    hyperviscosity does; the others are added to the explicit part (dealiased); the stretching term is
    ``Rd⁻² → Rd⁻² + w`` in the model itself. Explicit, a ``∇⁸q`` term cannot reproduce the truth's
    ``ν∇⁸q``: at 64² its largest resolved ``ν κ⁸ dt`` is ~350, and the model with the exact coefficient
    added explicitly misses the truth's step by more than the model without it (measured).

    Raises:
        ValueError: a stretching weight that makes ``Rd⁻²`` non-positive.
    """
    if weights is not None and len(weights) > 2 * len(_OPS) and weights[-1] != 0:
        inv_rd2 = model.rd**-2 + float(weights[-1])
        if not inv_rd2 > 0:
            raise ValueError(f"the stretching correction {weights[-1]:g} makes Rd^-2 = {inv_rd2:g} <= 0")
        model = model.replace(rd=inv_rd2**-0.5)
    stepper = QGStepper(model, dt, linear=None if weights is None else _linear(model, weights))
    extra = None if weights is None else _extra(weights)
    if extra is not None:
        stepper.extra = lambda q_hat, psi_hat: extra(stepper, q_hat, psi_hat)
    return stepper


def _difference_steps(model: QGProblem, dt: float, eps: float) -> np.ndarray:
    """The central-difference step per library term: ``eps``, or for a diagonal term
    ``eps / (dt · max|σ|)`` when that is smaller, so that no mode's one-step exponent moves by more than
    ``eps`` (``∇⁸`` at 64²: ``dt · max κ⁸ ≈ 1.8e5``; an ``eps`` step there would be far from linear)."""
    steps = np.full(2 * len(_OPS) + 1, float(eps))
    for j, op in enumerate(_OPS):
        if op in _DIAGONAL:
            stiffness = dt * float(_symbol(model, op).abs().max())
            steps[[j, len(_OPS) + j]] = eps / max(1.0, stiffness)
    return steps


@dataclass(frozen=True)
class QGCase:
    """An imperfect QG model: ``truth.replace(**changes)``."""

    name: str
    description: str
    changes: dict = field(default_factory=dict)
    exact: bool = True

    def model(self, truth: QGProblem | None = None) -> QGProblem:
        truth = qg_truth() if truth is None else truth
        return truth.replace(name=self.name, **self.changes)

    def true_correction(self, truth: QGProblem | None = None) -> dict[str, float]:
        """``{term: coefficient}`` that turns the model into the truth."""
        t = qg_truth() if truth is None else truth
        m = self.model(t)
        out: dict[str, float] = {}
        if m.beta != t.beta:
            out.update({"dpsi1/dx": -(t.beta - m.beta), "dpsi2/dx": -(t.beta - m.beta)})
        if m.rek != t.rek:
            out["lap psi2"] = -(t.rek - m.rek)
        if m.nu != t.nu:
            out.update({"lap4 q1": -(t.nu - m.nu), "lap4 q2": -(t.nu - m.nu)})
        if m.rd != t.rd:
            out[STRETCHING] = t.rd**-2 - m.rd**-2
        if m.advection != t.advection:
            d = -(t.advection - m.advection)
            out.update({"J(psi1,q1)": d, "J(psi2,q2)": d})
        return out


QG_CASES: dict[str, QGCase] = {
    c.name: c
    for c in (
        QGCase("qg-beta", "beta-term missing", {"beta": 0.0}),
        QGCase("qg-drag", "bottom drag halved", {"rek": 0.347 / 2}),
        QGCase("qg-hyperviscosity", "hyperviscosity missing", {"nu": 0.0}),
        QGCase("qg-advection", "Jacobian (advection) halved", {"advection": 0.5}),
        QGCase("qg-rd", "deformation radius 20 % too large", {"rd": 1.2}),
    )
}


def qg_observations(pairs: int = 8, *, n: int = 32, progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(q_prev, q_next)``, each ``(pairs, 2, n, n)``: truth states ``QG_DT`` apart in [300, 400).

    The truth run (spin-up from noise to turbulence, then the window) is computed once and cached in HDF5;
    the first run shows a bar that says so.
    """
    if int(pairs) < 1:
        raise ValueError(f"pairs must be >= 1, got {pairs}")
    truth = qg_truth(n)
    starts = SPIN_UP + (WINDOW[1] - WINDOW[0] - 1.0) * np.arange(pairs) / pairs
    starts = np.round(starts / QG_DT) * QG_DT
    times = np.unique(np.round(np.concatenate([starts, starts + QG_DT]) / QG_DT) * QG_DT)
    steps = int(round(times[-1] / QG_DT))
    what = (
        f"spin-up of the {n}x{n} QG truth to turbulence, t = 0..{times[-1]:g} ({steps} steps; first run, "
        "cached)"
    )
    data = cached_qg(truth, QG_DT, times, what=what, progress=progress)
    index = {round(float(t) / QG_DT): i for i, t in enumerate(data["t"])}
    prev = np.stack([data["q"][index[round(t / QG_DT)]] for t in starts])
    nxt = np.stack([data["q"][index[round(t / QG_DT) + 1]] for t in starts])
    return prev, nxt


def _one_step(model: QGProblem, weights, q: torch.Tensor, dt: float) -> torch.Tensor:
    return corrected_stepper(model, weights, dt).advance(q, 1)


def _low_pass(x: torch.Tensor, band: int) -> torch.Tensor:
    """``x`` (``(..., n, n)``) with only its Fourier modes ``max(|kx|, |ky|) <= band`` kept."""
    n = x.shape[-1]
    k = torch.fft.fftfreq(n, 1.0 / n).abs()
    kr = torch.fft.rfftfreq(n, 1.0 / n)
    mask = (k[:, None] <= band) & (kr[None, :] <= band)
    return torch.fft.irfft2(torch.fft.rfft2(x) * mask, s=(n, n))


def discover_qg(
    model: QGProblem,
    q_prev: np.ndarray,
    q_next: np.ndarray,
    dt: float = QG_DT,
    *,
    threshold_lambda: float | None = None,
    max_iterations: int = 6,
    tol: float = 1e-8,
    eps: float = 1e-4,
    band: int | None = None,
    progress: bool = False,
) -> tuple[Correction, list[dict[str, Any]]]:
    """Discover the correction of the QG ``model`` from observed pairs (full, interpolated or analyses).

    Args:
        model: the imperfect QG model.
        q_prev, q_next: ``(P, 2, n, n)`` observed PV ``dt`` apart.
        dt: the observation interval (one model step).

    Other Args:
        threshold_lambda: ARD pruning threshold (unit-RMS scaling); default 100. With the default, when
            the fit leaves a residual above ``1e-6`` of the observed tendency while a fit with every term
            leaves 100 times less (noise-free data from which ARD pruned a real but small term, e.g. a
            0.2 ``dq2/dx``), the rounds continue with ``threshold_lambda`` 1e4, then 1e6, and the first that
            explains the data (residual <= 1e-6) is kept; its rounds carry ``"threshold_lambda"`` in the
            history. Noisy or interpolated observations never meet that test, so their fit is unchanged.
            A given ``threshold_lambda`` is kept (with a warning in that situation).
        max_iterations, tol: Gauss–Newton rounds; stop when the terms repeat and coefficients change < tol.
        eps: central-difference step on each coefficient for the one-step regressors (smaller for a stiff
            diagonal term: no mode's one-step exponent moves by more than ``eps``).
        band: regress on the Fourier modes with ``max(|kx|, |ky|) <= band`` only (wavenumber indices;
            ``None``: all): interpolated sparse observations resolve the large scales only.
        progress: a tqdm bar over the rounds.

    Returns:
        ``(correction, history)``; each round's ``change`` is ``inf`` while the kept terms still change;
        the last round has ``converged`` (whether the rounds settled) and ``residual`` (the RMS residual
        relative to the observed tendency; round-off when noise-free data are explained).

    Raises:
        ValueError: states of the wrong shape or with NaN.

    Warns:
        UserWarning: the rounds ran out before the terms and coefficients settled; or a given
            ``threshold_lambda`` pruned a real term of noise-free data (see ``threshold_lambda``).
    """
    q_prev = torch.as_tensor(q_prev, dtype=torch.float64)
    q_next = torch.as_tensor(q_next, dtype=torch.float64)
    n = model.n
    if q_prev.shape != q_next.shape or tuple(q_prev.shape[-3:]) != (2, n, n):
        raise ValueError(f"q_prev and q_next must both have shape (P, 2, {n}, {n})")
    if not (bool(torch.isfinite(q_prev).all()) and bool(torch.isfinite(q_next).all())):
        raise ValueError("observed states hold NaN or inf")
    if band is not None and not (isinstance(band, int) and 1 <= band <= n // 2):
        raise ValueError(f"`band` must be an integer wavenumber index in [1, {n // 2}] or None, got {band!r}")
    library = qg_library()
    K = len(library)
    history: list[dict[str, Any]] = []
    steps = _difference_steps(model, dt, eps)
    tendency = (q_next - q_prev) / dt
    row_scale = 1.0 / tendency.pow(2).mean(dim=(0, 2, 3)).sqrt()
    user_threshold = threshold_lambda is not None
    threshold_lambda = 100.0 if threshold_lambda is None else float(threshold_lambda)

    def rounds(weights: np.ndarray, lam: float, first: int, bar: bool):
        """Gauss–Newton rounds from ``weights`` with ARD threshold ``lam``: the last fit, its change, its
        residual (relative to the tendency: the rows are scaled by it) and that of an unpruned fit."""
        old_kept = None if first == 0 else weights != 0
        fit, change = None, math.inf
        for it in tqdm(range(first, first + int(max_iterations)), disable=not bar, desc="MEDIDA-QG rounds"):
            t = time.perf_counter()
            base = _one_step(model, weights, q_prev, dt)
            r = (q_next - base) / dt
            columns = []
            for j in range(K):
                plus, minus = weights.copy(), weights.copy()
                plus[j] += steps[j]
                minus[j] -= steps[j]
                delta = _one_step(model, plus, q_prev, dt) - _one_step(model, minus, q_prev, dt)
                col = delta / (2 * steps[j] * dt)
                columns.append(col.reshape(-1))
            F = torch.stack(columns, dim=-1).reshape(*q_prev.shape, K)
            y = r + F @ torch.as_tensor(weights)
            # one joint fit (exact Gauss–Newton), each layer's rows scaled by its observed tendency RMS so
            # that the weaker lower layer is not drowned by the upper one
            rows = F * row_scale[None, :, None, None, None]
            target = y * row_scale[None, :, None, None]
            if band is not None:  # least squares on the resolved modes (Parseval: the same as filtered rows)
                rows = _low_pass(rows.movedim(-1, 0), band).movedim(0, -1)
                target = _low_pass(target, band)
            X, Y = rows.reshape(-1, K).numpy(), target.reshape(-1).numpy()
            fit = sparse_bayesian_regression(X, Y, library, threshold_lambda=lam)
            kept = fit.weights != 0
            change = (
                math.inf
                if old_kept is None or not np.array_equal(kept, old_kept)
                else float(
                    np.max(np.abs(fit.weights - weights)[kept] / np.abs(fit.weights[kept]), initial=0.0)
                )
            )
            weights, old_kept = fit.weights.copy(), kept
            record = {
                "iteration": it,
                "terms": fit.terms,
                "change": change,
                "seconds": time.perf_counter() - t,
            }
            if lam != threshold_lambda:
                record["threshold_lambda"] = lam
            history.append(record)
            if change < tol:
                break
        rel = float(np.sqrt(np.mean((Y - X @ fit.weights) ** 2)))
        rel_full = least_squares_residual(X, Y) if rel > EXPLAINED else math.nan
        return fit, change, rel, rel_full

    fit, change, residual, residual_full = rounds(np.zeros(K), threshold_lambda, 0, progress)
    if residual > EXPLAINED and residual_full < 1e-2 * residual:
        # all terms explain the data 100 times better than the pruned fit: ARD may have pruned a real but
        # small term of noise-free observations; the refit is kept only if it explains them to round-off
        if not user_threshold:
            pruned = fit.weights.copy()
            refit = refit_until_explained(lambda lam, i: rounds(pruned.copy(), lam, i, False), history)
            if refit is not None:
                fit, change, residual, _ = refit[0]
        else:
            warnings.warn(
                f"MEDIDA-QG: the fit leaves a residual of {residual:.3g} of the observed tendency while a "
                f"fit with all {K} terms leaves {residual_full:.2g}: threshold_lambda={threshold_lambda:g} "
                "likely pruned a real but small term; pass a larger threshold_lambda (e.g. 1e4)",
                stacklevel=2,
            )
    history[-1]["residual"] = residual
    if change < tol:
        history[-1]["converged"] = True
    else:
        history[-1]["converged"] = False
        warnings.warn(
            f"MEDIDA-QG stopped after max_iterations={int(max_iterations)} rounds without converging (last "
            f"relative coefficient change {change:.3g} > tol={tol:g}): the terms may still move; raise "
            "max_iterations or read the history",
            stacklevel=2,
        )
    return fit, history


def shell_disagreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per Fourier shell ``K = max(|kx|, |ky|)``, how much two reconstructions of the same fields disagree.

    ``d_K = max over fields of ‖â_K − b̂_K‖ / ‖(â_K + b̂_K)/2‖`` (the shell's modes of each field). Where
    both reconstructions resolve the shell, ``d_K`` is about √2 times their relative error there; where
    neither carries signal it is O(1).

    Args:
        a, b: ``(C, n, n)`` fields on the same periodic grid.

    Returns:
        ``(n // 2 + 1,)`` the disagreement of shells ``K = 0 … n/2``.

    Raises:
        ValueError: shapes that differ or are not ``(C, n, n)``.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise ValueError(f"a and b must both have shape (C, n, n), got {a.shape} and {b.shape}")
    n = a.shape[-1]
    k = np.abs(np.fft.fftfreq(n) * n).astype(int)
    shell = np.maximum(k[:, None], k[None, :])
    fa, fb = np.fft.fft2(a), np.fft.fft2(b)
    out = np.zeros(n // 2 + 1)
    for K in range(n // 2 + 1):
        m = shell == K
        diff = np.sqrt((np.abs(fa[:, m] - fb[:, m]) ** 2).sum(axis=1))
        mean = np.sqrt((np.abs(fa[:, m] + fb[:, m]) ** 2).sum(axis=1)) / 2
        out[K] = np.max(diff / np.maximum(mean, 1e-300))
    return out


def choose_band(
    points: np.ndarray,
    values: np.ndarray,
    grid: np.ndarray,
    L: float,
    kind: str,
    *,
    tol: float = 0.5,
    seed: int = 0,
    **interpolator: Any,
) -> tuple[int, np.ndarray]:
    """The regression band from the sparse observations alone, by split-half agreement.

    The observed points are split at random into two halves; each half is interpolated onto the grid with
    the same interpolator (``kind``), and the band is the largest ``K`` whose shell the two reconstructions
    agree on within ``tol`` (:func:`shell_disagreement`); a low shell with little energy that they disagree
    on (measured on QG 64²: shell 1) does not cut the band. Each half has half the points of the fit that
    is regressed on, so the estimate is on the safe side. No truth is used.

    Args:
        points: ``(p, 2)`` observed points; values: ``(C, p)`` the fields there.
        grid: ``(n*n, 2)`` the grid points (row-major ``(iy, ix)``); L: the period.
        kind: the interpolator (``"cubic"``, ``"mlp"``, ``"rff"``).

    Other Args:
        tol: the largest disagreement of a shell counted as resolved. ``d_K ≈ √2 e`` for half-fits of
            relative error ``e`` in the shell, and ``d_K`` is O(1) or more where they carry no signal; 0.5
            (half-fits within ~35 %) separates the two on a band-limited field (tested).
        seed: the split and the interpolators' seeds.
        interpolator: passed on to :func:`~sciml.medida.interpolation.interpolate`.

    Returns:
        ``(K, d)``: the band and the disagreement per shell; ``K = 0`` when the halves agree on no shell
        (the observations resolve no band: measured on QG 32² with 25 % of the points, ``d_K > 1.3`` on
        every shell), which a regression must not be run on.

    Raises:
        ValueError: ``tol`` not positive, or what ``interpolate`` raises.
    """
    from sciml.medida.interpolation import interpolate

    if not tol > 0:
        raise ValueError(f"`tol` must be positive, got {tol!r}")
    points, values = np.asarray(points, dtype=np.float64), np.atleast_2d(np.asarray(values, dtype=np.float64))
    n = int(round(math.sqrt(len(grid))))
    half = np.random.default_rng(seed + 7919).permutation(points.shape[0])
    halves = (half[: half.size // 2], half[half.size // 2 :])
    fits = [
        interpolate(kind, points[h], values[:, h], grid, L, seed=seed + i, **interpolator).values
        for i, h in enumerate(halves)
    ]
    d = shell_disagreement(fits[0].reshape(-1, n, n), fits[1].reshape(-1, n, n))
    good = np.nonzero(d[1:] <= tol)[0]  # the largest resolved shell: weak low shells do not cut the band
    return (int(good[-1]) + 1 if good.size else 0), d


def sparse_qg_pairs(
    q_prev: np.ndarray,
    q_next: np.ndarray,
    L: float,
    kind: str,
    *,
    fraction: float = 0.25,
    dt: float = QG_DT,
    seed: int = 0,
    progress: bool = False,
    auto_band: bool = False,
    band_tol: float = 0.5,
    **interpolator: Any,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Observe ``fraction`` of the grid points (a fixed random set, both layers) and interpolate back.

    For each pair one fit of four fields at the observed points — ``q1``, ``q2`` and the scaled increments
    ``(q_next − q_prev)/dt`` of both layers — with :func:`~sciml.medida.interpolation.interpolate`
    (``"cubic"``, ``"mlp"`` or ``"rff"``); the interpolated pair is ``(q̃, q̃ + dt·Δ̃)``.

    Args:
        q_prev, q_next: ``(P, 2, n, n)`` truth pairs ``dt`` apart.
        L: side of the periodic square.
        kind: the interpolator.

    Other Args:
        fraction: observed fraction of the grid points.
        seed: the observed points, the hold-out split and the networks' initialisation.
        progress: a tqdm bar over the pairs.
        auto_band: also choose the regression band from the observations of the first pair
            (:func:`choose_band`, two extra fits), returned as ``"band"`` (0: no shell resolved) with the
            per-shell disagreement ``"band_disagreement"``.
        band_tol: ``tol`` of :func:`choose_band`.
        interpolator: passed on to ``interpolate`` (e.g. ``scale``, ``adam_steps``).

    Returns:
        ``(prev, next, errors)``: the interpolated pairs, and the relative L2 errors of the state and of
        the increment against the truth, the hold-out RMSE (relative) and the fit time.

    Raises:
        ValueError: ``fraction`` outside (0, 1], or shapes that do not match.
    """
    from sciml.medida.interpolation import interpolate

    q_prev, q_next = np.asarray(q_prev, dtype=np.float64), np.asarray(q_next, dtype=np.float64)
    if q_prev.shape != q_next.shape or q_prev.ndim != 4 or q_prev.shape[1] != 2:
        raise ValueError(f"q_prev and q_next must both have shape (P, 2, n, n), got {q_prev.shape}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = q_prev.shape[-1]
    g = L / n * np.arange(n)
    grid = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)  # (y, x) of q[..., iy, ix]
    rng = np.random.default_rng(seed)
    observed = np.sort(rng.choice(n * n, int(round(fraction * n * n)), replace=False))
    start = time.perf_counter()
    prev_out, next_out, holdout, errors = [], [], [], []
    for p in tqdm(range(len(q_prev)), disable=not progress, desc=f"interpolating sparse pairs ({kind})"):
        increment = (q_next[p] - q_prev[p]) / dt
        fields = np.concatenate([q_prev[p], increment]).reshape(4, -1)
        fit = interpolate(kind, grid[observed], fields[:, observed], grid, L, seed=seed + p, **interpolator)
        values = fit.values.reshape(4, n, n)
        prev_out.append(values[:2])
        next_out.append(values[:2] + dt * values[2:])
        holdout.append(fit.holdout_rmse / fields.std(axis=1))
        errors.append(
            [
                np.linalg.norm(values[:2] - q_prev[p]) / np.linalg.norm(q_prev[p]),
                np.linalg.norm(values[2:] - increment) / np.linalg.norm(increment),
            ]
        )
    state, incr = np.mean(errors, axis=0)
    info = {
        "state_error": float(state),
        "increment_error": float(incr),
        "holdout_error": float(np.mean(holdout)),
        "fit_seconds": time.perf_counter() - start,
        "observed_points": int(observed.size),
    }
    if auto_band:
        increment = (q_next[0] - q_prev[0]) / dt
        fields = np.concatenate([q_prev[0], increment]).reshape(4, -1)
        band, disagreement = choose_band(
            grid[observed], fields[:, observed], grid, L, kind, tol=band_tol, seed=seed, **interpolator
        )
        info.update(band=band, band_disagreement=[float(v) for v in disagreement])
    return np.stack(prev_out), np.stack(next_out), info


def qg_window(steps: int, *, n: int = 32, progress: bool = True) -> np.ndarray:
    """``(steps + 1, 2, n, n)``: consecutive truth states ``QG_DT`` apart from t = 300 (cached in HDF5)."""
    if int(steps) < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    times = SPIN_UP + QG_DT * np.arange(int(steps) + 1)
    what = f"spin-up of the {n}x{n} QG truth and a window of {steps} steps (first run, cached)"
    return cached_qg(qg_truth(n), QG_DT, times, what=what, progress=progress)["q"]


def qg_enkf_pairs(
    model: QGProblem,
    *,
    noise: float = 0.01,
    members: int = 100,
    steps: int = 40,
    burn_in: int = 10,
    radius: float = 2.0,
    seed: int = 0,
    window: np.ndarray | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Noisy observations of every grid point, assimilated with the imperfect ``model`` by the shared EnKF.

    The truth window (``steps`` + 1 consecutive states ``QG_DT`` apart) is observed with independent
    Gaussian noise of ``noise`` × the layer's PV standard deviation; the DEnKF of
    :class:`~sciml.medida.enkf.EnsembleKalmanFilter` (adaptive inflation, Gaspari–Cohn localization of
    half-width ``radius`` on horizontal periodic distance, the same across layers) assimilates them with
    ``model`` as its forecast. Consecutive analysis means after ``burn_in`` are the pairs for
    :func:`discover_qg`: the residual of a pair is the analysis increment (analysis − forecast)/dt.

    Other Args:
        window: ``(T, 2, n, n)`` consecutive truth states ``QG_DT`` apart to observe instead of the cached
            truth window (then ``steps`` is ``T − 1``).

    Returns:
        ``(prev, next, info)``: the analysis pairs and the analysis RMSE against the truth (relative to the
        PV std), the observation noise (same units) and the filter time.

    Raises:
        ValueError: ``noise`` not in (0, 1), ``members`` outside [2, 1000], ``burn_in >= steps``.
    """
    from sciml.medida.enkf import EnsembleKalmanFilter, gaspari_cohn

    if not 0 < noise < 1:
        raise ValueError(f"noise must be a fraction in (0, 1) (0.01 = 1 %), got {noise}")
    if not 2 <= int(members) <= 1000:
        raise ValueError(f"members must be in [2, 1000], got {members}")
    n, L = model.n, model.L
    if window is not None:
        window = np.asarray(window, dtype=np.float64)
        if window.ndim != 4 or window.shape[1:] != (2, n, n):
            raise ValueError(f"window must have shape (T, 2, {n}, {n}), got {window.shape}")
        steps = len(window) - 1
    if not 0 <= int(burn_in) < int(steps) - 1:
        raise ValueError(f"burn_in must be in [0, steps - 1), got {burn_in} with steps = {steps}")
    truth = torch.as_tensor(qg_window(int(steps), n=n, progress=progress) if window is None else window)
    std = truth.std(dim=(0, 2, 3)).reshape(1, 2, 1, 1)
    g = torch.Generator().manual_seed(seed)
    obs = truth + noise * std * torch.randn(truth.shape, generator=g, dtype=torch.float64)
    j = torch.arange(n, dtype=torch.float64)
    d1 = (j[:, None] - j[None, :]).abs()
    d1 = torch.minimum(d1, n - d1) * (L / n)
    dist = (d1[:, None, :, None] ** 2 + d1[None, :, None, :] ** 2).sqrt().reshape(n * n, n * n)
    taper = gaspari_cohn(dist, radius).repeat(2, 2)
    stepper = QGStepper(model, QG_DT)

    def forecast(E: torch.Tensor) -> torch.Tensor:
        return stepper.advance(E.reshape(-1, 2, n, n), 1).reshape(E.shape[0], -1)

    obs_std = (noise * std).expand(1, 2, n, n).reshape(-1)
    kf = EnsembleKalmanFilter(forecast, obs_std, inflation="adaptive", localization=taper)
    start = time.perf_counter()
    E0 = obs[0].reshape(1, -1) + obs_std * torch.randn(
        int(members), 2 * n * n, generator=g, dtype=torch.float64
    )
    result = kf.run(E0, obs.reshape(len(obs), -1), progress=progress)
    means = result.means.reshape(-1, 2, n, n)
    err = ((means - truth)[burn_in:] / std).pow(2).mean().sqrt()
    info = {
        "analysis_error": float(err),
        "observation_error": float(noise),
        "filter_seconds": time.perf_counter() - start,
        "members": int(members),
    }
    return means[burn_in:-1].numpy(), means[burn_in + 1 :].numpy(), info
