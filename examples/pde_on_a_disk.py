"""A PINN or PIG on a non-box domain: Poisson on the unit disk or on an L-shape (manufactured solutions).

The problem is ``sciml.problems.pde.examples.disk_poisson()`` (``lshape_poisson()`` with ``--domain
lshape``, ``neumann_poisson()`` — the unit square with a Neumann wall — with ``--domain neumann``): a
:class:`~sciml.problems.pde.PDEProblem` on a :func:`~sciml.problems.pde.Disk`, Dirichlet data on the
circle; ``--hard`` builds the Dirichlet data into the model (distance function × network, plus a corner
term at the L-shape's re-entrant corner). The error is taken on the domain only, and the plot (equal
axes) shows the rest of the bounding box in grey.

    python examples/pde_on_a_disk.py --model pinn --iterations 2000 --out runs/disk
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sciml.problems.pde.examples import disk_poisson, lshape_poisson, neumann_poisson

from sciml.checkpoint import check_writable_dir, save_figure
from sciml.pinn import Trainer
from sciml.pinn.cli import plot_history
from sciml.pinn.presets import build_model, preset


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--domain", choices=("disk", "lshape", "neumann"), default="disk", help="the problem")
    parser.add_argument("--model", choices=("pinn", "pig"), default="pinn", help="the model")
    parser.add_argument("--iterations", type=int, default=2000, help="L-BFGS iterations, >= 1")
    parser.add_argument("--hard", action="store_true", help="build the Dirichlet data into the model")
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and the collocation points")
    parser.add_argument("--out", default="runs/disk", help="directory for fields.png and history.png")
    args = parser.parse_args()
    if args.iterations < 1:
        parser.error(f"argument --iterations: must be >= 1, got {args.iterations}")
    try:
        out = check_writable_dir(args.out)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(1)

    factory = {"disk": disk_poisson, "lshape": lshape_poisson, "neumann": neumann_poisson}[args.domain]
    problem = factory(constraint="auto" if args.hard else None)
    settings = preset("poisson")  # the suite's Poisson sizes and L-BFGS budget
    config = settings.config("default").replace(
        lbfgs_iterations=args.iterations, eval_every=max(1, args.iterations // 50), seed=args.seed
    )
    trainer = Trainer(problem, build_model(problem, args.model, settings, seed=args.seed), config)
    result = trainer.fit()
    title = (
        f"{problem.name}, {args.model.upper()}{' (hard)' if args.hard else ''}: "
        f"rel. L2 error {result.rel_l2:.2e} on the domain, {result.iterations} it"
    )
    plot_domain_fields(out / "fields.png", trainer.reference, trainer.prediction_grid(), title)
    plot_history(out / "history.png", result.history, title)
    print(
        f"{title}; {result.cpu_seconds:.0f} CPU s, {result.params} parameters\n"
        f"wrote {out / 'fields.png'} and {out / 'history.png'}"
    )


def plot_domain_fields(path, reference, prediction: np.ndarray, title: str) -> None:
    """PNG of prediction, reference and error on the domain (equal axes; grid points outside the domain,
    NaN in ``prediction``, in grey, apart from the diverging colour map's white at zero)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (xs, ys), outside = reference.axes, np.isnan(prediction[..., 0])
    pred = np.ma.masked_where(outside, prediction[..., 0])
    ref = np.ma.masked_where(outside, np.asarray(reference.values)[..., 0])
    error = pred - ref
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.6")
    extent = (xs[0], xs[-1], ys[0], ys[-1])
    bound = float(max(np.abs(pred).max(), np.abs(ref).max())) or 1.0
    bound_error = float(np.abs(error).max()) or 1.0
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.4))
    panels = (
        ("prediction", pred, bound),
        ("reference", ref, bound),
        ("error (prediction − reference)", error, bound_error),
    )
    for axis, (name, data, b) in zip(axes, panels):
        image = axis.imshow(
            data.T, origin="lower", extent=extent, cmap=cmap, vmin=-b, vmax=b, interpolation="nearest"
        )
        axis.set_aspect("equal")
        axis.set(title=name, xlabel="x", ylabel="y")
        fig.colorbar(image, ax=axis, shrink=0.85)
    note = " (grey: outside the domain)" if outside.any() else ""
    fig.suptitle(title + note)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


if __name__ == "__main__":
    main()
