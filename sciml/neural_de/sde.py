"""Neural SDEs solved by our adaptive SDE solvers, regularized like neural ODEs, and their training tasks.

:class:`NeuralSDE` mirrors :class:`~sciml.neural_de.model.NeuralODE`: its forward pass returns
:class:`~sciml.neural_de.model.NeuralODEResult` (states, the solver's
:class:`~sciml.solvers.solution.Solution`, the regularizer's value) and honours the same regularizer hooks,
so the
global (``Σ E_j |h_j|``, ``Σ S_j``) and local (one differentiable step at a sampled time, unbiased or
biased) regularizers of :mod:`sciml.neural_de.regularizers` and the trainer work unchanged. The per-step
estimates are the SRI/SRA embedded estimates of :mod:`sciml.solvers.sde` (Pal, Ma, Shah & Rackauckas, ICML
2021;
Pal, Edelman & Rackauckas, ICML 2023 regularize SOSRI's).

Tasks (registered as ``spiral-sde`` and ``digits-sde`` in :data:`sciml.neural_de.tasks.TASKS`):

* ``spiral-sde`` — the spiral SDE of Pal et al. (2021) (:func:`sciml.problems.sde.spiral`): learn drift
  ``W2 tanh(W1 x³ + b1) + b2`` (50 units) and diagonal diffusion ``w3 ⊙ x + b3`` from the means and
  variances of 10 000 true trajectories at 30 times in [0, 1] (moment matching). Metric: the moment loss of
  2000 model trajectories on a fixed noise seed.
* ``digits-sde`` — scikit-learn's 8×8 digits classified through a neural SDE: the image is the state, the
  drift is the MNIST-NODE field of :class:`~sciml.neural_de.tasks.TimeConcatField`, the diffusion a bounded
  diagonal ``0.2 σ(w ⊙ x + b)``; the logits are averaged over several noise draws. Metric: test accuracy (%)
  on a fixed noise seed.

Gradients come from backpropagating through the solver (discretise-then-optimise); there is no continuous
adjoint for SDEs here, so the tasks accept ``backend="backprop"`` only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from sciml.neural_de.model import (
    NeuralODEResult,
    _check_span_grad,
    _empty_state_solution,
    _nothing_solved,
    host_times,
)
from sciml.neural_de.regularizers import check_regularizer
from sciml.problems.sde import NOISE_TYPES, SDE_TYPES, SDEProblem, spiral
from sciml.solvers.sde import METHODS, brownian_interval, default_method, get_method, single_step, solve
from sciml.solvers.sde.methods import SDESolverStats
from sciml.solvers.solution import Solution

if TYPE_CHECKING:
    from sciml.neural_de.regularizers import Regularizer

__all__ = ["NeuralSDE", "SpiralSDETask", "DigitsSDETask", "SPIRAL_SDE", "DIGITS_SDE", "spiral_moments"]


class NeuralSDE(nn.Module):
    """``dy = drift(t, y) dt + diffusion(t, y) dW`` on ``t_span``, solved adaptively on a fresh Brownian path
    per forward pass.

    Args:
        drift, diffusion: ``nn.Module``s called as ``(t, y)`` with ``y`` of shape ``(batch, d)``; the
            diffusion returns ``(batch, d)`` for diagonal noise, ``(batch, d, 1)`` for scalar noise and
            ``(batch, d, m)`` for additive noise.
        t_span: integration interval (increasing): the solve starts at ``t_span[0]`` and ends at the last
            save time (``t_span[1]`` without ``saveat``).
        noise_type, sde_type: torchsde's names: ``"diagonal"``, ``"scalar"`` or ``"additive"``, and
            ``"ito"`` or ``"stratonovich"``. General (non-commuting, ``(batch, d, m)`` state-dependent) noise
            is refused: a neural SDE is solved adaptively (the step control and the regularizers need each
            step's embedded error estimate), and :mod:`sciml.solvers.sde` has no adaptive method for it,
            only fixed-step ones (solve such an SDE with ``sciml.sdeint(..., dt=...)``).
        method: an adaptive method of :mod:`sciml.solvers.sde` (default: SOSRI for Itô diagonal/scalar
            noise, SOSRA for additive noise, Milstein for Stratonovich).
        rtol, atol: solver tolerances.
        max_steps: step limit of each solve.

    The result's ``work`` is the solve's ``stats.nfe``: every evaluation of the drift or the diffusion (as
    :class:`~sciml.neural_de.model.NeuralODE`'s is its NFE; SDE methods use no Jacobian).

    Raises:
        ValueError: general noise, a method without an error estimate or that does not fit the noise/SDE
            type (the message names the adaptive methods that do), decreasing ``t_span`` or one holding a
            tensor that requires grad.
    """

    def __init__(
        self,
        drift: nn.Module,
        diffusion: nn.Module,
        t_span: tuple[float, float] = (0.0, 1.0),
        *,
        noise_type: str = "diagonal",
        sde_type: str = "ito",
        method: str | None = None,
        rtol: float = 1e-3,
        atol: float = 1e-3,
        max_steps: int = 10_000,
    ):
        super().__init__()
        _check_span_grad(t_span, "NeuralSDE")
        if not t_span[1] > t_span[0]:
            raise ValueError(f"`t_span` must be increasing, got {t_span}")
        self.method = method or default_method(noise_type, sde_type)
        try:
            stepper = get_method(self.method, noise_type, sde_type)
        except ValueError:
            stepper = None
        if stepper is None or not stepper.adaptive:
            _check_adaptive(self.method, noise_type, sde_type, stepper is not None)
            get_method(self.method, noise_type, sde_type)  # the solver's message: the method does not fit
        self.drift, self.diffusion = drift, diffusion
        self.t_span = (float(t_span[0]), float(t_span[1]))
        self.noise_type, self.sde_type = noise_type, sde_type
        self.rtol, self.atol, self.max_steps = rtol, atol, max_steps
        self._last: tuple[SDEProblem, Any] | None = None  # problem and Brownian path of the last forward pass

    def _problem(self, y0: torch.Tensor, t_span: tuple[float, float]) -> SDEProblem:
        return SDEProblem(self.drift, self.diffusion, y0, t_span, self.noise_type, self.sde_type)

    def forward(
        self,
        y0: torch.Tensor,
        saveat: Sequence[float] | torch.Tensor | None = None,
        regularizer: Regularizer | None = None,
        *,
        entropy: int | None = None,
    ) -> NeuralODEResult:
        """Solve from ``y0`` ``(batch, d)``; return the states at ``saveat`` (default: the final time only).

        Each call draws a new Brownian path (its seed from torch's global generator, so seeded training is
        reproducible) unless ``entropy`` fixes it. In training mode the regularizer's hooks apply as for
        :class:`~sciml.neural_de.model.NeuralODE`; in eval mode it is ignored. As there, the solve starts at
        ``t_span[0]`` and ends at the last save time (STEER's end time stretches ``t_span``'s axis; the
        solve ends at the stretched last save time), and a local regularizer samples its time before it.

        Raises:
            ValueError: a regularizer that augments the state (RNODE, TayNODE: ODE baselines); a ``saveat``
                tensor that requires grad (a sample path has no derivative in time); ``saveat`` not finite.
            TypeError: ``regularizer`` neither None nor a :class:`~sciml.neural_de.regularizers.Regularizer`
                instance (e.g. the class itself).
        """
        check_regularizer(regularizer)
        if torch.is_tensor(saveat) and saveat.requires_grad:
            raise ValueError(
                "`saveat` requires grad, but a neural SDE's sample path is not differentiable in time (its "
                "Brownian part is nowhere differentiable), so the save times get no gradient; pass "
                "saveat.detach() (NeuralODE gives save times their gradient)"
            )
        t0, t1 = self.t_span
        times = [t1] if saveat is None else host_times(saveat, self.t_span)
        reg = regularizer if self.training else None
        if reg is not None and reg.augment(self.drift) is not None:
            raise ValueError(
                f"{type(reg).__name__} integrates extra ODE states; it is not defined for neural SDEs here "
                "(use the error, stiffness, local or STEER regularizers)"
            )
        end = reg.end_time(self.t_span) if reg is not None else t1
        if end != t1:  # STEER: stretch the time axis to the sampled end time
            times = [end if t == t1 else t0 + (t - t0) * (end - t0) / (t1 - t0) for t in times]  # exact end
        last = max(times)  # the solve ends at the last save time
        sample = reg.save_time((t0, last)) if reg is not None else None
        solve_times = sorted({*times, *(() if sample is None else (sample,))})
        if entropy is None:
            entropy = int(torch.randint(0, 2**31 - 1, ()))
        if last == t0:  # every save time is t0: nothing to integrate
            solution = self._initial_solution(y0, times)
            ys = solution.ys
            regularization = _nothing_solved(reg, solution.ys) if reg is not None else None
            return NeuralODEResult(ys, solution, regularization, solution.stats.nfe)
        problem = self._problem(y0, (t0, last))
        levy_area = get_method(self.method, self.noise_type, self.sde_type).levy_area
        # the Brownian path spans the whole (stretched) t_span whatever the save times, so that a fixed
        # `entropy` gives the same path for any saveat (a prefix of the save times sees a prefix of it)
        bm = brownian_interval(self._problem(y0, (t0, end)), entropy=entropy, levy_area=levy_area)
        save_steps = reg is not None and reg.needs_steps
        solution = solve(
            problem, self.method, bm=bm, rtol=self.rtol, atol=self.atol, saveat=solve_times,
            save_steps=save_steps, max_steps=self.max_steps,
        )  # fmt: skip
        self._last = (problem, bm)
        index = {t: i for i, t in enumerate(solution.ts.tolist())}
        ys = solution.ys[[index[t] for t in times]]
        regularization = reg(self, solution, solution.ys, index, sample) if reg is not None else None
        return NeuralODEResult(ys, solution, regularization, solution.stats.nfe)

    def _initial_solution(self, y0: torch.Tensor, times: list[float]) -> Solution:
        """The solution when every save time is ``t0``: ``y0`` at each (checked as a solve checks it), no
        steps, one evaluation of the drift (``+ 0·drift(t0, y0)`` keeps its parameters in the graph)."""
        problem = self._problem(y0, self.t_span)
        stats = SDESolverStats(nfe=1, nfe_drift=1)
        return _empty_state_solution(problem.drift, y0, self.t_span[0], times, stats)

    def local_error(self, t: float, y: torch.Tensor) -> torch.Tensor:
        """One differentiable step from ``(t, y)`` on the last forward pass's Brownian path: ``E · h``.

        As :meth:`NeuralODE.local_error <sciml.neural_de.model.NeuralODE.local_error>`: ``h`` is the
        solver's automatic starting step at ``(t, y)``, and neither ``y``, nor the first stage
        (``f(t, y)``, ``g(t, y)``), nor ``h`` carries gradient; the other stages do, through the parameters.
        Costs 2 evaluations for the step size plus the method's stages.

        Raises:
            RuntimeError: called before any forward pass.
        """
        if self._last is None:
            raise RuntimeError("local_error needs the Brownian path of a forward pass; call forward first")
        problem, bm = self._last
        step = single_step(problem, self.method, t, y.detach(), bm, None, rtol=self.rtol, atol=self.atol,
                           stiffness=False, detach_first_stage=True)  # fmt: skip
        return step.error_estimate * step.h


def _adaptive_methods(noise_type: str, sde_type: str) -> list[str]:
    """The methods of :mod:`sciml.solvers.sde` with an error estimate for this noise and SDE type."""
    return [
        m for m in METHODS if _fits(m, noise_type, sde_type) and get_method(m, noise_type, sde_type).adaptive
    ]


def _check_adaptive(method: str, noise_type: str, sde_type: str, fits: bool) -> None:
    """Refuse a NeuralSDE whose method has no error estimate, naming the ones that have; or, for a noise
    type without any (general noise), say why it cannot be solved here."""
    if noise_type not in NOISE_TYPES or sde_type not in SDE_TYPES:
        return  # the solver's own message names the valid types
    adaptive = _adaptive_methods(noise_type, sde_type)
    if not adaptive:
        supported = [n for n in NOISE_TYPES if _adaptive_methods(n, sde_type)]
        raise ValueError(
            f"NeuralSDE cannot solve noise_type={noise_type!r} (sde_type={sde_type!r}): it solves adaptively "
            "(the step control and the regularizers need each step's embedded error estimate), and no "
            f"adaptive method of sciml.solvers.sde handles {noise_type} noise, only fixed-step ones "
            f"({', '.join(m for m in METHODS if _fits(m, noise_type, sde_type))}). Use noise_type "
            f"{' or '.join(repr(n) for n in supported)} (e.g. a diagonal diffusion returning (batch, d)), or "
            f"solve the {noise_type}-noise SDE with fixed steps: sciml.sdeint(sde, y0, ts, dt=...)"
        )
    if fits:
        raise ValueError(
            f"method {method!r} has no error estimate; neural SDEs need an adaptive one: for {noise_type} "
            f"noise ({sde_type}) one of {adaptive}"
        )


def _fits(method: str, noise_type: str, sde_type: str) -> bool:
    try:
        get_method(method, noise_type, sde_type)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------ spiral SDE
class CubicDrift(nn.Module):
    """``W2 tanh(W1 x³ + b1) + b2``: the spiral SDE's drift model (Pal et al. 2021)."""

    def __init__(self, width: int = 50):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 2))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(y**3)


