"""A heat-equation simulation whose linear solver tunes itself: a tuner picks SSOR's ω every time step.

Crank–Nicolson steps of ``u_t = κ(t) Δu + f`` on N² unknowns (``sciml.problems.linear.HeatEquation2D``); each
step solves ``A_k u_{k+1} = b_k`` by SSOR-preconditioned CG warm-started from ``u_k``. The default tuner
(``prior``, :class:`sciml.relax.PriorTuner`) starts from Young's ω of a spectral estimate of each step's
matrix and refines it with capped trials; the paper's bandits (``tsallis``, ``cheb`` with the diffusion
coefficient κ as context, ``bins``) learn from the iteration counts alone. With ``--checkpoint FILE`` the
tuner's state is checkpointed with the simulation (every ``--checkpoint-every`` steps and at the end), so an
interrupted run resumes with what it has learned; without it nothing is saved.

    python examples/heat_relax.py --N 100 --steps 1000 --tuner prior --compare-cg
    python examples/heat_relax.py --N 100 --steps 1000 --checkpoint runs/heat/heat.pt   # rerun to resume
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sciml.problems.linear import HeatEquation2D
from sciml.solvers.linear import cg, ssor_preconditioner
from tqdm import tqdm

from sciml.checkpoint import load_checkpoint, save_checkpoint
from sciml.relax import ChebCB, ContextualBins, PriorTuner, TsallisINF

TUNERS = ("prior", "tsallis", "cheb", "bins")


def make_tuner(kind: str, heat: HeatEquation2D, seed: int):
    if kind == "prior":
        return PriorTuner("ssor-pcg", seed=seed)  # spectral prior + capped exploration
    if kind == "tsallis":
        return TsallisINF(seed=seed)  # ω ∈ linspace(1, 1.95, 20)
    if kind == "cheb":
        return ChebCB(context_range=heat.context_range, gamma=10.0, seed=seed)
    if kind == "bins":
        return ContextualBins(context_range=heat.context_range, seed=seed)
    raise ValueError(f"--tuner must be prior, tsallis, cheb or bins, got {kind!r}")


def tuner_kind(tuner) -> str:
    """The ``--tuner`` name of a tuner made by :func:`make_tuner` (``"cg"`` for none: plain CG)."""
    kinds = {PriorTuner: "prior", TsallisINF: "tsallis", ChebCB: "cheb", ContextualBins: "bins"}
    return "cg" if tuner is None else kinds.get(type(tuner), type(tuner).__name__)


def load_state(checkpoint: Path, heat: HeatEquation2D, kind: str) -> dict | None:
    """The checkpoint's state, or None when there is no file yet.

    Raises:
        ValueError: one line naming the option, when the checkpoint cannot be read or was written by a run
            with another ``--N``, ``--tuner`` or more steps than ``--steps``.
    """
    if not checkpoint.exists():
        return None
    if checkpoint.is_dir():
        raise ValueError(f"--checkpoint {checkpoint} is a directory: give a file name")
    try:
        state = load_checkpoint(checkpoint)
    except (OSError, ValueError) as error:
        raise ValueError(f"--checkpoint {checkpoint}: {error}") from None
    n = int(state.get("N", round(float(state["u"].numel()) ** 0.5)))
    if n != heat.N:
        raise ValueError(f"--N {heat.N} differs from the checkpoint's --N {n} ({checkpoint}): use --N {n}")
    saved = state.get("kind", kind)
    if saved != kind:
        raise ValueError(
            f"--tuner {kind} differs from the checkpoint's --tuner {saved} ({checkpoint}): "
            f"use --tuner {saved}"
        )
    if int(state["step"]) > heat.steps:
        raise ValueError(
            f"--steps {heat.steps} is fewer than the {int(state['step'])} steps already in the checkpoint "
            f"{checkpoint}"
        )
    return state


def simulate(heat: HeatEquation2D, tuner=None, checkpoint: Path | None = None, every: int = 100):
    """Run the simulation; with a tuner, SSOR-PCG with the tuner's ω, else plain CG.

    With ``checkpoint``, resume from it if it exists, and write it every ``every`` steps and after the last.
    Returns the final state, the solver's iterations and seconds over all steps (those before a resume
    included: the checkpoint keeps the running totals) and the ω chosen in the steps run by this call.
    """
    kind = tuner_kind(tuner)
    K = heat.laplacian()
    u, start, iterations, seconds = heat.initial(), 0, 0, 0.0
    state = load_state(checkpoint, heat, kind) if checkpoint is not None else None
    if state is not None:
        u, start = state["u"].numpy(), int(state["step"])
        iterations, seconds = int(state.get("iterations", 0)), float(state.get("seconds", 0.0))
        if tuner is not None:
            tuner.load_state_dict(state["tuner"])
        print(f"resumed from {checkpoint} at step {start}")
    M = None
    omegas = []
    for k in tqdm(range(start, heat.steps), desc="CG" if tuner is None else "SSOR-PCG + tuner"):
        system = heat.system(k, u, K)
        clock = time.perf_counter()
        if tuner is None:
            result = cg(system.A, system.b, system.x0, rtol=1e-8)
        elif isinstance(tuner, PriorTuner):  # one call: prior, ω, capped trial, learning
            tuned = tuner.solve(system.A, system.b, system.x0, rtol=1e-8)
            result = tuned.result
            omegas.append(tuned.omega)
        else:
            omega = tuner.select(system.context)  # 1. the tuner proposes ω
            M = ssor_preconditioner(system.A, omega) if M is None else M.update(system.A, omega)
            result = cg(system.A, system.b, system.x0, rtol=1e-8, M=M)
            tuner.update(result.iterations)  # 2. and learns from what the solve cost
            omegas.append(omega)
        seconds += time.perf_counter() - clock
        if not result.converged:
            raise RuntimeError(f"step {k}: {result.message}")
        iterations += result.iterations
        u = result.x
        if checkpoint is not None and ((k + 1) % every == 0 or k + 1 == heat.steps):
            state = {"u": torch.as_tensor(u), "step": k + 1, "iterations": iterations, "seconds": seconds}
            state.update(N=heat.N, kind=kind)
            if tuner is not None:
                state["tuner"] = tuner.state_dict()
            save_checkpoint(state, checkpoint)
    return u, iterations, seconds, np.asarray(omegas)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--N", type=int, default=100, help="grid points per side (N² unknowns), >= 2")
    parser.add_argument("--steps", type=int, default=1000, help="time steps of dt = 1e-3, >= 1")
    parser.add_argument(
        "--tuner", default="prior", choices=TUNERS, help="prior, tsallis, cheb (contextual) or bins"
    )
    parser.add_argument("--seed", type=int, default=0, help="the tuner's seed")
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="checkpoint file (resume if present; none: no checkpoint)",
    )
    parser.add_argument(
        "--checkpoint-every", type=int, default=100, help="with --checkpoint: steps between checkpoints "
        "(one is always written after the last step)"
    )  # fmt: skip
    parser.add_argument("--compare-cg", action="store_true", help="also run plain CG for comparison")
    args = parser.parse_args()
    for flag, value, low in (
        ("--N", args.N, 2),
        ("--steps", args.steps, 1),
        ("--checkpoint-every", args.checkpoint_every, 1),
    ):
        if value < low:
            parser.error(f"argument {flag}: must be >= {low}, got {value}")
    heat = HeatEquation2D(N=args.N, steps=args.steps)
    tuner = make_tuner(args.tuner, heat, args.seed)
    resumed = 0
    if args.checkpoint is not None:
        try:
            state = load_state(args.checkpoint, heat, args.tuner)
        except ValueError as error:
            parser.error(str(error))
        resumed = 0 if state is None else int(state["step"])
        folder = args.checkpoint.parent
        if not folder.exists():
            try:
                folder.mkdir(parents=True)
            except OSError as error:
                parser.error(f"argument --checkpoint: cannot create the folder {folder} ({error})")
            print(f"created the folder {folder} for the checkpoint")
    u, its, secs, omegas = simulate(heat, tuner, args.checkpoint, every=args.checkpoint_every)
    if resumed:
        cover = f" (all {heat.steps} steps: the {resumed} before the resume counted from the checkpoint)"
    else:
        cover = ""
    print(f"SSOR-PCG + {type(tuner).__name__}: {its} iterations, {secs:.2f} s in the solver{cover}")
    if omegas.size:
        late = omegas[omegas.size // 2 :]
        part = f" (of the steps {resumed}-{heat.steps} run now)" if resumed else ""
        print(f"  ω chosen in the second half of the run{part}: mean {late.mean():.3f} ± {late.std():.3f}")
    if args.checkpoint is not None:
        print(
            f"checkpoint {args.checkpoint}: the state after step {heat.steps} (written every "
            f"{args.checkpoint_every} steps and after the last)"
        )
    if args.compare_cg:
        u_cg, its_cg, secs_cg, _ = simulate(heat)
        print(f"plain CG: {its_cg} iterations, {secs_cg:.2f} s  ->  SSOR-PCG/CG time {secs / secs_cg:.2f}")
        print(f"  max |u_ssor - u_cg| = {np.abs(u - u_cg).max():.2e} (both solved to rtol 1e-8)")


if __name__ == "__main__":
    main()
