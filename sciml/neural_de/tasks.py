"""Training tasks for neural ODEs, all on data made offline by the package or shipped with a dependency.

* ``digits`` — scikit-learn's 8×8 digits (1797 images, fixed stratified 80/20 split), the MNIST NODE of
  Pal et al. (2021) at laptop scale: the state is the image, ``f = tanh(W2[tanh(W1[x; t] + b1); t] + b2)``,
  then a linear classifier. Metric: test accuracy (%).
* ``latent`` — a latent ODE on irregularly sampled multivariate series (the shape of the Physionet
  experiment): damped oscillators with random frequency, damping, phase and amplitude seen through three
  channels, half the observations masked; a GRU encoder reads the observed values backwards in time, an
  ODE evolves the latent state, a linear readout decodes it. Metric: MSE on the masked (unseen) test values.
* ``latent-hard`` — the same latent ODE at the Physionet experiment's shape and difficulty: 4-channel series
  on an irregular 80-point union grid over [0, 15], about 40 % of the values observed, hidden dynamics
  with a slow and a fast oscillation and a fast transient
  (:func:`sciml.neural_de.datasets.multiscale_series`);
  the paper's model (GRU encoder with 40 units, 20-d latent, 4-layer 50-unit tanh dynamics, Tsit5 at
  rtol 1e-6), Adam at 5e-3 decaying to 5e-4 over the run. Frozen seed and train/validation/test split
  (1000/250/250). Metric: MSE on the unseen values.
* ``mnist1d`` — a procedurally generated MNIST-1D-style set (:func:`sciml.neural_de.datasets.mnist1d`,
  5000 samples of 40 points, frozen 70/10/20 split) with the structure of the paper's MNIST model: a
  downsampling 1-D convolutional stem (32 maps of 20 points), the ODE block with a convolutional field
  (time concatenated as a channel), global max pooling and a linear head. Metric: test accuracy (%).
* ``spiral`` — fitting the cubic spiral ``y' = y³A`` (torchdiffeq's demo) from windows of its trajectory.
  Metric: MSE of the whole trajectory predicted from ``y0``.

A task builds its data and its model; the model's ``forward(batch, regularizer)`` returns a
:class:`TaskOutput`. Register new tasks in :data:`TASKS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from sciml.neural_de.datasets import (
    MultiscaleHiddenField,
    mnist1d,
    multiscale_hidden_ode,
    multiscale_series,
    split_indices,
)
from sciml.neural_de.model import NeuralODE, NeuralODEResult
from sciml.neural_de.sde import DIGITS_SDE, SPIRAL_SDE

__all__ = [
    "Task", "TaskOutput", "TASKS", "get_task", "DigitsTask", "LatentTask", "LatentHardTask", "MNIST1DTask",
    "SpiralTask", "KineticsTask",
]  # fmt: skip


class TaskOutput(NamedTuple):
    """One batch through a task model.

    Attributes:
        loss: the task loss (a scalar tensor).
        metric_sum: the sum of the per-sample metric (correct predictions, squared errors...).
        metric_count: how many samples/values ``metric_sum`` covers.
        result: the neural ODE's output (solution, regularization).
    """

    loss: torch.Tensor
    metric_sum: float
    metric_count: int
    result: NeuralODEResult


@dataclass(frozen=True)
class Task:
    """A training task: data, model and training defaults.

    Attributes:
        name: registry name.
        kind: ``"node"`` or ``"sde"`` (the ``sciml train`` sub-command it belongs to).
        metric: the name of the test metric; ``higher_is_better`` says its direction.
        epochs, batch_size, lr: training defaults.
        rtol, atol: solver tolerances, for training and prediction alike.
        lr_end: the learning rate of the last epoch: Adam's rate decays exponentially, once an epoch, from
            ``lr`` to ``lr_end`` (Rubanova et al.'s latent ODEs decay theirs to a tenth); ``None`` keeps
            ``lr`` constant.
        backends: (class attribute) the ``--backend`` values its model trains with.
        unsupported: (class attribute) ``--reg`` variants it refuses, with the reason.
    """

    name: str
    kind: str
    metric: str
    higher_is_better: bool
    epochs: int
    batch_size: int
    lr: float
    rtol: float
    atol: float
    lr_end: float | None = None
    backends: ClassVar[tuple[str, ...]] = ("backprop", "continuous", "torchdiffeq")
    unsupported: ClassVar[dict[str, str]] = {}

    def train_span(self) -> tuple[float, float]:
        """The time interval one training solve integrates (STEER's random end time must stay inside it)."""
        return (0.0, 1.0)

    def data(self) -> dict[str, tuple[torch.Tensor, ...]]:
        """``{"train": tensors, "test": tensors}`` with the sample dimension first (tasks with a validation
        split add ``"val"``: choose hyper-parameters there, never on ``"test"``)."""
        raise NotImplementedError

    def model(self, backend: str) -> nn.Module:
        """A fresh model (seed first) whose ``forward(batch, regularizer=None)`` returns a TaskOutput."""
        raise NotImplementedError


# ------------------------------------------------------------------------------------------ digits
class TimeConcatField(nn.Module):
    """``f(t, x) = tanh(W2 [tanh(W1 [x; t] + b1); t] + b2)``: the field of Pal et al.'s MNIST NODE."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.inner = nn.Linear(dim + 1, hidden)
        self.outer = nn.Linear(hidden + 1, dim)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        tt = t.expand(*x.shape[:-1], 1)
        z = torch.tanh(self.inner(torch.cat([x, tt], -1)))
        return torch.tanh(self.outer(torch.cat([z, tt], -1)))


class _Classifier(nn.Module):
    def __init__(self, node: NeuralODE, dim: int, classes: int):
        super().__init__()
        self.node = node
        self.classify = nn.Linear(dim, classes)

    def forward(self, batch, regularizer=None) -> TaskOutput:
        x, labels = batch
        result = self.node(x, regularizer=regularizer)
        logits = self.classify(result.ys[-1])
        loss = nn.functional.cross_entropy(logits, labels)
        correct = (logits.argmax(-1) == labels).sum().item()
        return TaskOutput(loss, 100.0 * correct, len(labels), result)


@dataclass(frozen=True)
class DigitsTask(Task):
    hidden: int = 100

    def data(self):
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x = digits.data.astype(np.float32) / 16.0
        xtr, xte, ytr, yte = train_test_split(
            x, digits.target, test_size=0.2, stratify=digits.target, random_state=0
        )
        return {
            "train": (torch.from_numpy(xtr), torch.from_numpy(ytr).long()),
            "test": (torch.from_numpy(xte), torch.from_numpy(yte).long()),
        }

    def model(self, backend):
        field = TimeConcatField(64, self.hidden)
        node = NeuralODE(field, self.train_span(), rtol=self.rtol, atol=self.atol, backend=backend)
        return _Classifier(node, 64, 10)


# ------------------------------------------------------------------------------------------ latent ODE
def damped_oscillators(
    n: int, times: torch.Tensor, *, channels: int = 3, keep: float = 0.5, noise: float = 0.01, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic irregularly sampled series: ``(values, observed mask, truth)``, each ``(n, T, channels)``.

    Each series is a damped oscillator ``A e^{−γt}(cos(ωt + φ), sin(ωt + φ))`` with ω ~ U(1, 3),
    γ ~ U(0.05, 0.3), φ ~ U(0, 2π), A ~ U(0.5, 1.5), seen through a fixed random 2 → ``channels`` map, plus
    Gaussian noise; each value is observed with probability ``keep``.
    """
    g = torch.Generator().manual_seed(seed)
    omega = 1 + 2 * torch.rand(n, 1, generator=g)
    gamma = 0.05 + 0.25 * torch.rand(n, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n, 1, generator=g)
    amp = 0.5 + torch.rand(n, 1, generator=g)
    t = times[None, :]
    decay = amp * torch.exp(-gamma * t)
    state = torch.stack([decay * torch.cos(omega * t + phase), decay * torch.sin(omega * t + phase)], -1)
    mixing = torch.randn(2, channels, generator=torch.Generator().manual_seed(1234)) / math.sqrt(2)
    truth = state @ mixing
    values = truth + noise * torch.randn(truth.shape, generator=g)
    mask = (torch.rand(truth.shape, generator=g) < keep).float()
    return values * mask, mask, truth


class MLPField(nn.Module):
    """An autonomous tanh MLP field ``dim → width → … → dim``."""

    def __init__(self, dim: int, width: int, layers: int):
        super().__init__()
        sizes = [dim] + [width] * (layers - 1) + [dim]
        mods: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            mods += [nn.Linear(a, b), nn.Tanh()]
        self.net = nn.Sequential(*mods[:-1])

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


def through_horizon(times: torch.Tensor, horizon: float) -> torch.Tensor:
    """Save times that make a solve run to ``horizon``: ``times``, with ``horizon`` appended when they end
    before it (a :class:`NeuralODE` solve ends at its last save time). latent-hard's observation grid ends at
    14.958 of its 15-unit horizon, and its model solves through the horizon, as every measurement of it did;
    the appended state is dropped by the caller."""
    if float(times[-1]) == horizon:
        return times
    return torch.cat([times, times.new_tensor([horizon])])


class _LatentODE(nn.Module):
    def __init__(self, node: NeuralODE, times: torch.Tensor, channels: int, latent: int, hidden: int):
        super().__init__()
        self.node = node
        self.register_buffer("times", times)
        self.encoder = nn.GRU(2 * channels + 1, hidden, batch_first=True)
        self.to_latent = nn.Linear(hidden, latent)
        self.decode = nn.Linear(latent, channels)

    def forward(self, batch, regularizer=None) -> TaskOutput:
        values, mask, truth = batch
        dt = torch.diff(self.times, prepend=self.times[:1]).expand(values.shape[0], -1)[..., None]
        inputs = torch.cat([values, mask, dt], -1).flip(1)  # read backwards in time, as Rubanova et al.
        _, h = self.encoder(inputs)
        z0 = self.to_latent(h[-1])
        saveat = through_horizon(self.times, self.node.t_span[1])
        result = self.node(z0, saveat=saveat, regularizer=regularizer)
        pred = self.decode(result.ys[: len(self.times)]).transpose(0, 1)  # (batch, T, channels)
        loss = ((pred - values).pow(2) * mask).sum() / mask.sum().clamp_min(1)
        unseen = 1 - mask
        sq = ((pred - truth).pow(2) * unseen).sum().item()
        return TaskOutput(loss, sq, int(unseen.sum().item()), result)


@dataclass(frozen=True)
class LatentTask(Task):
    n_series: int = 800
    n_times: int = 50
    horizon: float = 5.0
    latent: int = 8
    hidden: int = 32
    width: int = 50
    layers: int = 3

    def _times(self) -> torch.Tensor:
        return torch.linspace(0.0, self.horizon, self.n_times)

    def train_span(self):
        return (0.0, self.horizon)

    def data(self):
        values, mask, truth = damped_oscillators(self.n_series, self._times(), seed=0)
        cut = int(0.8 * self.n_series)
        return {
            "train": (values[:cut], mask[:cut], truth[:cut]),
            "test": (values[cut:], mask[cut:], truth[cut:]),
        }

    def model(self, backend):
        field = MLPField(self.latent, self.width, self.layers)
        node = NeuralODE(field, self.train_span(), rtol=self.rtol, atol=self.atol, backend=backend)
        return _LatentODE(node, self._times(), 3, self.latent, self.hidden)


@dataclass(frozen=True)
class LatentHardTask(Task):
    """The Physionet-shaped latent ODE on :func:`~sciml.neural_de.datasets.multiscale_series` data.

    Data seed 0 and split seed 1 are frozen: the train/validation/test series never change.
    """

    n_series: int = 1500
    n_times: int = 80
    horizon: float = 15.0
    channels: int = 4
    latent: int = 20
    hidden: int = 40
    width: int = 50
    layers: int = 4

    def train_span(self):
        return (0.0, self.horizon)

    def _series(self):
        return multiscale_series(
            self.n_series, n_times=self.n_times, horizon=self.horizon, channels=self.channels, seed=0
        )

    def data(self):
        _, values, mask, truth = self._series()
        parts = split_indices(self.n_series, (2 / 3, 1 / 6, 1 / 6), seed=1)
        return {k: (values[idx], mask[idx], truth[idx]) for k, idx in parts.items()}

    def model(self, backend):
        times = self._series()[0]
        field = MLPField(self.latent, self.width, self.layers)
        node = NeuralODE(field, self.train_span(), rtol=self.rtol, atol=self.atol, backend=backend)
        return _LatentODE(node, times, self.channels, self.latent, self.hidden)

    def reference_nfe(self, split: str = "val", batch_size: int = 256) -> float:
        """Mean NFE per batch of solving the data's true 5-d hidden ODE
        (:func:`~sciml.neural_de.datasets.multiscale_hidden_ode`) for a split's series with the model's
        solver and tolerances, batched as :func:`~sciml.neural_de.training.evaluate` batches a split."""
        times, y0, field, _ = multiscale_hidden_ode(
            self.n_series, n_times=self.n_times, horizon=self.horizon, channels=self.channels, seed=0
        )
        idx = split_indices(self.n_series, (2 / 3, 1 / 6, 1 / 6), seed=1)[split]
        nfe = []
        with torch.no_grad():
            for start in range(0, len(idx), batch_size):
                rows = torch.as_tensor(idx[start : start + batch_size])
                sub = MultiscaleHiddenField(
                    *(getattr(field, k)[rows] for k in ("w_s", "g_s", "w_f", "k", "c"))
                )
                node = NeuralODE(sub, (0.0, self.horizon), rtol=self.rtol, atol=self.atol)
                nfe.append(node(y0[rows], saveat=through_horizon(times, self.horizon)).solution.stats.nfe)
        return float(np.mean(nfe))


# ------------------------------------------------------------------------------------------ MNIST-1D
class ConcatConvField(nn.Module):
    """``f(t, x) = W2 * tanh(W1 * [x; t] + b1) + b2`` on feature maps ``(B, C, L)``: two 1-D convolutions
    (kernel 3, same length) with the time concatenated as an extra channel, as in the convolutional ODE
    block of Chen et al. (2018) and the MNIST NODE of Pal et al. (2021)."""

    def __init__(self, channels: int, kernel: int = 3):
        super().__init__()
        self.inner = nn.Conv1d(channels + 1, channels, kernel, padding=kernel // 2)
        self.outer = nn.Conv1d(channels + 1, channels, kernel, padding=kernel // 2)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        tt = t.to(x.dtype).expand(x.shape[0], 1, x.shape[-1])
        z = torch.tanh(self.inner(torch.cat([x, tt], 1)))
        return self.outer(torch.cat([z, tt], 1))


class _ConvODEClassifier(nn.Module):
    """Downsampling 1-D conv stem -> ODE block on the feature maps -> global pooling -> linear head."""

    def __init__(self, node: NeuralODE, channels: int, classes: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv1d(1, channels, 5, padding=2), nn.ReLU(),
            nn.Conv1d(channels, channels, 4, stride=2, padding=1), nn.ReLU(),
        )  # fmt: skip
        self.node = node
        self.classify = nn.Linear(channels, classes)

    def forward(self, batch, regularizer=None) -> TaskOutput:
        x, labels = batch
        result = self.node(self.stem(x[:, None, :]), regularizer=regularizer)
        logits = self.classify(result.ys[-1].amax(-1))
        loss = nn.functional.cross_entropy(logits, labels)
        correct = (logits.argmax(-1) == labels).sum().item()
        return TaskOutput(loss, 100.0 * correct, len(labels), result)


@dataclass(frozen=True)
class MNIST1DTask(Task):
    """The paper's MNIST NODE structure on :func:`~sciml.neural_de.datasets.mnist1d` (frozen seeds/split):
    a downsampling convolutional stem (40 -> 20 points, ``channels`` maps), the ODE block with a
    convolutional field (:class:`ConcatConvField`) on t in [0, 1], global max pooling, a linear head."""

    n_samples: int = 5000
    length: int = 40
    channels: int = 32

    def data(self):
        x, labels = mnist1d(self.n_samples, length=self.length, seed=0)
        parts = split_indices(self.n_samples, (0.7, 0.1, 0.2), seed=1)
        return {k: (x[idx], labels[idx]) for k, idx in parts.items()}

    def model(self, backend):
        node = NeuralODE(
            ConcatConvField(self.channels), self.train_span(), rtol=self.rtol, atol=self.atol, backend=backend
        )
        return _ConvODEClassifier(node, self.channels, 10)


# ------------------------------------------------------------------------------------------ spiral
class CubicField(nn.Module):
    """``f(y) = MLP(y³)``: the model of torchdiffeq's spiral demo."""

    def __init__(self, width: int = 50):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 2))

    def forward(self, t, y):
        return self.net(y**3)


class _SpiralModel(nn.Module):
    def __init__(self, field: nn.Module, window: float, horizon: float, times: torch.Tensor, **solver):
        super().__init__()
        self.window_node = NeuralODE(field, (0.0, window), **solver)
        self.full_node = NeuralODE(field, (0.0, horizon), **solver)
        self.register_buffer("times", times)
        self.window = window

    def forward(self, batch, regularizer=None) -> TaskOutput:
        y0, target = batch  # training windows: (B, 2), (B, W, 2); evaluation: the whole trajectory
        full = target.shape[1] == len(self.times)
        node = self.full_node if full else self.window_node
        saveat = self.times if full else self.times[: target.shape[1]]
        result = node(y0, saveat=saveat, regularizer=regularizer)
        pred = result.ys.transpose(0, 1)
        sq = (pred - target).pow(2)
        return TaskOutput(sq.mean(), sq.sum().item(), sq.numel(), result)


@dataclass(frozen=True)
class SpiralTask(Task):
    n_times: int = 1000
    horizon: float = 25.0
    window: int = 10
    windows_per_epoch: int = 400

    def data(self):
        from sciml.problems.ode import cubic_spiral
        from sciml.solvers.ode import reference_solution

        problem = cubic_spiral(torch.float64)
        times = torch.linspace(0.0, self.horizon, self.n_times, dtype=torch.float64)
        traj = reference_solution(problem, times).float()
        g = torch.Generator().manual_seed(0)
        starts = torch.randint(0, self.n_times - self.window, (self.windows_per_epoch,), generator=g)
        windows = torch.stack([traj[s : s + self.window] for s in starts.tolist()])
        return {"train": (windows[:, 0], windows), "test": (traj[:1], traj[None])}

    def plot_prediction(self, model: _SpiralModel, path: Path, title: str) -> None:
        """The trajectory predicted from the first state over the whole horizon, against the data."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from sciml.checkpoint import save_figure

        y0, target = self.data()["test"]
        truth = target[0].numpy()
        pred = model.full_node(y0, saveat=model.times).ys[:, 0].numpy()
        times = model.times.numpy()
        fig, (phase, series) = plt.subplots(1, 2, figsize=(11, 4.2))
        phase.plot(truth[:, 0], truth[:, 1], color="black", lw=2, label="data")
        phase.plot(pred[:, 0], pred[:, 1], color="tab:red", ls="--", label="neural ODE")
        phase.set(xlabel="$y_1$", ylabel="$y_2$", title="phase plane", aspect="equal")
        phase.legend()
        for i, color in enumerate(("tab:blue", "tab:orange")):
            series.plot(times, truth[:, i], color=color, lw=2, label=f"data $y_{i + 1}$")
            series.plot(times, pred[:, i], color=color, ls="--", label=f"neural ODE $y_{i + 1}$")
        series.set(xlabel="t", ylabel="state", title="components over time")
        series.legend(fontsize=8, ncol=2)
        fig.suptitle(title)
        fig.tight_layout()
        save_figure(fig, path)

    def train_span(self):
        """Training solves integrate one window of ``window`` samples (0.225 long by default)."""
        return (0.0, float(torch.linspace(0.0, self.horizon, self.n_times)[self.window - 1]))

    def model(self, backend):
        times = torch.linspace(0.0, self.horizon, self.n_times)
        window = self.train_span()[1]
        solver = dict(rtol=self.rtol, atol=self.atol, backend=backend)
        return _SpiralModel(CubicField(), window, self.horizon, times, **solver)


# ------------------------------------------------------------------------------------------ kinetics
class _KineticsModel(nn.Module):
    def __init__(self, node: NeuralODE, taus: torch.Tensor):
        super().__init__()
        self.node = node
        self.register_buffer("taus", taus)

    def forward(self, batch, regularizer=None) -> TaskOutput:
        x0, observed, _ = batch  # scaled initial state (B, 4), noisy observations and truth (B, 31, 4)
        result = self.node(x0, saveat=self.taus, regularizer=regularizer)
        sq = (result.ys.transpose(0, 1) - observed).pow(2)
        return TaskOutput(sq.mean(), sq.sum().item(), sq.numel(), result)


@dataclass(frozen=True)
class KineticsTask(Task):
    """A stiff neural ODE (:mod:`sciml.neural_de.kinetics`): candidate mass-action network with learnable
    log rates plus an MLP correction, Rodas5P with per-trajectory Jacobian blocks, float64. 300 noisy
    trajectories (frozen data seed 0, split seed 1: 200/50/50). Metric: MSE on the noisy scaled
    observations (noise floor 1e-4).

    Trains by backprop only: the continuous adjoint cannot use the per-trajectory Jacobian blocks, and
    torchdiffeq would replace Rodas5P by its explicit dopri5. RNODE and TayNODE are refused: their extra
    states make every Rodas5P Jacobian a nested derivative (RNODE: a minute for a batch of 2; TayNODE: out of
    memory)."""

    n_traj: int = 300
    method: str = "rodas5p"
    backends: ClassVar[tuple[str, ...]] = ("backprop",)
    unsupported: ClassVar[dict[str, str]] = {
        "rnode": "its extra states make every Rodas5P Jacobian a nested derivative (minutes per batch)",
        "taynode": "its Taylor terms make every Rodas5P Jacobian a nested derivative (runs out of memory)",
    }

    def train_span(self):
        from sciml.neural_de.kinetics import TAU_END

        return (0.0, TAU_END)

    def data(self):
        from sciml.neural_de.kinetics import SCALES, kinetics_data

        c0, truth, observed = kinetics_data(self.n_traj, seed=0)
        s = np.asarray(SCALES)
        arrays = [torch.from_numpy(a) for a in (c0 / s, observed, truth / s)]
        parts = split_indices(self.n_traj, (2 / 3, 1 / 6, 1 / 6), seed=1)
        return {k: tuple(a[idx] for a in arrays) for k, idx in parts.items()}

    def model(self, backend):
        from sciml.neural_de.kinetics import OBSERVATION_TIMES, RATES, KineticsField, log_time

        log_k = torch.log(torch.tensor(RATES, dtype=torch.float64))  # literature values, off by <= 1.5x:
        log_k = log_k + math.log(1.5) * (2 * torch.rand(4, dtype=torch.float64) - 1)
        field = KineticsField(log_k).double()
        node = NeuralODE(field, self.train_span(), method=self.method, rtol=self.rtol, atol=self.atol,
                         backend=backend, jac="batched")  # fmt: skip
        taus = torch.tensor([log_time(t) for t in OBSERVATION_TIMES], dtype=torch.float64)
        return _KineticsModel(node, taus)

    def describe_runs(self, groups: list[tuple[str, list[str]]]) -> list[dict]:
        """NFE, NJEV, work and Tsit5's cost of trained runs (see :func:`.kinetics.describe_runs`)."""
        from sciml.neural_de.kinetics import describe_runs

        return describe_runs(self, groups)

    def plot_runs(self, rows: list[dict], path) -> None:
        """Work vs validation MSE of the sweep (see :func:`.kinetics.plot_runs`)."""
        from sciml.neural_de.kinetics import plot_runs

        plot_runs(rows, path)


#: name -> task (``kind`` says which ``sciml train`` sub-command lists it)
TASKS: dict[str, Task] = {
    "digits": DigitsTask(
        "digits", "node", "accuracy", True, epochs=10, batch_size=64, lr=3e-3, rtol=1e-6, atol=1e-6
    ),
    "latent": LatentTask(
        "latent", "node", "mse", False, epochs=15, batch_size=50, lr=5e-3, rtol=1e-5, atol=1e-5
    ),
    "latent-hard": LatentHardTask(
        "latent-hard",
        "node",
        "mse",
        False,
        epochs=25,
        batch_size=50,
        lr=5e-3,
        rtol=1e-6,
        atol=1e-6,
        lr_end=5e-4,
    ),  # fmt: skip
    "mnist1d": MNIST1DTask(
        "mnist1d", "node", "accuracy", True, epochs=10, batch_size=64, lr=3e-3, rtol=1e-6, atol=1e-6
    ),
    "spiral": SpiralTask(
        "spiral", "node", "mse", False, epochs=20, batch_size=20, lr=1e-3, rtol=1e-6, atol=1e-6
    ),
    "kinetics": KineticsTask(
        "kinetics", "node", "mse", False, epochs=20, batch_size=100, lr=0.02, rtol=1e-4, atol=1e-5
    ),
    "spiral-sde": SPIRAL_SDE,
    "digits-sde": DIGITS_SDE,
}


def get_task(name: str, kind: str | None = None) -> Task:
    """A registered task.

    Raises:
        ValueError: unknown name (the message lists the valid ones for ``kind``).
    """
    valid = sorted(n for n, t in TASKS.items() if kind is None or t.kind == kind)
    if name not in valid:
        raise ValueError(f"unknown task {name!r}; choose one of {valid}")
    return TASKS[name]


def batches(
    tensors: tuple[torch.Tensor, ...], batch_size: int, generator: torch.Generator | None
) -> Callable[[], list[tuple[torch.Tensor, ...]]]:
    """Minibatches of ``tensors`` (shuffled by ``generator`` when given)."""
    n = tensors[0].shape[0]
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return [tuple(t[order[i : i + batch_size]] for t in tensors) for i in range(0, n, batch_size)]