class DiagonalAffine(nn.Module):
    """``w ⊙ x + b``: a diagonal diffusion (each ``g_i`` depends on ``x_i`` only, so the noise commutes and
    the SRI methods keep their order)."""

    def __init__(self, dim: int, scale: float = 0.1):
        super().__init__()
        self.weight = nn.Parameter(torch.full((dim,), scale))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.weight * y + self.bias


def spiral_moments(n_paths: int = 10_000, n_times: int = 30, seed: int = 0) -> dict[str, np.ndarray]:
    """Means and variances of ``n_paths`` trajectories of the true spiral SDE at ``n_times`` times in
    [0, 1], from SOSRI at rtol = atol = 1e-4 (cached in HDF5)."""
    from sciml.solvers.cache import cached_arrays

    def compute() -> dict[str, np.ndarray]:
        problem = spiral(batch=n_paths)
        times = torch.linspace(0.0, 1.0, n_times, dtype=torch.float64)
        with torch.no_grad():
            ys = solve(problem, "sosri", entropy=seed, rtol=1e-4, atol=1e-4, saveat=times).ys
        return {"times": times.numpy(), "mean": ys.mean(1).numpy(), "var": ys.var(1).numpy()}

    params = {
        "problem": "spiral",
        "n_paths": n_paths,
        "n_times": n_times,
        "seed": seed,
        "solver": "sosri-1e-4",
    }
    return cached_arrays("sde-spiral-moments", params, compute)


