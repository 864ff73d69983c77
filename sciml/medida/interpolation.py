"""Sparse observations: interpolate observed points onto the model grid before MEDIDA.

The QG follow-up of MEDIDA (Mojgani, Chattopadhyay & Hassanzadeh, JAMES 2024) observes a fraction of the
grid points and needs an interpolator without spectral bias: an MLP whose first layer is random Fourier
features (Tancik et al., NeurIPS 2020) where a plain MLP (which learns low frequencies first) and cubic
interpolation fall short. Three interpolators, one interface:

* ``"cubic"`` — a periodic cubic spline (scipy ``CubicSpline``, ``bc_type="periodic"``); in 2-D scipy's
  piecewise-cubic Clough–Tocher interpolant (``griddata(method="cubic")``) of the points and their
  periodic images;
* ``"mlp"`` — a plain tanh MLP of the coordinate;
* ``"rff"`` — the same MLP behind a layer of periodic random Fourier features ``cos/sin(2π m_j x / L)``
  with integer modes ``m_j ~ |N(0, scale²)|`` (integers keep the interpolant periodic).

Each fit interpolates two fields at once: the first state of an observation pair and the scaled
increment ``(u_next − u_prev)/Δt``; fitting the increment directly keeps its error relative to the one-step
change, not to the state (independent fits of the two states would put their errors, divided by Δt, into
every model-error sample). A fraction ``holdout`` of the observed points is held out and the RMSE there
reported; MEDIDA uses it as the noise level that sets the regression band.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from scipy.interpolate import CubicSpline
from torch import nn

__all__ = ["Interpolation", "interpolate", "INTERPOLATORS"]

INTERPOLATORS = ("cubic", "mlp", "rff")


class Interpolation(NamedTuple):
    """``values`` ``(C, n)`` on the output grid; ``holdout_rmse`` ``(C,)`` at the held-out points."""

    values: np.ndarray
    holdout_rmse: np.ndarray


class _MLP(nn.Module):
    def __init__(self, inputs: int, outputs: int, hidden: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = inputs
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        layers.append(nn.Linear(width, outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class _Interpolant(nn.Module):
    def __init__(
        self,
        kind: str,
        length: float,
        x0: np.ndarray,
        outputs: int,
        *,
        features: int,
        scale: float,
        hidden: int,
        depth: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        dim = len(x0)
        self.kind, self.length = kind, length
        self.register_buffer("x0", torch.as_tensor(x0, dtype=torch.float64))
        if kind == "rff":
            draw = torch.randn(features, dim, generator=generator, dtype=torch.float64) * scale
            # 1-D: positive integer modes; d-D: integer wave vectors of either sign
            modes = torch.round(draw.abs()) + 1 if dim == 1 else torch.round(draw)
            self.register_buffer("k", 2 * math.pi * modes / length)
            self.mlp = _MLP(2 * features, outputs, hidden, depth)
        else:
            self.mlp = _MLP(dim, outputs, hidden, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "rff":
            phase = x @ self.k.T
            return self.mlp(torch.cat([torch.cos(phase), torch.sin(phase)], dim=1))
        return self.mlp(2 * (x - self.x0) / self.length - 1)


def _fit_network(
    kind,
    x_train,
    y_train,
    x_out,
    length,
    x0,
    *,
    features,
    scale,
    hidden,
    depth,
    adam_steps,
    lbfgs_steps,
    seed,
) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    outputs = y_train.shape[0]
    model = _Interpolant(
        kind,
        length,
        x0,
        outputs,
        features=features,
        scale=scale,
        hidden=hidden,
        depth=depth,
        generator=generator,
    ).double()
    xt = torch.as_tensor(x_train, dtype=torch.float64)
    mean = y_train.mean(axis=1, keepdims=True)
    std = y_train.std(axis=1, keepdims=True) + 1e-300
    yt = torch.as_tensor(((y_train - mean) / std).T, dtype=torch.float64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(adam_steps, 1))
    for _ in range(adam_steps):
        optimizer.zero_grad()
        loss = (model(xt) - yt).pow(2).mean()
        loss.backward()
        optimizer.step()
        schedule.step()
    if lbfgs_steps > 0:
        lbfgs = torch.optim.LBFGS(
            model.parameters(),
            lr=1.0,
            max_iter=lbfgs_steps,
            tolerance_grad=1e-12,
            tolerance_change=1e-15,
            history_size=50,
            line_search_fn="strong_wolfe",
        )

        def closure():
            lbfgs.zero_grad()
            value = (model(xt) - yt).pow(2).mean()
            value.backward()
            return value

        lbfgs.step(closure)
    with torch.no_grad():
        out = model(torch.as_tensor(x_out, dtype=torch.float64)).numpy().T
    return out * std + mean


def interpolate(
    kind: str,
    x_obs: np.ndarray,
    values: np.ndarray,
    x_out: np.ndarray,
    length: float,
    *,
    holdout: float = 0.1,
    features: int = 64,
    scale: float = 10.0,
    hidden: int = 64,
    depth: int = 2,
    adam_steps: int = 2000,
    lbfgs_steps: int = 500,
    seed: int = 0,
) -> Interpolation:
    """Interpolate fields observed at ``x_obs`` onto ``x_out`` on a periodic interval.

    Args:
        kind: ``"cubic"``, ``"mlp"`` or ``"rff"``.
        x_obs: ``(p,)`` observed coordinates in ``[x_out[0], x_out[0] + length)``, or ``(p, d)`` points of
            a ``d``-dimensional periodic box (e.g. the 25 % observed points of the QG grid).
        values: ``(C, p)`` observed values of ``C`` fields (one network fits all of them).
        x_out: ``(n,)`` the output grid, or ``(n, d)`` output points.
        length: the period (of every coordinate).

    Other Args:
        holdout: fraction of observed points held out to measure the interpolation error.
        features, scale: random Fourier features (``"rff"``): how many frequencies, and the standard
            deviation of their (integer) modes.
        hidden, depth: the MLP.
        adam_steps, lbfgs_steps: training (full batch).
        seed: for the hold-out split, the features and the initial weights.

    Returns:
        An :class:`Interpolation`.

    Raises:
        ValueError: an unknown ``kind``, shapes that do not match, fewer than 8 points, NaN.
    """
    if kind not in INTERPOLATORS:
        raise ValueError(f"kind must be one of {INTERPOLATORS}, got {kind!r}")
    x_obs = np.asarray(x_obs, dtype=np.float64)
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    x_out = np.asarray(x_out, dtype=np.float64)
    if x_obs.ndim == 2 or x_out.ndim == 2:
        if x_obs.ndim != 2 or x_out.ndim != 2 or x_obs.shape[1] != x_out.shape[1] or x_obs.shape[1] > 2:
            raise ValueError(
                f"x_obs and x_out must both be (points, d) with d <= 2, got {x_obs.shape} and {x_out.shape}"
            )
        return _interpolate_2d(
            kind,
            x_obs,
            values,
            x_out,
            length,
            holdout=holdout,
            seed=seed,
            **_net(features, scale, hidden, depth, adam_steps, lbfgs_steps),
        )
    if x_obs.ndim != 1:
        raise ValueError(f"values must have shape (fields, {x_obs.size}), got {values.shape}")
    _check_observations(x_obs, values, holdout)
    rng = np.random.default_rng(seed)
    order = np.argsort(x_obs)
    x_obs, values = x_obs[order], values[:, order]
    held = np.zeros(x_obs.size, dtype=bool)
    if holdout > 0:
        held[rng.choice(x_obs.size, int(round(holdout * x_obs.size)), replace=False)] = True
    train = ~held
    x0 = np.array([x_out[0]])
    targets = np.concatenate([x_out, x_obs[held]])  # the grid, then the held-out points
    if kind == "cubic":
        xs = np.concatenate([x_obs[train], [x_obs[train][0] + length]])
        ys = np.concatenate([values[:, train], values[:, train][:, :1]], axis=1)
        spline = CubicSpline(xs, ys, axis=1, bc_type="periodic")
        both = spline(xs[0] + np.mod(targets - xs[0], length))
    else:
        both = _fit_network(
            kind,
            x_obs[train][:, None],
            values[:, train],
            targets[:, None],
            length,
            x0,
            seed=seed,
            **_net(features, scale, hidden, depth, adam_steps, lbfgs_steps),
        )
    out, at_held = both[:, : x_out.size], both[:, x_out.size :]
    if held.any():
        rmse = np.sqrt(np.mean((at_held - values[:, held]) ** 2, axis=1))
    else:
        rmse = np.full(len(values), np.nan)
    return Interpolation(out, rmse)


def _check_observations(x_obs: np.ndarray, values: np.ndarray, holdout: float) -> None:
    """Shape, count and finiteness of observed points (rows of ``x_obs``) and values, and the hold-out share.

    Raises:
        ValueError: naming what is wrong.
    """
    if values.shape[1] != len(x_obs):
        raise ValueError(f"values must have shape (fields, {len(x_obs)}), got {values.shape}")
    if len(x_obs) < 8:
        raise ValueError(f"need at least 8 observed points, got {len(x_obs)}")
    if not (np.all(np.isfinite(x_obs)) and np.all(np.isfinite(values))):
        raise ValueError("observed coordinates and values must be finite")
    if not 0 <= holdout < 0.5:
        raise ValueError(f"holdout must be in [0, 0.5), got {holdout}")


def _net(features, scale, hidden, depth, adam_steps, lbfgs_steps) -> dict:
    return dict(
        features=features,
        scale=scale,
        hidden=hidden,
        depth=depth,
        adam_steps=adam_steps,
        lbfgs_steps=lbfgs_steps,
    )


def _interpolate_2d(kind, x_obs, values, x_out, length, *, holdout, seed, **net) -> Interpolation:
    """:func:`interpolate` on scattered points of a doubly periodic square of side ``length``."""
    from scipy.interpolate import griddata

    _check_observations(x_obs, values, holdout)
    rng = np.random.default_rng(seed)
    held = np.zeros(len(x_obs), dtype=bool)
    if holdout > 0:
        held[rng.choice(len(x_obs), int(round(holdout * len(x_obs))), replace=False)] = True
    train = ~held
    x0 = x_out.min(axis=0)
    targets = np.concatenate([x_out, x_obs[held]])
    if kind == "cubic":
        shifts = np.array([(a, b) for a in (-1, 0, 1) for b in (-1, 0, 1)], dtype=np.float64) * length
        points = (x_obs[train][None, :, :] + shifts[:, None, :]).reshape(-1, 2)
        tiled = np.tile(values[:, train], (1, len(shifts)))
        wrapped = x0 + np.mod(targets - x0, length)
        both = np.stack([griddata(points, v, wrapped, method="cubic") for v in tiled])
    else:
        both = _fit_network(kind, x_obs[train], values[:, train], targets, length, x0, seed=seed, **net)
    out, at_held = both[:, : len(x_out)], both[:, len(x_out) :]
    rmse = (
        np.sqrt(np.mean((at_held - values[:, held]) ** 2, axis=1))
        if held.any()
        else np.full(len(values), np.nan)
    )
    return Interpolation(out, rmse)
