"""Training a DCDM network: Lanczos right-hand sides on random layouts, the scale-invariant loss, Adam.

Kaneda et al. (ICML 2023) train on one domain for days; we train the few-parameter multigrid network
(:class:`~sciml.dcdm.network.MultigridNet`) on many small random layouts (64² by default) in minutes, so
that it generalises to unseen layouts and larger grids. The run writes into ``out``:

* ``checkpoint.pt`` — model, optimiser, scheduler and RNG state, atomically every ``checkpoint_every``
  steps; ``resume=True`` continues from it, bit for bit as if never interrupted (every field of the
  configuration must match except :data:`RESUMABLE_FIELDS`); without ``resume`` an ``out`` that already
  holds a run (:data:`RUN_FILES`) is refused rather than overwritten;
* ``model.pt`` — the trained model (:meth:`DCDM.save`), ``model.json`` — its sidecar: the command, the
  configuration, the data parameters, the loss curve summary and the validation iteration counts;
* ``loss.png`` — the training loss.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from sciml.checkpoint import check_writable_dir, load_checkpoint, save_checkpoint, save_figure, write_json
from sciml.dcdm.data import grid_from_arrays, training_set
from sciml.dcdm.loss import scale_invariant_loss
from sciml.dcdm.network import build_network
from sciml.dcdm.solver import DCDM
from sciml.dcdm.stencil import stencil_fields
from sciml.problems.linear.generators import random_layout, random_rhs

__all__ = ["TrainConfig", "train", "TrainingDiverged", "VALIDATION_SEED", "BOUNDS", "CHOICES"]

#: layouts for validation / tests / benchmarks come from seeds at and above this (training uses [seed, i])
VALIDATION_SEED = 90_000


#: allowed values of the categorical fields of :class:`TrainConfig`
CHOICES: dict[str, tuple] = {"ndim": (2, 3), "architecture": ("multigrid", "paper"), "cycle": ("V", "W")}
#: numeric fields of :class:`TrainConfig`: (lowest, highest or None, lowest excluded)
BOUNDS: dict[str, tuple[float, float | None, bool]] = {
    "size": (8, None, False),
    "layouts": (1, None, False),
    "rhs_per_layout": (1, None, False),
    "lanczos_steps": (1, None, False),
    "low_boost": (0.0, None, False),
    "white_fraction": (0.0, 1.0, False),
    "data_seed": (0, None, False),
    "channels": (1, None, False),
    "hidden": (1, None, False),
    "coarsest": (2, None, False),
    "k": (0, None, False),
    "batch_size": (1, None, False),
    "steps": (1, None, False),
    "lr": (0.0, None, True),
    "seed": (0, None, False),
    "checkpoint_every": (1, None, False),
    "validate_layouts": (0, None, False),
    "threads": (1, None, False),
}
FLOAT_FIELDS = ("low_boost", "white_fraction", "lr")
#: fields of :class:`TrainConfig` that change neither the trained weights nor the loss history, so a run
#: may be resumed with other values. ``threads`` is not one: the thread count changes how torch splits
#: its sums, so a run on 1 thread and one on 2 differ in the last bits from the second step on.
RESUMABLE_FIELDS = ("checkpoint_every", "validate_layouts")
#: files a training run writes into ``out``: a new run (without ``resume``) refuses an ``out`` holding one
RUN_FILES = ("checkpoint.pt", "model.pt", "model.json")


class TrainingDiverged(FloatingPointError, ValueError):
    """The training loss became NaN or infinite; the message says what to change and what was kept.

    A :class:`FloatingPointError`, and a :class:`ValueError` so that ``sciml`` prints it as one line.
    """


def check_number(value: Any, low: float, high: float | None, open_low: bool, *, integer: bool) -> str:
    """What is wrong with ``value`` for the range (empty when nothing): finite, integral, within bounds."""
    kind = "an integer" if integer else "a finite number"
    bounds = f"{'>' if open_low else '>='} {low}" + (f" and <= {high}" if high is not None else "")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return f"{kind} {bounds}"
    if not math.isfinite(value) or (integer and int(value) != value):
        return f"{kind} {bounds}"
    if value < low or (open_low and value == low) or (high is not None and value > high):
        return f"{kind} {bounds}"
    return ""


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (stored in the checkpoint and the model sidecar).

    Attributes:
        ndim, size: grid dimension and cells per side of the training grids.
        layouts, rhs_per_layout, lanczos_steps, low_boost, white_fraction, data_seed: the training set
            (:func:`sciml.dcdm.data.training_set`).
        architecture, channels, hidden, coarsest, cycle: the network (:mod:`sciml.dcdm.network`;
            ``hidden``/``coarsest``/``cycle`` apply to ``"multigrid"``; ``coarsest`` defaults to 16 cells
            per side in 2D, 8 in 3D, where the coarsest level's dense factor has 256 / 512 unknowns).
        k: directions DCDM A-orthogonalises against.
        batch_size, steps, lr, seed: optimisation (Adam with a one-cycle learning-rate schedule).
        checkpoint_every: steps between checkpoints.
        validate_layouts: unseen layouts per size for the final DCDM iteration counts (0 to skip).
        threads: torch threads.
    """

    ndim: int = 2
    size: int = 64
    layouts: int = 128
    rhs_per_layout: int = 16
    lanczos_steps: int = 200
    low_boost: float = 9.0
    white_fraction: float = 0.0
    data_seed: int = 0
    architecture: str = "multigrid"
    channels: int = 4
    hidden: int = 8
    coarsest: int | None = None
    cycle: str = "W"
    k: int = 2
    batch_size: int = 16
    steps: int = 1500
    lr: float = 3e-3
    seed: int = 0
    checkpoint_every: int = 100
    validate_layouts: int = 4
    threads: int = 2

    def __post_init__(self) -> None:
        for name, choices in CHOICES.items():
            value = getattr(self, name)
            if value not in choices:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"`{name}` ({flag}) must be one of {choices}, got {value!r}")
        for name, (low, high, open_low) in BOUNDS.items():
            value = getattr(self, name)
            if value is None and name == "coarsest":
                continue
            problem = check_number(value, low, high, open_low, integer=name not in FLOAT_FIELDS)
            if problem:
                raise ValueError(f"`{name}` (--{name.replace('_', '-')}) must be {problem}, got {value}")
        coarsest = self.network_config().get("coarsest")
        if coarsest is not None and self.size <= coarsest:
            raise ValueError(
                f"`size` {self.size} is not above `coarsest` {coarsest}: the network would be the exact "
                "coarse solve with nothing to learn; train on larger grids or lower --coarsest"
            )

    def network_config(self) -> dict[str, Any]:
        if self.architecture == "multigrid":
            return {
                "architecture": "multigrid",
                "ndim": self.ndim,
                "channels": self.channels,
                "hidden": self.hidden,
                "coarsest": self.coarsest or (16 if self.ndim == 2 else 8),
                "cycle": self.cycle,
            }
        return {"architecture": self.architecture, "ndim": self.ndim, "channels": self.channels}

    def data_params(self) -> dict[str, Any]:
        return {
            "shape": [self.size] * self.ndim,
            "layouts": self.layouts,
            "rhs_per_layout": self.rhs_per_layout,
            "steps": self.lanczos_steps,
            "low_boost": self.low_boost,
            "white_fraction": self.white_fraction,
            "seed": self.data_seed,
        }


