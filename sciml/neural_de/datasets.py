"""Offline data generators for the harder neural-ODE tasks (no download; frozen seeds and splits).

* :func:`multiscale_series` — irregularly sampled, partly missing multichannel series whose hidden dynamics
  mix a slow and a fast time scale and a fast transient: the shape and difficulty of the Physionet
  experiment of Pal et al. (ICML 2021, 2023) built from closed-form dynamics; :func:`multiscale_hidden_ode`
  gives the same dynamics as an ODE (what solving the data's own dynamics costs).
* :func:`mnist1d` — a procedurally generated 1-D digit-like classification set following the published
  description of MNIST-1D (Greydanus, 2020): ten 1-D template patterns, randomly padded, sheared, scaled,
  shifted and noised, resampled to 40 points. Our own templates and generator (not the reference data:
  accuracies are not comparable with published MNIST-1D numbers).

Both return plain tensors and a fixed train/validation/test split (:func:`split_indices`): select
hyper-parameters such as the regularization weight on ``"val"``, report on ``"test"``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "split_indices",
    "multiscale_series",
    "multiscale_hidden_ode",
    "MultiscaleHiddenField",
    "mnist1d",
    "MNIST1D_TEMPLATES",
]


def split_indices(n: int, fractions: tuple[float, float, float], seed: int) -> dict[str, np.ndarray]:
    """A fixed random partition of ``range(n)`` into ``train``/``val``/``test`` (disjoint, covering).

    Args:
        n: number of samples.
        fractions: train, validation, test fractions (positive, summing to 1).
        seed: the permutation's seed (frozen per task).

    Returns:
        ``{"train": idx, "val": idx, "test": idx}`` (sorted index arrays).

    Raises:
        ValueError: fractions not positive or not summing to 1, or a split that would be empty.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"`fractions` must be three positive numbers summing to 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_val = int(round(fractions[0] * n)), int(round(fractions[1] * n))
    parts = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }
    if any(len(p) == 0 for p in parts.values()):
        raise ValueError(f"`n`={n} is too small for fractions {fractions}: a split would be empty")
    return {k: np.sort(v) for k, v in parts.items()}


