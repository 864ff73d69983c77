"""The Kuramoto–Sivashinsky test cases of MEDIDA, their truth trajectories and observations.

Truth: ``u_t + u u_x + u_xx + u_xxxx = 0`` on ``[−50, 50)`` with ``N = 1024``, ETDRK4 with ``dt = 1e-3``,
100 time units of spin-up, observations in ``[100, 200)`` (Mojgani et al. 2022). Cases (the models are
written in the ``u_t + c1 u u_x + c2 u_xx + c3 u_xxxx + extra = 0`` form; their numbering follows the
authors' ``case_select.py``):

====  ===========================================  ============================================
case  imperfect model                              what is wrong
====  ===========================================  ============================================
1–3   c = (0,1,1), (1,0,1), (1,1,0)                one term missing
4–6   c = (1,0,0), (0,1,0), (0,0,1)                two terms missing
7–9   c = (½,1,1), (1,½,1), (1,1,½)                one coefficient halved
10    c = (2,2,2)                                  all doubled
11    c = (0,½,2)                                  mixed
12    c = (½,0,1)                                  mixed
13–15 c = (1,1,1) + λ u_xxx, λ = 0.1, 0.5, 1       a spurious dispersive term
16–18 flux (u² + λu³)/2, λ = 1, 0.1, 0.01          an extra 1.5λ u² u_x
====  ===========================================  ============================================

Truth trajectories come from :func:`sciml.solvers.spectral.cached_solve` (HDF5, keyed by every parameter): a
"spine" of states every time unit from 0 to 200, and each observation window integrated from the spine
state before it, so windows of any length share one long solve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sciml.medida.samples import Observations
from sciml.problems.semilinear import SemilinearPeriodicProblem, kuramoto_sivashinsky, term_name
from sciml.solvers.cache import cached_arrays
from sciml.solvers.spectral import cached_solve, largest_lyapunov_exponent

__all__ = ["MedidaCase", "CASES", "ks_truth", "ks_observations", "ks_lyapunov_exponent", "TRUTH_DT"]

TRUTH_DT = 1e-3
SPIN_UP = 100.0
OBSERVED = (100.0, 200.0)


@dataclass(frozen=True)
class MedidaCase:
    """An imperfect KS model: ``u_t + c1 u u_x + c2 u_xx + c3 u_xxxx + Σ extra = 0``."""

    number: int
    description: str
    c: tuple[float, float, float]
    extra: dict = field(default_factory=dict)

    def model(self, truth: SemilinearPeriodicProblem | None = None) -> SemilinearPeriodicProblem:
        """The imperfect model on the truth's grid (``replace`` on the truth problem)."""
        truth = ks_truth() if truth is None else truth
        terms = {(1, 1): -self.c[0], (0, 2): -self.c[1], (0, 4): -self.c[2]}
        for key, value in self.extra.items():
            terms[key] = terms.get(key, 0.0) - value
        return truth.replace(terms=terms, name=f"ks-case{self.number}")

    def true_correction(self, truth: SemilinearPeriodicProblem | None = None) -> dict[str, float]:
        """``{term: coefficient}`` that turns the model into the truth (``u_t = model + Σ c θ``)."""
        truth = ks_truth() if truth is None else truth
        model = self.model(truth)
        keys = set(truth.terms) | set(model.terms)
        diff = {k: truth.terms.get(k, 0.0) - model.terms.get(k, 0.0) for k in keys}
        return {term_name(*k): v for k, v in sorted(diff.items()) if v != 0.0}


def _cases() -> dict[int, MedidaCase]:
    cs = [
        ((0, 1, 1), "u*u_x missing"),
        ((1, 0, 1), "u_xx missing"),
        ((1, 1, 0), "u_xxxx missing"),
        ((1, 0, 0), "u_xx and u_xxxx missing"),
        ((0, 1, 0), "u*u_x and u_xxxx missing"),
        ((0, 0, 1), "u*u_x and u_xx missing"),
        ((0.5, 1, 1), "u*u_x halved"),
        ((1, 0.5, 1), "u_xx halved"),
        ((1, 1, 0.5), "u_xxxx halved"),
        ((2, 2, 2), "all coefficients doubled"),
        ((0, 0.5, 2), "c = (0, 0.5, 2)"),
        ((0.5, 0, 1), "c = (0.5, 0, 1)"),
    ]
    cases = {i + 1: MedidaCase(i + 1, d, tuple(float(v) for v in c)) for i, (c, d) in enumerate(cs)}
    for i, lam in enumerate((0.1, 0.5, 1.0)):
        cases[13 + i] = MedidaCase(13 + i, f"spurious {lam:g}*u_xxx", (1.0, 1.0, 1.0), {(0, 3): lam})
    for i, lam in enumerate((1.0, 0.1, 0.01)):
        cases[16 + i] = MedidaCase(
            16 + i,
            f"flux (u^2 + {lam:g}u^3)/2: extra {1.5 * lam:g}*u^2*u_x",
            (1.0, 1.0, 1.0),
            {(2, 1): 1.5 * lam},
        )
    return cases


