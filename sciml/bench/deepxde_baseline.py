"""DeepXDE (PyTorch backend) as a side-by-side baseline for ``sciml bench pde``.

DeepXDE (Lu, Meng, Mao & Karniadakis, *DeepXDE: a deep learning library for solving differential
equations*, SIAM Review 2021) trains its own fully connected tanh network (``dde.nn.FNN``, Glorot normal,
inputs mapped to [−1, 1] by a feature transform, the problem's hard constraint as an output transform when
the suite uses one) with its own ``Model``: Adam, then its L-BFGS. The loss terms are the suite problem's
— residual and conditions with the same weights, evaluated through a ``dde.data.Data`` subclass on the
same collocation counts, resampled as often — so the comparison is of the training machinery and network,
on exactly the same problem. Training stops at a CPU-time budget (a DeepXDE callback), the Adam phase
taking the share of the budget that Adam has in the suite preset; the error is measured on the same
reference grid as ours.

DeepXDE is optional (the ``bench`` extra); :func:`available` says whether it can be imported.
"""

from __future__ import annotations

import math
import os
import random
import time
from typing import Any

import numpy as np
import torch

from sciml.problems.pde.derivatives import AutogradDerivatives, Derivatives

__all__ = ["available", "train_deepxde"]


def available() -> str | None:
    """``None`` if DeepXDE imports with the PyTorch backend, else the reason it does not."""
    os.environ.setdefault("DDE_BACKEND", "pytorch")
    try:
        import deepxde  # noqa: F401
    except ImportError as exc:
        return f"deepxde is not installed ({exc}); `pip install deepxde` (or the `bench` extra) adds it"
    if deepxde.backend.backend_name != "pytorch":
        return f"deepxde runs on its {deepxde.backend.backend_name!r} backend; set DDE_BACKEND=pytorch"
    return None


