"""Inverse problem: recover the diffusion coefficient of nonlinear diffusion from scattered observations.

The PDE ``u_t = D (|∇u|² + u Δu)`` of the PIG suite (three Gaussian bumps, zero walls) is solved with
``D = 0.05`` by the finite-difference reference (``sciml.solvers.fd``); a few hundred values of that solution
at random space-time points are the data. A PIG (or PINN) is trained on the residual, the initial and
boundary conditions and the data, with ``D`` as a trainable parameter that starts from a wrong guess.

    python examples/pig_inverse_diffusion.py --guess 0.02 --observations 400 --iterations 3000
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import sciml.problems.pde as pde
import torch
from sciml.problems.pde import Observations
from sciml.solvers.fd import reference_solution

from sciml.pinn import TrainConfig, train
from sciml.pinn.presets import build_model, preset


def candidate_points(problem) -> int:
    """The reference grid's points strictly inside the square at t > 0 (where observations are drawn), from
    its recipe: ``n_intervals / stride + 1`` nodes per side, ``n_times`` times, walls and t = 0 left out."""
    recipe = problem.reference
    return (recipe.n_intervals // recipe.stride - 1) ** 2 * (recipe.n_times - 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--guess", type=float, default=0.02, help="initial value of D (truth 0.05)")
    parser.add_argument("--observations", type=int, default=400, help="observed values of the solution")
    parser.add_argument("--iterations", type=int, default=3000, help="Adam iterations (then 300 L-BFGS)")
    parser.add_argument("--model", choices=("pig", "pinn"), default="pig", help="the model")
    parser.add_argument("--noise", type=float, default=0.0, help="relative Gaussian noise on the data")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, the model and training")
    args = parser.parse_args()
    problem = pde.get("nonlinear-diffusion")
    available = candidate_points(problem)
    if not 1 <= args.observations <= available:
        parser.error(
            f"argument --observations: must lie in [1, {available}] (the reference grid's points inside the "
            f"domain at t > 0), got {args.observations}"
        )
    if args.iterations < 0:
        parser.error(f"argument --iterations: must be >= 0, got {args.iterations}")
    if not (math.isfinite(args.guess) and args.guess > 0):
        parser.error(f"argument --guess: must be a finite number > 0, got {args.guess}")
    if not (math.isfinite(args.noise) and args.noise >= 0):
        parser.error(f"argument --noise: must be a finite number >= 0, got {args.noise}")
    torch.set_num_threads(1)

    truth = problem.params["D"]
    reference = reference_solution(problem, progress=True)
    rng = np.random.default_rng(args.seed)
    points, values = reference.points(), reference.flat_values()[:, 0]
    inside = (points[:, 2] > 0) & (np.abs(points[:, :2]) < 1).all(axis=1)
    if inside.sum() < args.observations:  # the reference grid differs from its recipe's count
        raise SystemExit(f"--observations {args.observations}: the reference has only {inside.sum()} points")
    pick = rng.choice(np.flatnonzero(inside), size=args.observations, replace=False)
    data = values[pick] * (1 + args.noise * rng.standard_normal(args.observations))
    observed = problem.replace(
        conditions=problem.conditions + (Observations(points=points[pick], values=data),),
        params={"D": args.guess},  # the residual sees the trainable D; the guess only matters as a start
    )
    model = build_model(observed, args.model, preset(problem.name), seed=args.seed)
    config = TrainConfig(
        adam_iterations=args.iterations,
        lbfgs_iterations=300,
        lr=1e-2,
        decay_every=500,
        n_residual=4096,
        n_condition=1024,
        weights={"data": 10.0},
        seed=args.seed,
    )
    result = train(observed, model, config, reference=reference, unknowns={"D": args.guess})
    fitted = result.unknowns["D"]
    error = abs(fitted / truth - 1)
    print(f"D: guess {args.guess:g} -> fitted {fitted:.5f} (truth {truth:g}, relative error {error:.2e})")
    print(
        f"solution: relative L2 error {result.rel_l2:.3e}, {result.iterations} iterations, "
        f"{result.seconds:.0f} s"
    )
    for h in result.history:
        print(
            f"  it {h['iteration']:6d}  loss {h['loss']:.3e}  D {h['coef_D']:.5f}  rel L2 {h['rel_l2']:.3e}"
        )


if __name__ == "__main__":
    main()