def _batch_fields(cells: np.ndarray, walls: np.ndarray) -> tuple[torch.Tensor, list[torch.Tensor]]:
    diags, couplings = [], []
    for c, w in zip(cells, walls):
        d, cs = stencil_fields(grid_from_arrays(c, w), torch.float32)
        diags.append(d)
        couplings.append(cs)
    return torch.cat(diags), [torch.cat([cs[a] for cs in couplings]) for a in range(cells.ndim - 1)]


def validate(
    solver: DCDM, ndim: int, sizes: list[int], layouts: int, *, rtol: float = 1e-6
) -> dict[str, Any]:
    """Mean DCDM iterations to ``rtol`` on unseen layouts (seeds from :data:`VALIDATION_SEED`) per size."""
    out: dict[str, Any] = {}
    for n in sizes:
        iterations = []
        for i in range(layouts):
            grid = random_layout((n,) * ndim, seed=VALIDATION_SEED + i)
            result = solver.solve(grid, random_rhs(grid, seed=VALIDATION_SEED + i), rtol=rtol, maxiter=500)
            iterations.append(result.iterations if result.converged else None)
        out["x".join([str(n)] * ndim)] = iterations
    return out


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    command: str | None = None,
    progress: bool = True,
    cache_dir: str | None = None,
) -> DCDM:
    """Train a DCDM network; see the module docstring for what is written to ``out``.

    Args:
        config: the run.
        out: output directory (created; checked writable before anything starts).
        resume: continue from ``out/checkpoint.pt`` (which must exist; checked before ``out`` is created).
        command: the command line to record in the model sidecar.
        progress: tqdm bars.
        cache_dir: directory for the cached training set (default the sciml cache).

    Returns:
        The trained :class:`DCDM` (also saved as ``out/model.pt``).

    Raises:
        ValueError: an unwritable ``out``, an ``out`` that already holds a run without ``resume``, or
            ``resume`` with a checkpoint of another configuration (each differing field is named).
        FileNotFoundError: ``resume`` without a checkpoint in ``out``.
        TrainingDiverged: the loss became NaN or infinite (the message names --lr and the checkpoint kept).
    """
    checkpoint_path = Path(out) / "checkpoint.pt"
    if resume and not checkpoint_path.exists():  # before check_writable_dir creates `out`
        raise FileNotFoundError(
            f"--resume: there is no checkpoint at {checkpoint_path} to continue from; drop --resume to start "
            "a new run, or point --out at the run to continue"
        )
    found = [name for name in RUN_FILES if (Path(out) / name).exists()]
    if found and not resume:  # a new run would overwrite them
        raise ValueError(
            f"--out {out} already holds a run ({', '.join(found)}); pass --resume to continue it, or another "
            "--out (or delete those files) to train afresh"
        )
    out = check_writable_dir(out, "out")
    checkpoint_path = out / "checkpoint.pt"
    state = None
    if resume:  # checked before the training set is made
        state = load_checkpoint(checkpoint_path)
        differences = _resume_differences(state.get("config") if isinstance(state, dict) else None, config)
        if differences:
            raise ValueError(
                f"--resume: {checkpoint_path} was written for another configuration: "
                f"{'; '.join(differences)}. "
                "Resume with the stored values, or train with the new ones into another --out (only "
                f"{', '.join('--' + f.replace('_', '-') for f in RESUMABLE_FIELDS)} may change on resume)"
            )
    torch.set_num_threads(config.threads)
    start = time.perf_counter()

    data = training_set(
        tuple([config.size] * config.ndim),
        layouts=config.layouts,
        rhs_per_layout=config.rhs_per_layout,
        steps=config.lanczos_steps,
        low_boost=config.low_boost,
        white_fraction=config.white_fraction,
        seed=config.data_seed,
        directory=cache_dir,
        progress=progress,
    )
    data_seconds = time.perf_counter() - start
    diag_all, couplings_all = _batch_fields(data["cells"], data["walls"])
    rhs = torch.as_tensor(data["rhs"])
    n_layouts, n_rhs = rhs.shape[:2]

    torch.manual_seed(config.seed)
    network = build_network(config.network_config())
    optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.steps, pct_start=0.1
    )
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    step = 0
    saved_step: int | None = None  # the step of the checkpoint on disk
    stored_config = dataclasses.asdict(config)
    if state is not None:
        network.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        losses = list(state["losses"])
        step = saved_step = int(state["step"])

    def checkpoint() -> None:
        nonlocal saved_step
        save_checkpoint(
            {
                "config": stored_config,
                "network": network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "generator": generator.get_state(),
                "losses": losses,
                "step": step,
            },
            checkpoint_path,
        )
        saved_step = step

    network.train()
    train_start = time.perf_counter()
    with tqdm(total=config.steps, initial=step, desc="training DCDM", disable=not progress) as bar:
        while step < config.steps:
            li = torch.randint(n_layouts, (config.batch_size,), generator=generator)
            ri = torch.randint(n_rhs, (config.batch_size,), generator=generator)
            b = rhs[li, ri]
            diag = diag_all[li]
            couplings = [c[li] for c in couplings_all]
            loss = scale_invariant_loss(network(b, diag, couplings), b, diag, couplings)
            if not torch.isfinite(loss):
                raise TrainingDiverged(_divergence_message(loss.item(), step, config, out, saved_step))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            if step % config.checkpoint_every == 0 or step == config.steps:
                checkpoint()
    train_seconds = time.perf_counter() - train_start

    network.eval()
    info = {
        "command": command,
        "train_config": stored_config,
        "data": config.data_params(),
        "data_seconds": data_seconds,
        "train_seconds": train_seconds,
        "final_loss": _final_loss(losses),
        "parameters": sum(p.numel() for p in network.parameters()),
    }
    solver = DCDM(network, k=config.k, info=info)
    if config.validate_layouts:
        sizes = [config.size, 2 * config.size] if config.ndim == 2 else [config.size]
        info["validation_iterations"] = validate(solver, config.ndim, sizes, config.validate_layouts)
    solver.info = info
    solver.save(out / "model.pt")
    write_json(out / "model.json", info | {"config": solver.config, "k": solver.k, "loss_history": losses})
    _plot_loss(losses, out / "loss.png")
    return solver


