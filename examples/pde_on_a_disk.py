"""A PINN or PIG on a non-box domain: Poisson on the unit disk or on an L-shape (manufactured solutions).

The problem is ``sciml.problems.pde.examples.disk_poisson()`` (``lshape_poisson()`` with ``--domain
lshape``, ``neumann_poisson()`` — the unit square with a Neumann wall — with ``--domain neumann``): a
:class:`~sciml.problems.pde.PDEProblem` on a :func:`~sciml.problems.pde.Disk`, Dirichlet data on the
circle; ``--hard`` builds the Dirichlet data into the model (distance function × network, plus a corner
term at the L-shape's re-entrant corner). The error is taken on the domain only, and the plot leaves the
rest of the bounding box blank.

    python examples/pde_on_a_disk.py --model pinn --iterations 2000 --out runs/disk
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from sciml.problems.pde.examples import disk_poisson, lshape_poisson, neumann_poisson

from sciml.pinn import Trainer
from sciml.pinn.cli import plot_fields, plot_history
from sciml.pinn.presets import build_model, preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", choices=("disk", "lshape", "neumann"), default="disk")
    parser.add_argument("--model", choices=("pinn", "pig"), default="pinn")
    parser.add_argument("--iterations", type=int, default=2000, help="L-BFGS iterations")
    parser.add_argument("--hard", action="store_true", help="build the Dirichlet data into the model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/disk")
    args = parser.parse_args()
    if args.iterations < 1:
        raise SystemExit("--iterations must be ≥ 1")
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    factory = {"disk": disk_poisson, "lshape": lshape_poisson, "neumann": neumann_poisson}[args.domain]
    problem = factory(constraint="auto" if args.hard else None)
    settings = preset("poisson")  # the suite's Poisson sizes and L-BFGS budget
    config = settings.config("default").replace(
        lbfgs_iterations=args.iterations, eval_every=max(1, args.iterations // 10), seed=args.seed
    )
    trainer = Trainer(problem, build_model(problem, args.model, settings, seed=args.seed), config)
    result = trainer.fit()
    title = (
        f"{problem.name}, {args.model.upper()}{' (hard)' if args.hard else ''}: "
        f"rel. L2 error {result.rel_l2:.2e} on the domain, {result.iterations} it"
    )
    plot_fields(out / "fields.png", trainer.reference, trainer.prediction_grid(), ("x", "y"), title)
    plot_history(out / "history.png", result.history, title)
    print(
        f"{title}; {result.cpu_seconds:.0f} CPU s, {result.params} parameters\n"
        f"wrote {out / 'fields.png'} and {out / 'history.png'}"
    )


if __name__ == "__main__":
    main()