# ------------------------------------------------------------------------------------------ latent series
def multiscale_series(
    n: int,
    *,
    n_times: int = 80,
    horizon: float = 15.0,
    channels: int = 4,
    keep_time: float = 0.6,
    keep_value: float = 0.7,
    noise: float = 0.02,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Irregularly sampled multichannel series with slow, fast and transient hidden dynamics.

    Five hidden states per series (closed forms, so the data need no solver and are exact):

    * a slow damped oscillator ``s = A_s e^{−γ_s t}(cos(ω_s t + φ_s), sin(ω_s t + φ_s))``,
      ω_s ~ U(1, 2), γ_s ~ U(0, 0.1), A_s ~ U(0.5, 1.5);
    * a fast oscillator whose amplitude the slow one modulates,
      ``f = A_f (1 + ½ s_1)(cos(ω_f t + φ_f), sin(ω_f t + φ_f))``, ω_f ~ U(4, 8), A_f ~ U(0.3, 0.8);
    * a fast transient ``r = c + (r_0 − c) e^{−k t}``, k ~ U(2, 8), c ~ U(−0.5, 0.5), r_0 ~ U(−2, 2).

    ``channels`` observations are a fixed random linear mixture of the five states (fewer channels than
    states: no single time point reveals the state) plus Gaussian noise of std ``noise``. The time grid
    is the union of irregular times (``t = 0`` and ``n_times − 1`` sorted uniform draws in
    ``(0, horizon]``, fixed by ``seed``); each series observes each grid time with probability
    ``keep_time`` (``t = 0`` always) and each channel there with probability ``keep_value``.

    Args:
        n: number of series.
        n_times, horizon: the union time grid.
        channels: observed channels (≥ 1).
        keep_time, keep_value: observation probabilities in (0, 1].
        noise: observation noise std (≥ 0).
        seed: freezes parameters, grid, masks and noise.

    Returns:
        ``(times (T,), values (n, T, C) with zeros where unobserved, mask (n, T, C), truth (n, T, C))``.

    Raises:
        ValueError: a non-positive size or a probability outside (0, 1].
    """
    if n < 1 or n_times < 2 or channels < 1 or not horizon > 0:
        raise ValueError(f"need n >= 1, n_times >= 2, channels >= 1, horizon > 0; got {n}, {n_times}, "
                         f"{channels}, {horizon}")  # fmt: skip
    for name, p in (("keep_time", keep_time), ("keep_value", keep_value)):
        if not 0 < p <= 1:
            raise ValueError(f"`{name}` must be in (0, 1], got {p}")
    if not noise >= 0:
        raise ValueError(f"`noise` must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    times, (w_s, g_s, a_s, p_s, w_f, a_f, p_f, k, c, r0) = _multiscale_draws(rng, n, n_times, horizon)
    t = times[None, :]
    s1 = a_s * np.exp(-g_s * t) * np.cos(w_s * t + p_s)
    s2 = a_s * np.exp(-g_s * t) * np.sin(w_s * t + p_s)
    amp = a_f * (1 + 0.5 * s1)
    f1, f2 = amp * np.cos(w_f * t + p_f), amp * np.sin(w_f * t + p_f)
    r = c + (r0 - c) * np.exp(-k * t)
    states = np.stack([s1, s2, f1, f2, r], -1)  # (n, T, 5)
    mixing = rng.standard_normal((5, channels)) / math.sqrt(5)
    truth = states @ mixing
    values = truth + noise * rng.standard_normal(truth.shape)
    observed_time = rng.uniform(size=(n, n_times, 1)) < keep_time
    observed_time[:, 0] = True
    mask = (observed_time & (rng.uniform(size=truth.shape) < keep_value)).astype(np.float32)
    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return f32(times), f32(values * mask), f32(mask), f32(truth)


def _multiscale_draws(rng: np.random.Generator, n: int, n_times: int, horizon: float):
    """The time grid and the per-series parameters of :func:`multiscale_series`, in its draw order."""
    times = np.concatenate([[0.0], np.sort(rng.uniform(0.0, horizon, n_times - 1))])
    u = lambda lo, hi: rng.uniform(lo, hi, (n, 1))  # noqa: E731
    w_s, g_s, a_s, p_s = u(1.0, 2.0), u(0.0, 0.1), u(0.5, 1.5), u(0, 2 * math.pi)
    w_f, a_f, p_f = u(4.0, 8.0), u(0.3, 0.8), u(0, 2 * math.pi)
    k, c, r0 = u(2.0, 8.0), u(-0.5, 0.5), u(-2.0, 2.0)
    return times, (w_s, g_s, a_s, p_s, w_f, a_f, p_f, k, c, r0)


class MultiscaleHiddenField(torch.nn.Module):
    """The hidden dynamics of :func:`multiscale_series` as an ODE on ``y = (s1, s2, f1, f2, r)``:
    ``s' = [[−γ_s, −ω_s], [ω_s, −γ_s]] s``, ``f' = ω_f J f + (½ s1' / (1 + ½ s1)) f`` (rotation plus the
    slow amplitude modulation), ``r' = −k (r − c)``; one parameter row per series (float64 buffers)."""

    def __init__(self, w_s, g_s, w_f, k, c):
        super().__init__()
        for name, value in dict(w_s=w_s, g_s=g_s, w_f=w_f, k=k, c=c).items():
            self.register_buffer(name, torch.as_tensor(value, dtype=torch.float64).reshape(-1))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        s1, s2, f1, f2, r = y.unbind(-1)
        ds1 = -self.g_s * s1 - self.w_s * s2
        ds2 = self.w_s * s1 - self.g_s * s2
        rate = 0.5 * ds1 / (1 + 0.5 * s1)
        df1, df2 = -self.w_f * f2 + rate * f1, self.w_f * f1 + rate * f2
        return torch.stack([ds1, ds2, df1, df2, -self.k * (r - self.c)], -1)


def multiscale_hidden_ode(
    n: int, *, n_times: int = 80, horizon: float = 15.0, channels: int = 4, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, MultiscaleHiddenField, torch.Tensor]:
    """The true hidden ODE behind ``multiscale_series(n, ..., seed=seed)`` (same arguments, same series).

    Solving it from ``y0`` and mixing the states gives the series' noise-free ``truth``: the cost of solving
    the data's own dynamics, a reference for the NFE a model that reproduces them needs.

    Returns:
        ``(times (T,), y0 (n, 5), field, mixing (5, channels))``, float64.

    Raises:
        ValueError: as :func:`multiscale_series`.
    """
    if n < 1 or n_times < 2 or channels < 1 or not horizon > 0:
        raise ValueError(f"need n >= 1, n_times >= 2, channels >= 1, horizon > 0; got {n}, {n_times}, "
                         f"{channels}, {horizon}")  # fmt: skip
    rng = np.random.default_rng(seed)
    times, (w_s, g_s, a_s, p_s, w_f, a_f, p_f, k, c, r0) = _multiscale_draws(rng, n, n_times, horizon)
    mixing = rng.standard_normal((5, channels)) / math.sqrt(5)  # the next draw, as in multiscale_series
    s1, s2 = a_s * np.cos(p_s), a_s * np.sin(p_s)
    amp = a_f * (1 + 0.5 * s1)
    y0 = np.concatenate([s1, s2, amp * np.cos(p_f), amp * np.sin(p_f), r0], 1)
    f64 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))  # noqa: E731
    return f64(times), f64(y0), MultiscaleHiddenField(w_s, g_s, w_f, k, c), f64(mixing)