_MISSING = "(not recorded)"


def _result_fields(config: dict[str, Any]) -> dict[str, Any]:
    """The fields of a stored configuration that determine the trained result (defaults resolved)."""
    fields = {
        f.name: config.get(f.name, _MISSING)
        for f in dataclasses.fields(TrainConfig)
        if f.name not in RESUMABLE_FIELDS
    }
    if fields["architecture"] == "multigrid":
        if fields["coarsest"] is None:  # TrainConfig.network_config's default
            fields["coarsest"] = 16 if fields["ndim"] == 2 else 8
    else:  # these shape only the multigrid network (a change of architecture is named on its own)
        for name in ("hidden", "coarsest", "cycle"):
            fields.pop(name)
    return fields


def _resume_differences(stored: Any, config: TrainConfig) -> list[str]:
    """Each field of ``stored`` (a checkpoint's configuration) that differs from ``config`` in a way that
    changes the result, as ``--flag: stored X, given Y``; empty when the run can be resumed."""
    if not isinstance(stored, dict):
        return ["the checkpoint records no training configuration (not written by `sciml dcdm train`?)"]
    old, new = _result_fields(stored), _result_fields(dataclasses.asdict(config))
    differences = []
    for name in [f.name for f in dataclasses.fields(TrainConfig) if f.name in old and f.name in new]:
        stored_value, given = old.get(name, _MISSING), new.get(name, _MISSING)
        if stored_value != given:
            line = f"--{name.replace('_', '-')}: stored {stored_value}, given {given}"
            if name == "threads":
                line += (
                    " (the thread count changes the rounding of every training step, so the resumed run "
                    "would not reproduce the uninterrupted one)"
                )
            differences.append(line)
    return differences