class _Given(AutogradDerivatives):
    """Derivatives of given outputs with respect to given inputs (the graph DeepXDE built)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, names, fields) -> None:
        Derivatives.__init__(self, x, names, fields)
        self._fn = None
        self._value = y if y.ndim == 2 else y[:, None]
        self._grads = {}


class _Rows(Derivatives):
    """Rows ``beg:end`` of a :class:`_Given` (one loss term's points inside DeepXDE's single batch)."""

    def __init__(self, full: _Given, beg: int, end: int) -> None:
        super().__init__(full.x[beg:end], full.names, full.fields)
        self._full, self._beg, self._end = full, beg, end

    def value(self) -> torch.Tensor:
        return self._full.value()[self._beg : self._end]

    def derivative(self, field: int, dims: tuple[int, ...]) -> torch.Tensor:
        return self._full.derivative(field, dims)[self._beg : self._end]


def train_deepxde(trainer, hidden: tuple[int, ...], cpu_budget: float, seed: int) -> dict[str, Any]:
    """Train DeepXDE on ``trainer``'s problem, points and weights for ``cpu_budget`` CPU seconds.

    DeepXDE configures the process as a whole (``set_default_float`` sets torch's default dtype,
    ``set_random_seed`` reseeds Python, NumPy and torch); both are put back on return, so the models a
    benchmark builds after this baseline start as they would without it.

    Args:
        trainer: a :class:`~sciml.pinn.Trainer` of the suite problem (its sampler, conditions, weights,
            hard constraint, reference grid and configuration are used; its own model is not trained).
        hidden: widths of DeepXDE's network.
        cpu_budget: process CPU seconds for the whole training.
        seed: DeepXDE's random seed (network initialisation).

    Returns:
        ``{"rel_l2", "iterations", "adam_iterations", "lbfgs_iterations", "cpu_seconds", "params",
        "message", "draws", "net"}`` (``iterations`` = Adam + L-BFGS iterations, ``draws`` how often the
        points were drawn, ``net`` DeepXDE's trained network with its input and output transforms).

    Raises:
        ImportError: DeepXDE is missing (call :func:`available` first).
    """
    reason = available()
    if reason is not None:
        raise ImportError(reason)
    dtype = torch.get_default_dtype()
    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    try:
        return _train(trainer, hidden, cpu_budget, seed)
    finally:
        torch.set_default_dtype(dtype)
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])


def _train(trainer, hidden: tuple[int, ...], cpu_budget: float, seed: int) -> dict[str, Any]:
    """:func:`train_deepxde`'s training, which leaves DeepXDE's process-wide settings behind."""
    import deepxde as dde

    problem, cfg = trainer.problem, trainer.config
    names, fields = problem.domain.names, problem.fields
    dde.config.set_random_seed(int(seed))
    dde.config.set_default_float(cfg.dtype)
    terms = ["residual", *(c.name for c in trainer.conditions)]

    class SuiteData(dde.data.Data):
        """The suite's points, redrawn at the same iterations as ours (every ``resample_every``)."""

        def __init__(self) -> None:
            self.X, self.offsets, self.block, self.draws = None, None, None, 0
            self.model = None  # set once DeepXDE's Model exists: its step count decides the redraws

        def _draw(self) -> None:
            points = trainer._adapt(trainer.sample())
            parts = [points[t].detach().cpu().numpy() for t in terms]
            self.offsets = np.cumsum([0] + [len(p) for p in parts])
            self.X = np.concatenate(parts)
            self.draws += 1

        def train_next_batch(self, batch_size=None):
            # DeepXDE asks for a batch before every Adam step but only once per L-BFGS ``step`` (of
            # ``iter_per_step`` iterations): the iteration count, not the number of calls, says when
            step = int(self.model.train_state.step) if self.model is not None else 0
            block = step // cfg.resample_every if cfg.resample_every else 0
            if self.X is None or block != self.block:
                self._draw()
                self.block = block
            return self.X, None, None

        def test(self):
            if self.X is None:
                self._draw()
            return self.X, None, None

        def losses(self, targets, outputs, loss_fn, inputs, model, aux=None):
            full = _Given(inputs, outputs, names, fields)
            params, out = trainer.params(), []
            for k, term in enumerate(terms):
                d = _Rows(full, int(self.offsets[k]), int(self.offsets[k + 1]))
                if term == "residual":
                    r = problem.residual(d.x, d, params)
                else:
                    c = trainer.conditions[k - 1]
                    r = c.residual(problem.domain, d.x, d, params)
                out.append((r**2).mean())
            return out

    ndim, n_fields = problem.domain.ndim, len(fields)
    constraint = getattr(trainer.model, "constraint", None)
    corner = getattr(constraint, "corner", None)
    # our hard constraint as DeepXDE's output transform: u = g + h·N (+ corner·N₂ on re-entrant corners,
    # with twice the outputs), as sciml.pinn.Constrained builds it
    n_out = 2 * n_fields if corner is not None else n_fields
    net = dde.nn.FNN([ndim, *hidden, n_out], "tanh", "Glorot normal")
    lower = torch.tensor(problem.domain.lower, dtype=trainer.dtype)
    upper = torch.tensor(problem.domain.upper, dtype=trainer.dtype)
    net.apply_feature_transform(lambda x: 2 * (x - lower) / (upper - lower) - 1)
    if constraint is not None:

        def column(v, x):
            v = x.new_full((x.shape[0],), float(v)) if isinstance(v, (int, float)) else v
            return v[:, None] if v.ndim == 1 else v

        # trainable scalars of the ansatz (if any), trained with DeepXDE's network
        net.ansatz_scalars = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(torch.tensor(float(v), dtype=trainer.dtype))
             for k, v in constraint.parameters.items()}
        )  # fmt: skip
        particular, factor = constraint.bind(dict(net.ansatz_scalars))

        def transform(x, y):
            u = column(particular(x), x) + column(factor(x), x) * y[:, :n_fields]
            if corner is not None:
                u = u + column(corner(x), x) * y[:, n_fields:]
            return u

        net.apply_output_transform(transform)

    class Deadline(dde.callbacks.Callback):
        def __init__(self, deadline: float) -> None:
            super().__init__()
            self.deadline = deadline

        def on_batch_end(self) -> None:
            if time.process_time() >= self.deadline:
                self.model.stop_training = True

    data = SuiteData()
    model = dde.Model(data, net)
    data.model = model
    weights = [trainer.weights[t] for t in terms]
    start = time.process_time()
    adam_share = cfg.adam_iterations / max(cfg.iterations, 1)
    iterations = 0
    if adam_share > 0:
        # our schedule lr · lr_decay^(step / decay_every), as DeepXDE's step decay (StepLR)
        decay = ("step", cfg.decay_every, cfg.lr_decay) if cfg.lr_decay != 1 else None
        model.compile("adam", lr=cfg.lr, loss_weights=weights, decay=decay)
        model.train(iterations=10**7, display_every=10**7, verbose=0,
                            callbacks=[Deadline(start + adam_share * cpu_budget)])  # fmt: skip
        iterations = int(model.train_state.step)
    adam_steps = iterations
    if adam_share < 1:
        dde.optimizers.config.set_LBFGS_options(maxiter=10**7, ftol=0, gtol=0)
        # DeepXDE's PyTorch L-BFGS runs ``iter_per_step`` iterations (1000) between callbacks: fewer, so
        # that the CPU-time deadline is kept and the points are redrawn at our iterations (a divisor of
        # ``resample_every``; at least 2, since DeepXDE reads a step of one iteration as converged)
        per_step = max(2, math.gcd(cfg.resample_every, 10)) if cfg.resample_every else 10
        dde.optimizers.config.LBFGS_options["iter_per_step"] = per_step
        dde.optimizers.config.LBFGS_options["fun_per_step"] = per_step * 25
        model.compile("L-BFGS", loss_weights=weights)
        model.train(display_every=10**7, verbose=0, callbacks=[Deadline(start + cpu_budget)])
        iterations = int(model.train_state.step)
    cpu = time.process_time() - start
    x = trainer._test_x.detach().cpu().numpy()
    pred = torch.as_tensor(model.predict(x), dtype=torch.float64, device=trainer._test_u.device)
    pred = pred.reshape(trainer._test_u.shape)
    rel = float(torch.linalg.norm(pred - trainer._test_u) / torch.linalg.norm(trainer._test_u))
    n_params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    lbfgs_steps = iterations - adam_steps
    message = (
        f"deepxde {dde.__version__}: {adam_steps} Adam + {lbfgs_steps} L-BFGS iterations in {cpu:.1f} CPU s, "
        f"points drawn {data.draws} times"
    )
    return {"rel_l2": rel, "iterations": iterations, "adam_iterations": adam_steps,
            "lbfgs_iterations": lbfgs_steps, "cpu_seconds": cpu, "params": n_params,
            "message": message, "draws": data.draws, "net": net}  # fmt: skip
