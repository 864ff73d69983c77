"""A heat-equation simulation whose linear solver tunes itself: a tuner picks SSOR's ω every time step.

Crank–Nicolson steps of ``u_t = κ(t) Δu + f`` on N² unknowns (``sciml.problems.linear.HeatEquation2D``); each
step solves ``A_k u_{k+1} = b_k`` by SSOR-preconditioned CG warm-started from ``u_k``. The default tuner
(``prior``, :class:`sciml.relax.PriorTuner`) starts from Young's ω of a spectral estimate of each step's
matrix and refines it with capped trials; the paper's bandits (``tsallis``, ``cheb`` with the diffusion
coefficient κ as context, ``bins``) learn from the iteration counts alone. The tuner's state is
checkpointed with the simulation, so an interrupted run resumes with what it has learned.

    python examples/heat_relax.py --N 100 --steps 1000 --tuner prior --compare-cg
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


def simulate(heat: HeatEquation2D, tuner=None, checkpoint: Path | None = None, every: int = 100):
    """Run the simulation; with a tuner, SSOR-PCG with the tuner's ω, else plain CG."""
    K = heat.laplacian()
    u, start = heat.initial(), 0
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        u, start = state["u"].numpy(), int(state["step"])
        if tuner is not None:
            tuner.load_state_dict(state["tuner"])
        print(f"resumed from {checkpoint} at step {start}")
    M = None
    iterations, seconds, omegas = 0, 0.0, []
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
        if checkpoint is not None and (k + 1) % every == 0:
            state = {"u": torch.as_tensor(u), "step": k + 1}
            if tuner is not None:
                state["tuner"] = tuner.state_dict()
            save_checkpoint(state, checkpoint)
    return u, iterations, seconds, np.asarray(omegas)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--N", type=int, default=100, help="grid points per side (N² unknowns)")
    parser.add_argument("--steps", type=int, default=1000, help="time steps of dt = 1e-3")
    parser.add_argument(
        "--tuner", default="prior", help="prior (default), tsallis, cheb (contextual) or bins"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint file (resume if present)")
    parser.add_argument("--compare-cg", action="store_true", help="also run plain CG for comparison")
    args = parser.parse_args()
    heat = HeatEquation2D(N=args.N, steps=args.steps)
    tuner = make_tuner(args.tuner, heat, args.seed)
    u, its, secs, omegas = simulate(heat, tuner, args.checkpoint)
    print(f"SSOR-PCG + {type(tuner).__name__}: {its} iterations, {secs:.2f} s in the solver")
    if omegas.size:
        late = omegas[omegas.size // 2 :]
        print(f"  ω chosen in the second half of the run: mean {late.mean():.3f} ± {late.std():.3f}")
    if args.compare_cg:
        u_cg, its_cg, secs_cg, _ = simulate(heat)
        print(f"plain CG: {its_cg} iterations, {secs_cg:.2f} s  ->  SSOR-PCG/CG time {secs / secs_cg:.2f}")
        print(f"  max |u_ssor - u_cg| = {np.abs(u - u_cg).max():.2e} (both solved to rtol 1e-8)")


if __name__ == "__main__":
    main()