def _divergence_message(
    value: float, step: int, config: TrainConfig, out: Path, saved_step: int | None
) -> str:
    """What to do when the loss became ``value`` (NaN / inf) after ``step`` steps, and what was kept."""
    if step == 0:
        cause = (
            f"the training loss was {value} on the first batch, before any update (so not --lr): the "
            "training data or the network configuration produced it"
        )
    else:
        cause = (
            f"the training loss became {value} after {step} of {config.steps} steps: --lr {config.lr:g} is "
            f"likely too high; lower it (the default is {TrainConfig.lr:g}) and train again"
        )
    if saved_step is None:
        kept = (
            f"nothing was kept: no checkpoint had been written yet (--checkpoint-every "
            f"{config.checkpoint_every}), so {out} holds no run and can be trained into again"
        )
    else:
        kept = (
            f"kept {out / 'checkpoint.pt'} from step {saved_step} (no model.pt): `--resume` with the same "
            "options continues from it but repeats the same steps and diverges again, so train with a lower "
            f"--lr into another --out, or delete {out / 'checkpoint.pt'} first"
        )
    return f"{cause}; {kept}"


#: the training loss reported (and drawn) is the mean over this many last steps
LOSS_WINDOW = 50


def _trailing_mean(losses: list[float]) -> np.ndarray:
    """Mean of the last ``min(LOSS_WINDOW, k + 1)`` losses at every step ``k``."""
    values = np.asarray(losses, dtype=np.float64)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    k = np.arange(1, len(values) + 1)
    start = np.maximum(0, k - LOSS_WINDOW)
    return (sums[k] - sums[start]) / (k - start)


def _final_loss(losses: list[float]) -> float | None:
    """The reported final loss: the last point of :func:`_trailing_mean` (what ``loss.png`` ends at)."""
    return float(_trailing_mean(losses)[-1]) if losses else None


def _plot_loss(losses: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.arange(1, len(losses) + 1)
    window = min(LOSS_WINDOW, len(losses))
    if losses:
        final = _final_loss(losses)
        ax.semilogy(steps, losses, lw=0.5, alpha=0.4, color="tab:blue", label="batch loss")
        ax.semilogy(steps, _trailing_mean(losses), color="tab:orange", label=f"mean of last {window} steps")
        ax.axhline(final, color="k", ls=":", lw=1, label=f"final loss {final:.4g} (as printed)")
    ax.set_xlabel("training step")
    ax.set_ylabel("scale-invariant loss")
    ax.set_title("DCDM training loss")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