def _task_output(loss: torch.Tensor, metric_sum: float, metric_count: int, result: NeuralODEResult):
    from sciml.neural_de.tasks import TaskOutput  # tasks.py registers this module's tasks: import late

    return TaskOutput(loss, metric_sum, metric_count, result)


class _SpiralSDEModel(nn.Module):
    def __init__(
        self, sde: NeuralSDE, moments: dict[str, np.ndarray], paths: int, test_paths: int, seed: int
    ):
        super().__init__()
        self.sde = sde
        self.register_buffer("times", torch.as_tensor(moments["times"], dtype=torch.float32))
        self.register_buffer("mean", torch.as_tensor(moments["mean"], dtype=torch.float32))
        self.register_buffer("var", torch.as_tensor(moments["var"], dtype=torch.float32))
        self.register_buffer("y0", torch.tensor([[2.0, 0.0]]))
        self.paths, self.test_paths, self.test_seed = paths, test_paths, seed

    def forward(self, batch, regularizer=None):
        # a batch is a sample index (training: a fresh noise draw of `paths` trajectories) or, at evaluation,
        # the test set: `test_paths` trajectories on a fixed noise seed
        evaluating = not self.training
        n = self.test_paths if evaluating else self.paths
        entropy = self.test_seed if evaluating else None
        result = self.sde(self.y0.expand(n, 2), saveat=self.times, regularizer=regularizer, entropy=entropy)
        loss = (result.ys.mean(1) - self.mean).pow(2).sum() + (result.ys.var(1) - self.var).pow(2).sum()
        return _task_output(loss, loss.item(), 1, result)