# ------------------------------------------------------------------------------------------ MNIST-1D
#: ten 12-point 1-D templates (our own shapes: steps, ramps, bumps, dips, zig-zags), one per class
MNIST1D_TEMPLATES = np.array(
    [
        [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0],  # 0: plateau
        [0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0],  # 1: narrow spike
        [3, 2.5, 2, 1.5, 1, 0.5, 0, -0.5, -1, -1.5, -2, -2.5],  # 2: falling ramp
        [0, 2, 0, -2, 0, 2, 0, -2, 0, 2, 0, -2],  # 3: zig-zag
        [0, 0, 2, 2, 0, 0, -2, -2, 0, 0, 0, 0],  # 4: up then down
        [-1, -1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 1],  # 5: step up
        [0, 1, 2, 3, 2, 1, 0, 1, 2, 3, 2, 1],  # 6: two peaks
        [2, 0, -2, -2, 0, 2, 2, 0, -2, -2, 0, 2],  # 7: slow wave
        [0, 0, 0, -3, -3, -3, 0, 0, 0, 0, 0, 0],  # 8: dip
        [0, 0.5, 1, 1.5, 2, 2.5, 3, 0, 0, 0, 0, 0],  # 9: sawtooth
    ],
    dtype=np.float64,
)


def mnist1d(
    n: int = 5000,
    *,
    length: int = 40,
    padding: tuple[int, int] = (36, 60),
    max_shift: int = 48,
    scale: float = 0.4,
    shear: float = 0.75,
    corr_noise: float = 0.25,
    iid_noise: float = 0.02,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A procedurally generated MNIST-1D-style set: ``(x (n, length), labels (n,))``, balanced classes.

    Following Greydanus (2020): the class's 12-point template (:data:`MNIST1D_TEMPLATES`, normalized to
    zero mean and unit std) is zero-padded to a random total length in ``padding``, circularly shifted by
    up to ``max_shift`` points, sheared (a random linear trend of slope ~ U(−shear, shear) over the
    sequence), smoothed-noise added (Gaussian-filtered white noise of scale ``corr_noise``), resampled to a
    random scale (stretched by a factor ~ U(1 − scale, 1 + scale) around the centre) onto ``length`` points
    by linear interpolation, and iid noise of std ``iid_noise`` added.

    Args:
        n: number of samples (labels cycle 0..9, then the order is shuffled).
        length: output points per sample.
        padding, max_shift, scale, shear, corr_noise, iid_noise: augmentation strengths.
        seed: freezes every random draw.

    Returns:
        ``(x, labels)``: float32 ``(n, length)`` and int64 ``(n,)``.

    Raises:
        ValueError: non-positive ``n``/``length`` or an empty padding range.
    """
    if n < 1 or length < 2 or not 12 <= padding[0] <= padding[1]:
        raise ValueError(f"need n >= 1, length >= 2 and 12 <= padding[0] <= padding[1]; got {n}, {length}, "
                         f"{padding}")  # fmt: skip
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10)
    templates = MNIST1D_TEMPLATES - MNIST1D_TEMPLATES.mean(1, keepdims=True)
    templates = templates / templates.std(1, keepdims=True)
    smooth = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
    smooth /= smooth.sum()
    out = np.empty((n, length))
    for i, label in enumerate(labels):
        total = int(rng.integers(padding[0], padding[1] + 1))
        seq = np.zeros(total)
        start = (total - 12) // 2
        seq[start : start + 12] = templates[label]
        seq = np.roll(seq, int(rng.integers(-max_shift, max_shift + 1)))
        grid = np.linspace(-1, 1, total)
        seq = seq + rng.uniform(-shear, shear) * grid
        seq = seq + corr_noise * np.convolve(rng.standard_normal(total), smooth)[6 : 6 + total]
        stretch = rng.uniform(1 - scale, 1 + scale)
        query = np.linspace(-1, 1, length) / stretch
        out[i] = np.interp(query, grid, seq) + iid_noise * rng.standard_normal(length)
    return torch.from_numpy(out.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))
