"""PINN and PIG on Helmholtz (a1, a2) = (1, 4) at the same L-BFGS budget, with the error curves.

Both models see the same collocation points, the same ansatz ``u = (1 − x²)(1 − y²) N(x, y)`` and the
same number of L-BFGS iterations; the script prints the final relative L2 errors and the time per run, and
writes ``helmholtz.png`` (error against iteration) and the PIG's fields.

    python examples/pinn_vs_pig_helmholtz.py --iterations 500 --out runs/helmholtz
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import sciml.problems.pde as pde  # noqa: E402
import torch  # noqa: E402

from sciml.checkpoint import check_writable_dir  # noqa: E402
from sciml.pinn import Trainer  # noqa: E402
from sciml.pinn.cli import plot_fields  # noqa: E402
from sciml.pinn.presets import build_model, preset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--iterations", type=int, default=500, help="L-BFGS iterations per model, >= 1")
    parser.add_argument("--seed", type=int, default=0, help="seed of the models and the collocation points")
    parser.add_argument(
        "--out", default="runs/helmholtz", help="directory for helmholtz.png and pig_fields.png"
    )
    args = parser.parse_args()
    if args.iterations < 1:
        parser.error(f"argument --iterations: must be >= 1, got {args.iterations}")
    try:
        out = check_writable_dir(args.out)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(1)

    problem = pde.get("helmholtz")
    settings = preset("helmholtz")
    config = settings.config("default").replace(
        lbfgs_iterations=args.iterations, eval_every=max(1, args.iterations // 20), seed=args.seed
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    for kind in ("pinn", "pig"):
        model = build_model(problem, kind, settings, seed=args.seed)
        trainer = Trainer(problem, model, config)
        result = trainer.fit()
        print(
            f"{kind.upper():4s}: relative L2 error {result.rel_l2:.3e} after {result.iterations} iterations, "
            f"{result.seconds:.0f} s, {result.params} parameters"
        )
        its = [h["iteration"] for h in result.history]
        ax.semilogy(its, [h["rel_l2"] for h in result.history], label=kind.upper())
        if kind == "pig":
            title = (
                f"PIG on {problem.name} (a1, a2) = (1, 4): rel. L2 error {result.rel_l2:.2e} after "
                f"{result.iterations} L-BFGS iterations"
            )
            plot_fields(
                out / "pig_fields.png", trainer.reference, trainer.prediction_grid(), ("x", "y"), title
            )
    ax.set_xlabel("L-BFGS iteration")
    ax.set_ylabel("relative L2 error")
    ax.set_title("Helmholtz (1, 4)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "helmholtz.png", dpi=110)
    print(f"wrote {out / 'helmholtz.png'} and {out / 'pig_fields.png'}")


if __name__ == "__main__":
    main()
