"""Model sizes and training budgets per problem, shared by ``sciml pde`` and ``sciml bench pde``.

Three budgets per problem, the same for PINN and PIG (iterations and collocation points):

* ``default`` — calibrated to at most about three minutes of CPU time per PIG run on one core of the
  development machine (the machine was shared, so the calibration used process CPU time; the benchmark
  reports the wall and CPU times it measured);
* ``quick`` — a smoke run of a few iterations;
* ``full`` — the PIG paper's budgets (Kang et al., ICLR 2025, appendix), meant for a GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from sciml.pinn.models import PIG, PINN, Constrained
from sciml.pinn.trainer import TrainConfig
from sciml.problems.pde.problem import PDEProblem

__all__ = ["Preset", "PRESETS", "preset", "build_model", "BUDGETS", "MODELS"]

BUDGETS = ("quick", "default", "full")
MODELS = ("pinn", "pig")


@dataclass(frozen=True)
class Preset:
    """Settings for one problem.

    Attributes:
        pinn: keyword arguments of :class:`~sciml.pinn.PINN` (besides the sizes and box).
        pig: keyword arguments of :class:`~sciml.pinn.PIG`.
        train: the default budget.
        quick, full: overrides of ``train`` for the other budgets.
        hard_constraint: wrap both models in the problem's hard constraint (when it has one).
        pinn_train: overrides of ``train`` (every budget) for the PINN only, e.g. its training strategies
            where they were measured for the PINN alone.
        pig_train: the same for the PIG alone.
    """

    pinn: dict[str, Any] = field(default_factory=lambda: {"hidden": (64, 64, 64)})
    pig: dict[str, Any] = field(default_factory=lambda: {"n_gaussians": 400, "sigma": 0.1})
    train: TrainConfig = field(default_factory=TrainConfig)
    quick: dict[str, Any] = field(default_factory=dict)
    full: dict[str, Any] = field(default_factory=dict)
    hard_constraint: bool = True
    pinn_train: dict[str, Any] = field(default_factory=dict)
    pig_train: dict[str, Any] = field(default_factory=dict)

    def config(self, budget: str, model: str | None = None) -> TrainConfig:
        """The :class:`TrainConfig` of ``budget`` (``"quick"``, ``"default"`` or ``"full"``) for ``model``
        (``"pinn"``, ``"pig"``; None: the shared settings without ``pinn_train`` / ``pig_train``)."""
        if budget not in BUDGETS:
            raise ValueError(f"`budget` must be one of {BUDGETS}, got {budget!r}")
        own = {"pinn": self.pinn_train, "pig": self.pig_train}.get(model or "", {})
        train = dataclasses.replace(self.train, **own)
        if budget == "default":
            return train
        base = {"adam_iterations": 20, "lbfgs_iterations": 5, "eval_every": 10} if budget == "quick" else {}
        overrides = self.quick if budget == "quick" else self.full
        return dataclasses.replace(train, **{**base, **overrides})


_QUICK = {"n_residual": 256, "n_condition": 64}
#: the paper's budgets, as its released code runs them: 50 000 Adam steps, learning rate × 0.9 every 2000,
#: new points every 100 steps (flow mixing, Klein–Gordon, ...); Helmholtz: 2001 calls of torch's L-BFGS
#: ``step`` with its default ``max_iter=20`` — up to 40 020 iterations — on 10k + 10k points drawn anew for
#: each call
_FULL_ADAM = {"adam_iterations": 50000, "lbfgs_iterations": 0, "decay_every": 2000, "resample_every": 100}
_FULL_LBFGS = {"lbfgs_iterations": 40000, "n_residual": 10000, "n_condition": 10000, "resample_every": 20}
_ODE_PINN = {"hidden": (32, 32)}
_ODE_PIG = {"n_gaussians": 40, "sigma": 0.1}
#: smooth (polynomial) solutions want wide Gaussians: validation error (seed 1, 20 000 random points) at
#: σ = 0.1, 0.2, 0.4, 0.8 — legendre 1.5e-4, 2.0e-5, 6.0e-6, 2.6e-6; hypergeometric 1.1e-5, 1.6e-6, 8.1e-7,
#: 1.7e-6. Each takes its best width; the rest (same validation, σ fixed): legendre at σ = 0.8 with 20 / 80
#: Gaussians 1.1e-5 / 4.5e-6, at 0.4 with a 32-wide head 7.5e-6; hypergeometric at 0.4 with a 32-wide head
#: 3.3e-7 (kept), 20 / 80 Gaussians 3.4e-6 / 2.2e-6, k = 8 features 2.5e-5, L-BFGS memory 100 3.1e-6
_LEGENDRE_PIG = {"n_gaussians": 40, "sigma": 0.8}
_HYPERGEOMETRIC_PIG = {"n_gaussians": 40, "sigma": 0.4, "hidden": 32}
#: 500 Adam + 7500 L-BFGS iterations (about 40 CPU s; was 500 + 1000): once L-BFGS stopped stalling in
#: float64 (the trainer's loss rescaling), both models gained from longer runs. Validation error, seeds 3 / 4
#: / 5 (none chosen there), means at 1500 / 4000 / 8000 iterations: legendre PINN 5.1e-5 / 6.3e-6 / 4.5e-7,
#: PIG 6.6e-6 / 1.5e-6 / 7.7e-7; hypergeometric PINN 4.5e-7 / 5.0e-8 / 4.9e-8, PIG 3.4e-6 / 3.7e-7 / 4.7e-7
#: (README footnote 15). New points never or every 250 iterations (not 50) helped neither on both, at 1500.
_ODE_TRAIN = TrainConfig(
    adam_iterations=500, lbfgs_iterations=7500, lr=3e-3, n_residual=256, resample_every=50, eval_every=250,
    dtype="float64",
)  # fmt: skip

PRESETS: dict[str, Preset] = {
    "helmholtz": Preset(
        # validation error (seed 1, 20 000 random points; README footnote 11): 800 Gaussians at σ = 0.1,
        # 2500 L-BFGS iterations: 4.07e-4 (118 CPU s); per-axis widths (σ_x, σ_y) for u = sin πx sin 4πy:
        # (0.2, 0.1) 2.31e-4, (0.2, 0.08) 2.28e-4, (0.3, 0.1) 2.85e-4, (0.15, 0.1) 2.97e-4, (0.2, 0.2)
        # 1.15e-3, (0.2, 0.06) 1.67e-3; half the Gaussians, twice the iterations at (0.2, 0.1): 1.40e-4
        # (134 CPU s; the PINN's 2500: 151 CPU s); 300 with 6000: 1.33e-4 (154 s); 1200 with 2500: 2.84e-4
        # Then tail averaging (TrainConfig.average_last; README "Tail averaging"): the validation error of the
        # last iterate moves between 1.5e-4 and 6e-4 as the points are redrawn every 10 iterations; the mean
        # of the period ends over the last 20 % of the run, seeds 3 / 4 / 5: 5.68e-5 / 5.41e-5 / 5.53e-5
        # against the last iterate's 1.82e-4 / 1.12e-4 / 1.58e-4 (the same runs); over 5 % 5.78e-5 /
        # 7.37e-5 / 5.79e-5, 10 % 5.89e-5 / 7.14e-5 / 5.38e-5, 40 % 6.88e-5 / 1.01e-4 / 7.69e-5. The PINN,
        # the same seeds: last iterate 8.50e-3 / 3.20e-3 / 3.72e-3; 2 % 6.61e-3 / 1.71e-3 / 1.49e-3 (kept),
        # 5 % 8.78e-3 / 1.58e-3 / 1.92e-3, 10 % 7.43e-3 / 2.05e-3 / 1.41e-3, 20 % 8.61e-3 / 8.38e-3 / 1.79e-3
        pig={"n_gaussians": 400, "sigma": (0.2, 0.1)},
        pig_train={"lbfgs_iterations": 5000, "average_last": 0.2},
        pinn_train={"average_last": 0.02},
        train=TrainConfig(
            adam_iterations=0,
            lbfgs_iterations=2500,
            lbfgs_history=100,
            n_residual=4096,
            n_condition=1024,
            resample_every=10,
            eval_every=250,
        ),
        quick=_QUICK,
        full=_FULL_LBFGS,
    ),
    "helmholtz-high": Preset(
        # validation error (seed 1, 20 000 random points). Without a preconditioned residual the PIG's error
        # scattered without a trend (2500 Gaussians at σ = 0.03 with 300 L-BFGS iterations 0.91, 1600 with
        # 500 0.37, 0.02–0.05 0.80–8.4) and grew along longer runs (0.84 at 500 → 2.23 at 1500) while its
        # loss fell: a smooth error drifts unseen (README). With `preconditioned=100` (64² grid): 2500 at
        # 0.03, 300 iterations 0.165 (weights 10 / 1000: 0.177 / 0.177); 1600 with 800 0.133, at σ = 0.04
        # 0.137, 1000 at σ = 0.05 with 1000 0.174; 1600 with 1000 and L-BFGS memory 100 / 200 / 500 / 1000:
        # about 0.12 / 0.111 / 0.098 / 0.095 (the last 195 CPU s). Without the pointwise residual 0.255. The
        # PINN: 2.11 without, 1.00 with it (the zero function: L-BFGS stops after 56 iterations)
        pig={"n_gaussians": 1600, "sigma": 0.03},
        pig_train={"lbfgs_iterations": 1000, "lbfgs_history": 1000, "n_residual": 4096},
        train=TrainConfig(
            adam_iterations=0,
            lbfgs_iterations=300,
            lbfgs_history=100,
            n_residual=8192,
            n_condition=1024,
            resample_every=10,
            eval_every=100,
            preconditioned=100.0,
            preconditioned_points=64,
        ),
        quick={**_QUICK, "preconditioned_points": 16},
        full=_FULL_LBFGS,
    ),
    "klein-gordon": Preset(
        # validation error (20 000 random points, README footnote 5): the paper's 100 Gaussians at σ = 0.5
        # gave seed 1 2.12e-2 (97 CPU s), the error growing with t and the trained widths near 0.85 in x, y
        # and 0.32 in t; 400 Gaussians at σ = (0.6, 0.6, 0.2) give seeds 0 / 1 / 2 1.87e-3 / 2.19e-3 /
        # 2.45e-3 (155–170 CPU s). Not kept (seed 1): 200 at 0.5 1.30e-2, 400 at 0.5 1.14e-2, 400 at 0.3
        # 8.2e-3, 400 at 0.2 2.28e-2, 800 at 0.3 1.24e-2, causal weighting (16 chunks) 3.43e-2, two
        # time-marching windows 2.45e-2, RAD 1.88e-2 (200 with RAD 4.86e-3). Later, RAD (k = 1, c = 1) at the
        # preset: PIG seeds 0 / 1 / 2 2.07e-3 / 1.64e-3 / 2.16e-3 (preset 1.87e-3 / 2.19e-3 / 2.45e-3), PINN
        # seed 1 4.99e-3 (about 5.9e-3): both gain alike, the ratio stays, not kept
        pig={"n_gaussians": 400, "sigma": (0.6, 0.6, 0.2)},
        train=TrainConfig(
            adam_iterations=2000,
            lbfgs_iterations=6000,
            lbfgs_history=100,
            lr=1e-2,
            decay_every=1000,
            n_residual=2048,
            n_condition=512,
            resample_every=100,
            eval_every=1000,
        ),
        quick=_QUICK,
        full=_FULL_ADAM,
    ),
    "flow-mixing": Preset(
        # the PINN's residual needs only first derivatives (u_t, u_x, u_y): one reverse pass gives all three,
        # while forward jets carry three tangents through every layer. One Adam step (2048 + 2 × 512
        # points, one thread): jets 26.1 ms, autograd 14.3 ms (DeepXDE's 15.4 ms); the PIG's jets stay
        # faster (27.7 against 39.4 ms). Validation error (seed 1, 20 000 random points, not the test grid):
        # the previous 6000 Adam steps by jets 4.45e-2 (171 CPU s); by autograd, 11 000 steps 4.02e-2
        # (205 CPU s on a loaded machine; 10 000 kept, for the CPU time); RWF with 9500 steps 5.20e-2, RWF
        # and 1024 residual points with 13 000 steps 4.54e-2 (not kept). At 10 000 Adam + 500 L-BFGS the
        # error was still falling and the 500 L-BFGS iterations (14 CPU s) took it from 5.18e-2 to 4.67e-2,
        # so the PINN now spends more of its time in L-BFGS, as DeepXDE's does: validation (seed 1, the
        # same run) 7000 Adam + 2000 L-BFGS 3.55e-2 (218 CPU s on a machine at load 3; Adam 7000 took
        # 167 s there against 131 s at load 1) against 10 000 + 500 4.67e-2 (200 CPU s, load 1);
        # time-marching over 2 windows 4.74e-2 and causal weighting over 16 chunks 4.86e-2 (not kept). With
        # RAD (below) the PINN's 77 CPU s fell short of the PIG's 119, so it took 1.5× the iterations,
        # 10 500 + 3000 (validation seeds 1 / 2: 2.19e-2 / 2.23e-2 → 1.73e-2 / 1.52e-2, 110 CPU s); when the
        # PIG's feature vectors grew to 8 (below, ~175 CPU s), the PINN got 1.33× its iterations again (with
        # 12 000 + 3500 at 152 s: seeds 0 / 1 / 2 1.32e-2 / 1.74e-2 / 1.19e-2 on the test grid, README ⁹).
        # Then, along one run of 14 000 Adam + 8000 L-BFGS (seed 4), the error still fell steeply in L-BFGS
        # (9.4e-3 at 18 000, 5.9e-3 at 22 000), so the same CPU time moved from Adam to L-BFGS, chosen on
        # validation seeds 3 / 4 (no setting of either model was chosen on them): 10 000 + 6000 8.34e-3 /
        # 7.64e-3 (~150 CPU s, kept), 6000 + 8000 9.48e-3 / 8.59e-3, 14 000 + 4000 (before) – / 9.38e-3
        pinn_train={"engine": "autograd", "adam_iterations": 10000, "lbfgs_iterations": 6000},
        # PIG: per-axis widths (x, y, t), chosen on validation (20 000 random points; README footnote 9):
        # σ = (0.25, 0.25, 0.8) gives seeds 0 / 1 / 2 8.56e-3 / 8.38e-3 / 1.50e-2 against σ = 0.1's 4.28e-2
        # (seed 1); not kept (seed 1): (0.1, 0.1, 0.3) 3.36e-2, (0.15, 0.15, 0.4) 2.63e-2, (0.2, 0.2, 0.5)
        # 2.57e-2, (0.4, 0.4, 1.2) 1.24e-2, (0.25, 0.25, 1.6) 8.77e-3, 1000 at (0.1, 0.1, 0.3) 2.89e-2.
        # The shared 6000 Adam + 500 L-BFGS (8.38e-3, 95 CPU s) moved to 2000 + 4000: 4.45e-3 (118 s); not
        # kept (seed 1): 3000 + 3000 4.88e-3, 4000 + 2000 6.49e-3, 1000 + 5000 6.64e-3; with 2000 + 4000, 700
        # Gaussians 5.47e-3, 300 2.52e-2, σ = (0.3, 0.3, 0.8) 6.45e-3; 250 with 12 000 Adam 1.05e-2, 250 with
        # 6000 + 3000 1.25e-2, 1000 with 3000 + 500 1.50e-2. Then, on validation seeds 1 / 2 (README
        # footnote 9 lists what was not kept): RAD with k = 2, c = 0 for both models (PIG 4.45e-3 / 1.41e-2
        # → 2.29e-3 / 4.67e-3, PINN seed 1 3.48e-2 → 2.19e-2); the PIG's points redrawn every 200
        # iterations (2.10e-3 / 3.59e-3; the PINN is worse with 200 and keeps 100); 600 Gaussians
        # (2.15e-3 / 2.22e-3, 122 CPU s). Then L-BFGS memory 300 for both models (not 100): PIG 1.57e-3 /
        # 1.61e-3 (143 CPU s; memory 1000: 1.75e-3 / 1.64e-3 in 181 / 213 s), PINN 1.43e-2 / 1.46e-2 (139 s).
        # Then 8-dimensional Gaussian feature vectors (not 4), seeds 0 / 1 / 2: 2.34e-3 / 1.57e-3 / 1.61e-3 →
        # 1.79e-3 / 1.29e-3 / 1.40e-3 (~172 CPU s); not kept: 16 (seeds 1 / 2: 1.13e-3 / 1.58e-3, 200 s; with
        # 3000 L-BFGS 1.33e-3 / 1.66e-3, 160 s; 450 Gaussians seed 1 1.49e-3), 8 with 500 Gaussians (seed 1:
        # 2.22e-3), a 32-wide head (1.52e-3 / 3.59e-3), full covariances (1.70e-3 / 1.89e-3, 187 s); seeds
        # 0 / 1 with 3500 L-BFGS: 12 features 1.71e-3 / 1.28e-3 (179 s), 8 with 800 Gaussians 1.51e-3 /
        # 2.04e-3 (194 s), L-BFGS memory 500 1.70e-3 / 1.50e-3 (200 s). With 8 features, narrower Gaussians in
        # space, σ = (0.2, 0.2, 0.8): seeds 0 / 1 / 2 1.30e-3 / 1.30e-3 / 1.32e-3 (~170 s; kept); (0.15, 0.15,
        # 0.8) seed 0 1.84e-3. On seeds 3 / 4 / 5, where nothing was chosen: 1.51e-3 / 1.34e-3 / 1.76e-3; none
        # of the variants tried later beat that there (new points every 400 / 800 iterations, 1024 condition
        # points, σ_t = 1.2, 4096 residual points, causal weighting, RAD k = 1, c = 1; README ⁹). Then tail
        # averaging over the last 20 % (seeds 3 / 4 / 5: 1.23e-3 / 1.21e-3 / 1.56e-3 against the last
        # iterate's 1.51e-3 / 1.34e-3 / 1.76e-3 in the same runs; 5 % 1.33e-3 / 1.23e-3 / 1.53e-3, 10 %
        # 1.27e-3 / 1.22e-3 / 1.54e-3, 40 % 1.52e-3 / 1.90e-3 / 2.05e-3). Not for the PINN: last iterate
        # 8.34e-3 / 7.64e-3 / 9.30e-3, 2 % 8.39e-3 / 8.54e-3 / 9.74e-3, and worse over longer tails
        pig={"n_gaussians": 600, "sigma": (0.2, 0.2, 0.8), "feature_dim": 8},
        pig_train={
            "adam_iterations": 2000,
            "lbfgs_iterations": 4000,
            "resample_every": 200,
            "average_last": 0.2,
        },
        train=TrainConfig(
            adam_iterations=6000,
            lbfgs_iterations=500,
            lbfgs_history=300,
            lr=1e-2,
            decay_every=500,
            n_residual=2048,
            n_condition=512,
            resample_every=100,
            eval_every=500,
            rad=True,
            rad_k=2.0,
            rad_c=0.0,
        ),
        quick=_QUICK,
        full=_FULL_ADAM | {"n_residual": 10000, "n_condition": 2000},
    ),
    "nonlinear-diffusion": Preset(
        # validation error (seed 1, 20 000 points of a finer reference solve at times off the test grid;
        # README footnote 12): 800 Gaussians at σ = 0.1: 1.69e-2 (103 CPU s); per-axis widths (σ_x, σ_y, σ_t):
        # (0.2, 0.2, 0.8) 4.08e-3, (0.2, 0.2, 1.2) 5.55e-3, (0.15, 0.15, 0.8) 5.84e-3, (0.2, 0.2, 0.5)
        # 6.02e-3, (0.25, 0.25, 0.8) 6.33e-3, (0.1, 0.1, 0.5) 6.38e-3, (0.1, 0.1, 0.3) 9.05e-3, (0.08, 0.08,
        # 0.3) 9.85e-3, (0.3, 0.3, 0.5) 1.11e-2, (0.2, 0.2, 0.3) 1.30e-2; 400 Gaussians at (0.2, 0.2, 0.8)
        # with 2000 L-BFGS iterations instead of 1000: 2.95e-3 (121 CPU s); with 2000 Adam steps: 3.39e-3
        pig={"n_gaussians": 400, "sigma": (0.2, 0.2, 0.8)},
        pig_train={"lbfgs_iterations": 2000},
        train=TrainConfig(
            adam_iterations=1000,
            lbfgs_iterations=1000,
            lbfgs_history=100,
            lr=1e-2,
            decay_every=500,
            n_residual=4096,
            n_condition=1024,
            resample_every=100,
            eval_every=500,
        ),
        quick=_QUICK,
        full=_FULL_ADAM,
    ),
    "allen-cahn": Preset(
        # measured (OMP_NUM_THREADS=1, seed 0, chosen on a 320 × 126 validation grid of the reference):
        # periodic embedding + causal weighting + RAD, Adam only, 2000 steps on 4096 points: 4.9e-2 in
        # 102 CPU s; then 2048 points (twice the steps per second), random weight factorisation and a
        # faster learning-rate decay: 7.3e-3 in 5000 steps, 173 CPU s; time-marching over 2 / 4 / 8 windows
        # (same steps): 6.4e-3 / 3.5e-3 / 2.9e-3 (README, training strategies), with the later windows' factor
        # as it was before it was stretched to the window's length (then seeds 3 / 4 at 8 windows: 8.20e-3 /
        # 4.83e-3 → 5.18e-3 / 3.19e-3; chosen again with it: 4 windows 3.12e-3 / 6.01e-3, 16 windows 1.47e-2 /
        # 0.113, so 8 stayed)
        pinn={"hidden": (64, 64, 64), "periodic": (0,), "rwf": True},
        pinn_train={
            "adam_iterations": 5000,
            "lbfgs_iterations": 0,
            "n_residual": 2048,
            "lr_decay": 0.8,
            "causal_chunks": 32,
            "rad": True,
            "time_windows": 8,
        },
        # PIG (same validation grid, seed 0): the PINN's causal weighting + RAD, Adam only, on 1024 points:
        # 3.2e-2 in 7000 steps, 157 CPU s (the shared schedule below: 0.36); 600 or 1500 Gaussians, lr 2e-2
        # or causal ε 0.3 were not better (README, footnote ¹ of the suite table). Per-axis widths (x, t) on
        # another machine (σ = 0.05 there: 4.20e-2): (0.03, 0.3) 6.24e-3 (kept); (0.02, 0.3) 1.63e-2,
        # (0.03, 0.2) 9.76e-3, (0.05, 0.2) 1.68e-2, (0.05, 0.4) 1.07e-2, (0.05, 0.8) 2.46e-2,
        # (0.08, 0.3) 1.42e-2. Then tail averaging, on finer validation of seeds 3 / 4 / 5 (every fraction
        # from the same run): last iterate 5.63e-3 / 7.10e-3 / 8.58e-3, 5 % 4.80e-3 / 6.05e-3 / 7.26e-3
        # (kept), 10 % 4.61e-3 / 5.39e-3 / 8.41e-3, 20 % 4.69e-3 / 4.78e-3 / 9.37e-3, 40 % 5.38e-3 / 9.19e-3 /
        # 1.46e-2; on the test grid it gained nothing (README ¹)
        pig={"n_gaussians": 1000, "sigma": (0.03, 0.3)},
        pig_train={
            "adam_iterations": 7000,
            "lbfgs_iterations": 0,
            "n_residual": 1024,
            "lr_decay": 0.8,
            "decay_every": 700,
            "causal_chunks": 32,
            "rad": True,
            "average_last": 0.05,
        },
        train=TrainConfig(
            adam_iterations=1000,
            lbfgs_iterations=500,
            lbfgs_history=100,
            lr=1e-2,
            decay_every=500,
            n_residual=4096,
            n_condition=512,
            resample_every=100,
            eval_every=500,
        ),
        quick=_QUICK,
        # --full, PIG (the PINN has 2048 already): 2048 points instead of 1024, chosen on finer validation
        # of seeds 3 / 4: 4.31e-4 / 4.67e-4 against 1.15e-3 / 1.06e-3 (README, "--full on the CPU")
        full=_FULL_ADAM | {"n_residual": 2048},
    ),
    "burgers": Preset(
        # PIG: lr_decay 0.5 (×0.5 every 500 Adam steps, not ×0.9), chosen on validation errors (320 × 126
        # finer reference grid, not the test grid), seeds 0 / 1 / 2: 1.05e-2 / 4.8e-3 / 1.26e-2 (mean 9.3e-3)
        # against ×0.9's 4.4e-2 / 1.10e-2 / 1.09e-2 (mean 2.2e-2). Tried and not kept (seed 0): lr 3e-3 + new
        # points every 500: 0.24; lr 5e-3 decayed every 250 + every 500: 0.21; lr_decay 0.5 + every 250:
        # 9.0e-2 (seed 1: 0.12); lr 5e-3 (every 100): 7.3e-2 (README, footnote 6). Later, on an AVX-512 CPU:
        # RAD (k = 1, c = 1) for the PIG only, chosen on the same validation over 3 seeds (footnote 6). Then
        # an L-BFGS memory of 300 for the PIG (seeds 0 / 1 / 2: 1.74e-2 / 1.94e-2 / 5.95e-3 → 1.13e-2 /
        # 1.40e-2 / 2.84e-3); not for the PINN (1.99e-2 / 1.04e-2 / 7.62e-3 → 2.75e-2 / 5.73e-3 / 2.07e-2).
        # The memory made the PIG's run 1.2-1.3× the PINN's CPU time; the PINN's error still falls in L-BFGS
        # (seed 3, finer validation: 2.49e-2 at 3000 iterations, 5.3e-3 at 4000, then 3e-3 – 1e-2), so it
        # takes 2300 L-BFGS iterations, about the PIG's CPU time: seeds 3 / 4 / 5 1.19e-2 / 9.66e-3 / 6.15e-3
        # against 1500's 2.49e-2 / 1.27e-2 / 1.37e-2 (README ⁶). Then per-axis PIG widths (x, t), narrow in x
        # for the shock and wide in t, as on Allen–Cahn and flow mixing, on finer validation seeds 3 / 4 / 5
        # (last iterates; σ = 0.05 on every axis: 3.00e-2 / 4.93e-3 / 3.08e-3): (0.1, 0.2) 5.67e-3 / 6.94e-4 /
        # 1.00e-3, (0.05, 0.2) 1.69e-3 / 2.18e-3 / 3.28e-3; seed 3 only: (0.03, 0.2) 1.93e-3, (0.15, 0.2)
        # 2.25e-3, (0.1, 0.3) 6.47e-3, (0.05, 0.5) 3.08e-3, (0.1, 0.5) 2.90e-3, (0.2, 0.2) 1.26e-2. At (0.1,
        # 0.2) the last iterate still scatters between redraws (seed 3: 5.67e-3), so both models average the
        # last 20 % of their iterates (sciml/pinn/strategies.TailAverage), chosen on the same seeds from the
        # same runs: PIG 1.60e-3 / 6.80e-4 / 1.19e-3 (5 % 1.74e-3 / 1.03e-3 / 1.17e-3, 10 % 2.32e-3 / 5.90e-4
        # / 9.38e-4, 40 % 3.97e-3 / 1.02e-3 / 2.57e-3), PINN 8.43e-3 / 6.28e-3 / 6.52e-3 against its last
        # iterate's 1.19e-2 / 9.66e-3 / 6.15e-3 (5 % 1.09e-2 / 2.24e-2 / 7.95e-3, 10 % 1.10e-2 / 1.50e-2 /
        # 4.87e-3, 40 % 5.85e-2 / 1.46e-2 / 1.17e-2). Not kept (seeds 3 / 5, 20 %): new points every 200
        # (5.88e-3 / 1.68e-2), 1500 Gaussians (1.13e-3 / 9.70e-4 at 1.45× the CPU time)
        pinn_train={"lbfgs_iterations": 2300, "average_last": 0.2},
        pig={"n_gaussians": 1000, "sigma": (0.1, 0.2)},
        pig_train={"lr_decay": 0.5, "rad": True, "lbfgs_history": 300, "average_last": 0.2},
        train=TrainConfig(
            adam_iterations=1500,
            lbfgs_iterations=1500,
            lbfgs_history=100,
            lr=1e-2,
            decay_every=500,
            n_residual=4096,
            n_condition=512,
            resample_every=100,
            eval_every=500,
        ),
        quick=_QUICK,
        full=_FULL_ADAM,
    ),
    "poisson": Preset(
        # validation error (seed 1, random points): σ = 0.1: 1.7e-3, 0.2: 1.1e-4, 0.3: 1.1e-4 (smooth u);
        # at σ = 0.3, new points every 50 L-BFGS iterations instead of 10: 5.6e-5 (50 CPU s); float64: 1.1e-4.
        # Later (seed 1, same validation, README "Poisson at 10×"): float32 runs stop near 2000 iterations
        # ("no decrease after 3 memory resets", the loss's round-off floor) at 5.3e-5 (24 CPU s); float64 with
        # 4000: 2.9e-5 (91 s), residual weight 1e-4 too: 2.9e-5 (97 s), 1e-5: 6.2e-5, 8192 + 2048 points:
        # 1.7e-5 (298 s); new points every 200: 3.1e-5, σ = (0.3, 0.2): 3.1e-5, 600 Gaussians: 2.6e-5 (116 s),
        # Sobol points: 3.0e-5 (float32: 5.05e-5)
        pig={"n_gaussians": 400, "sigma": 0.3},
        pig_train={"resample_every": 50},
        train=TrainConfig(
            adam_iterations=0,
            lbfgs_iterations=2000,
            lbfgs_history=100,
            n_residual=2048,
            n_condition=512,
            resample_every=10,
            eval_every=250,
        ),
        quick=_QUICK,
        full={"lbfgs_iterations": 2000, "n_residual": 10000, "n_condition": 10000},
    ),
    "legendre": Preset(pinn=_ODE_PINN, pig=_LEGENDRE_PIG, train=_ODE_TRAIN, quick=_QUICK),
    # one fixed set of points (no redraws), for both models: validation seeds 3 / 4 / 5 at 8000
    # iterations, PINN 9.4e-9 / 1.3e-7 / 5.9e-9 → 1.4e-8 / 9.9e-9 / 8.2e-9, PIG 1.1e-6 / 2.3e-7 / 9.9e-8 →
    # 5.0e-8 / 3.7e-8 / 1.2e-7 (PIG σ = 0.8: 2.9e-7 / 5.1e-8 / 3.0e-7, a 16-wide head: 7.2e-8 / 7.7e-9 /
    # 5.0e-7); on Legendre both were worse without redraws (PINN 2.0e-6 / 2.0e-6 / 5.3e-7, PIG 7.1e-7 /
    # 5.6e-7 / 1.8e-6)
    "hypergeometric": Preset(
        pinn=_ODE_PINN, pig=_HYPERGEOMETRIC_PIG, train=_ODE_TRAIN.replace(resample_every=0), quick=_QUICK
    ),
    # singular ODEs of gravitation (sciml.problems.pde.singular): L-BFGS does the work, float64
    "accretion": Preset(
        pinn=_ODE_PINN,
        pig=_ODE_PIG,
        train=_ODE_TRAIN.replace(lbfgs_iterations=3000, n_residual=512),
        quick=_QUICK,
    ),
    "khronon": Preset(
        pinn=_ODE_PINN,
        pig=_ODE_PIG,
        train=_ODE_TRAIN.replace(lbfgs_iterations=4000, n_residual=512),
        quick=_QUICK,
    ),
}


def preset(name: str | PDEProblem) -> Preset:
    """The preset of a suite problem (a generic one for problems without their own).

    Args:
        name: a suite problem's name, or a :class:`PDEProblem`. A problem gets the suite preset only when
            it *is* the registered suite problem of its name (the same fingerprint: domain, residual,
            conditions, coefficients, ...); a user's problem that merely shares the name (a non-periodic
            problem called ``"allen-cahn"``) gets the generic preset, not the suite's periodic network and
            training strategies.

    Returns:
        The :class:`Preset`.
    """
    generic = Preset(quick=_QUICK)
    if not isinstance(name, PDEProblem):
        return PRESETS.get(name, generic)
    problem = name
    if problem.name not in PRESETS:
        return generic
    from sciml.problems.pde import get

    try:
        registered = get(problem.name)
    except (KeyError, ValueError):  # a preset without a registered problem: keyed by name alone
        return PRESETS[problem.name]
    if registered is problem or registered.fingerprint() == problem.fingerprint():
        return PRESETS[problem.name]
    return generic


def build_model(
    problem: PDEProblem, kind: str, settings: Preset | None = None, *, seed: int = 0
) -> nn.Module:
    """A PINN or PIG for ``problem`` with the preset's sizes, wrapped in its hard constraint if any.

    Raises:
        ValueError: an unknown ``kind``.
    """
    if kind not in MODELS:
        raise ValueError(f"`model` must be one of {MODELS}, got {kind!r}")
    settings = settings or preset(problem.name)
    generator = torch.Generator().manual_seed(int(seed))
    hard = settings.hard_constraint and problem.constraint is not None
    outputs = Constrained.outputs(problem.constraint if hard else None, len(problem.fields))
    sizes = dict(in_features=problem.domain.ndim, out_features=outputs)
    box = dict(lower=problem.domain.lower, upper=problem.domain.upper, generator=generator)
    if kind == "pinn":
        model: nn.Module = PINN(**sizes, **settings.pinn, **box)
    else:
        model = PIG(**sizes, **settings.pig, **box)
    if hard:
        model = Constrained(model, problem.constraint)
    return model