@dataclass(frozen=True)
class SpiralSDETask:
    """The spiral-SDE moment-matching task (see the module docstring). Fields as
    :class:`~sciml.neural_de.tasks.Task`, plus the sizes."""

    name: str
    kind: str
    metric: str
    higher_is_better: bool
    epochs: int
    batch_size: int
    lr: float
    rtol: float
    atol: float
    lr_end: float | None = None  # constant learning rate
    iterations: int = 20  # training batches per epoch
    paths: int = 100  # trajectories per training batch
    test_paths: int = 2000
    data_paths: int = 10_000
    width: int = 50

    def data(self) -> dict[str, tuple[torch.Tensor, ...]]:
        # the data are the moment targets (held by the model); the "samples" only count iterations
        return {"train": (torch.arange(self.iterations),), "test": (torch.zeros(1),)}

    def model(self, backend: str) -> nn.Module:
        _check_backend(backend)
        moments = spiral_moments(self.data_paths)
        sde = NeuralSDE(CubicDrift(self.width), DiagonalAffine(2), (0.0, 1.0), rtol=self.rtol, atol=self.atol)
        return _SpiralSDEModel(sde, moments, self.paths, self.test_paths, seed=12345)

    def plot_prediction(self, model: _SpiralSDEModel, path, title: str) -> None:
        """Means and variances of the predicted trajectories against the data's (same colour per component,
        data solid, model dashed)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from sciml.checkpoint import save_figure

        ys = model.sde(model.y0.expand(model.test_paths, 2), saveat=model.times, entropy=model.test_seed).ys
        times = model.times.numpy()
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, data, pred, what in (
            (axes[0], model.mean, ys.mean(1), "mean"),
            (axes[1], model.var, ys.var(1), "variance"),
        ):
            for i, color in enumerate(("tab:blue", "tab:orange")):
                ax.plot(times, data[:, i].numpy(), color=color, lw=2, label=f"data {what} $y_{i + 1}$")
                ax.plot(
                    times, pred[:, i].numpy(), color=color, ls="--", label=f"neural SDE {what} $y_{i + 1}$"
                )
            ax.set(xlabel="t", ylabel=what, title=f"{what} over {model.test_paths} trajectories")
            ax.legend(fontsize=8)
        fig.suptitle(title)
        fig.tight_layout()
        save_figure(fig, path)


def _check_backend(backend: str) -> None:
    if backend != "backprop":
        raise ValueError(
            f"neural SDE tasks train by backpropagating through the solver (there is no continuous adjoint "
            f"for SDEs here), got backend={backend!r}: pass --backend backprop"
        )


# ------------------------------------------------------------------------------------------ digits SDE
class BoundedDiagonalNoise(nn.Module):
    """``scale · σ(w ⊙ x + b)``: a bounded diagonal diffusion (``g_i`` depends on ``x_i`` only)."""

    def __init__(self, dim: int, scale: float = 0.2):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.scale = scale

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.sigmoid(self.weight * y + self.bias)


class _DigitsSDEClassifier(nn.Module):
    def __init__(self, sde: NeuralSDE, dim: int, classes: int, draws: int, seed: int):
        super().__init__()
        self.sde = sde
        self.classify = nn.Linear(dim, classes)
        self.draws, self.test_seed = draws, seed

    def forward(self, batch, regularizer=None):
        x, labels = batch
        k, n = self.draws, x.shape[0]
        entropy = None if self.training else self.test_seed
        result = self.sde(x.repeat(k, 1), regularizer=regularizer, entropy=entropy)
        logits = self.classify(result.ys[-1]).view(k, n, -1).mean(0)  # mean logits over the noise draws
        loss = nn.functional.cross_entropy(logits, labels)
        correct = (logits.argmax(-1) == labels).sum().item()
        return _task_output(loss, 100.0 * correct, n, result)


@dataclass(frozen=True)
class DigitsSDETask:
    """Digits classification through a neural SDE (see the module docstring). Fields as
    :class:`~sciml.neural_de.tasks.Task`, plus the sizes."""

    name: str
    kind: str
    metric: str
    higher_is_better: bool
    epochs: int
    batch_size: int
    lr: float
    rtol: float
    atol: float
    hidden: int = 100
    draws: int = 4  # noise draws per image (the logits are averaged)
    noise: float = 0.2

    def data(self) -> dict[str, tuple[torch.Tensor, ...]]:
        from sciml.neural_de.tasks import DigitsTask

        base = DigitsTask(
            "digits", "node", "accuracy", True, 1, self.batch_size, self.lr, self.rtol, self.atol
        )
        return base.data()

    def model(self, backend: str) -> nn.Module:
        from sciml.neural_de.tasks import TimeConcatField

        _check_backend(backend)
        sde = NeuralSDE(TimeConcatField(64, self.hidden), BoundedDiagonalNoise(64, self.noise), (0.0, 1.0),
                        rtol=self.rtol, atol=self.atol)  # fmt: skip
        return _DigitsSDEClassifier(sde, 64, 10, self.draws, seed=12345)


#: the registered tasks (``sciml.neural_de.tasks.TASKS["spiral-sde"]`` and ``["digits-sde"]``)
SPIRAL_SDE = SpiralSDETask("spiral-sde", "sde", "moment loss", False, epochs=10, batch_size=1, lr=2e-2,
                           rtol=1e-2, atol=1e-2)  # fmt: skip
DIGITS_SDE = DigitsSDETask("digits-sde", "sde", "accuracy", True, epochs=8, batch_size=64, lr=3e-3,
                           rtol=1e-3, atol=1e-3)  # fmt: skip