#: case number -> :class:`MedidaCase`
CASES: dict[int, MedidaCase] = _cases()


def ks_truth() -> SemilinearPeriodicProblem:
    """The truth: ``u_t + u u_x + u_xx + u_xxxx = 0``, ``[−50, 50)``, N = 1024, t in [0, 200]."""
    return kuramoto_sivashinsky(t_span=(0.0, OBSERVED[1]))


def _spine(truth: SemilinearPeriodicProblem, progress: bool) -> dict[str, np.ndarray]:
    times = np.arange(0.0, truth.t_span[1] + 0.5, 1.0)
    steps = int(round(truth.t_span[1] / TRUTH_DT))
    what = f"spin-up of the KS truth, t = 0..{truth.t_span[1]:g} ({steps} ETDRK4 steps; first run, cached)"
    return cached_solve(truth, TRUTH_DT, times, progress=what if progress else False)


def truth_window(
    t0: float, steps: int, *, truth: SemilinearPeriodicProblem | None = None, progress: bool = False
) -> np.ndarray:
    """Truth states at ``t0 + j·dt``, j = 0..steps-1 (``dt = 1e-3``), ``(steps, n)``, cached in HDF5.

    Raises:
        ValueError: the window ``[t0, t0 + steps·dt]`` is not inside the truth run.
    """
    truth = ks_truth() if truth is None else truth
    spine = _spine(truth, progress)
    if not (truth.t_span[0] <= t0 and t0 + steps * TRUTH_DT <= spine["t"][-1] + 1e-9):
        raise ValueError(f"window [{t0}, {t0 + steps * TRUTH_DT}] is outside the truth run {truth.t_span}")
    i = int(np.searchsorted(spine["t"], t0 + 1e-9)) - 1
    start = float(spine["t"][i])
    problem = truth.replace(u0=spine["u"][i], t_span=(start, start + 1.0))
    saveat = t0 + TRUTH_DT * np.arange(steps)
    saveat = start + TRUTH_DT * np.round((saveat - start) / TRUTH_DT)
    return cached_solve(problem, TRUTH_DT, saveat, progress=progress)["u"]


def ks_observations(
    windows: int,
    steps: int,
    *,
    noise: float = 0.0,
    seed: int = 0,
    window_starts: np.ndarray | None = None,
    progress: bool = False,
) -> tuple[Observations, np.ndarray]:
    """Observations of the KS truth: ``windows`` windows of ``steps`` consecutive states ``dt = 1e-3`` apart.

    Args:
        windows: how many windows, spread evenly over ``[100, 200)`` (unless ``window_starts`` is given).
        steps: states per window (2 = one observation pair).

    Other Args:
        noise: observation noise relative to the standard deviation of the truth (0.01 = "1 %"), as in
            the authors' code (``noise · std(u)``).
        seed: for the noise.
        window_starts: explicit start times in ``[100, 200)``.
        progress: tqdm bars while the truth is computed the first time.

    Returns:
        ``(observations, truth)`` — the noisy :class:`Observations` (``noise_std`` set) and the clean
        truth ``(windows, steps, n)``.
    """
    if int(windows) < 1 or int(steps) < 2:
        raise ValueError(f"need windows >= 1 and steps >= 2, got {windows}, {steps}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be >= 0 (a fraction of std(u), e.g. 0.01), got {noise}")
    if window_starts is None:
        span = OBSERVED[1] - OBSERVED[0] - steps * TRUTH_DT - 1.0
        window_starts = OBSERVED[0] + 0.5 + span * np.arange(windows) / max(windows, 1)
        window_starts = np.round(window_starts / TRUTH_DT) * TRUTH_DT
    window_starts = np.asarray(window_starts, dtype=np.float64)
    truth = ks_truth()
    clean = np.stack(
        [truth_window(float(t0), int(steps), truth=truth, progress=progress) for t0 in window_starts]
    )
    sigma = float(noise) * float(clean.std())
    rng = np.random.default_rng(seed)
    values = clean + sigma * rng.standard_normal(clean.shape) if sigma > 0 else clean
    obs = Observations(values, TRUTH_DT, truth.length, t0=window_starts, noise_std=sigma)
    return obs, clean


def ks_lyapunov_exponent(length: float = 100.0) -> float:
    """The largest Lyapunov exponent of the KS truth (Benettin, N = 256, dt = 0.05; cached in HDF5)."""
    params = {
        "length": float(length),
        "n": 256,
        "dt": 0.05,
        "t_transient": 200.0,
        "t_average": 2000.0,
        "n_trajectories": 4,
        "seed": 0,
        "version": 1,
    }

    def compute() -> dict[str, np.ndarray]:
        problem = kuramoto_sivashinsky(length=length, n=256)
        est = largest_lyapunov_exponent(
            problem, 0.05, t_transient=200.0, t_average=2000.0, n_trajectories=4, seed=0
        )
        return {"exponent": np.array(est.exponent), "per_trajectory": est.per_trajectory}

    return float(cached_arrays("ks-lyapunov", params, compute)["exponent"])
