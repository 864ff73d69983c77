"""Fit the spiral SDE's means and variances with a neural SDE, with or without the error-estimate
regularizer ``λ Σ_j E_j |h_j|`` (the SOSRI embedded estimates, differentiated through the solver).

    python examples/neural_sde_spiral.py --weight 0 --iterations 200      # vanilla
    python examples/neural_sde_spiral.py --weight 30 --iterations 200     # regularized

On this task the regularizer trades fit for NFE. Measured with these two commands (seed 0, one thread;
"moment loss" is the last iteration's, on its 100 training paths; NFE of the prediction on 2000 paths):
weight 30 printed moment loss 9.011 and prediction NFE 308, weight 0 moment loss 1.143 and NFE 558, i.e.
0.55x the vanilla NFE at 7.9x the moment loss. ``sciml bench sde`` trains the same model in another
setting (the ``spiral-sde`` task: the weight decays 10x from 30 over its 200 iterations, three seeds, the
moment loss of 2000 test paths; the README's table of it reports 0.92x the vanilla NFE with a 61 % larger
moment loss), so its ratios differ from these. Each run writes
``OUT/neural_sde_spiral_weight{W}_it{N}.png`` (the weight and iterations in the name and the title).
"""

import argparse
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from sciml.checkpoint import check_writable_dir, save_figure  # noqa: E402
from sciml.neural_de import ErrorEstimateRegularizer  # noqa: E402
from sciml.neural_de.sde import CubicDrift, DiagonalAffine, NeuralSDE, spiral_moments  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--weight", type=float, default=30.0, help="regularization weight, >= 0 (0: vanilla)")
    parser.add_argument("--iterations", type=int, default=200, help="Adam iterations, >= 1")
    parser.add_argument("--paths", type=int, default=100, help="trajectories per iteration, >= 2")
    parser.add_argument("--out", default="runs/sde-example", help="directory for the PNG")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.weight) and args.weight >= 0):
        parser.error(f"argument --weight: must be a finite number >= 0 (0: vanilla), got {args.weight}")
    if args.iterations < 1:
        parser.error(f"argument --iterations: must be >= 1, got {args.iterations}")
    if args.paths < 2:
        parser.error(
            f"argument --paths: must be >= 2 (the loss uses the variance over paths), got {args.paths}"
        )
    try:
        args.out = check_writable_dir(args.out)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)

    data = spiral_moments()  # 10 000 true trajectories at 30 times (SOSRI at 1e-4, cached)
    times = torch.tensor(data["times"], dtype=torch.float32)
    mean, var = torch.tensor(data["mean"]), torch.tensor(data["var"])
    sde = NeuralSDE(CubicDrift(50), DiagonalAffine(2), (0.0, 1.0), rtol=1e-2, atol=1e-2)
    optimizer = torch.optim.Adam(sde.parameters(), lr=2e-2)
    regularizer = ErrorEstimateRegularizer("sum") if args.weight > 0 else None
    y0 = torch.tensor([[2.0, 0.0]]).expand(args.paths, 2)

    for it in range(args.iterations):
        out = sde(y0, saveat=times, regularizer=regularizer)
        loss = (out.ys.mean(1) - mean).pow(2).sum() + (out.ys.var(1) - var).pow(2).sum()
        total = loss + args.weight * out.regularization if regularizer is not None else loss
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        if (it + 1) % 20 == 0:
            print(f"iteration {it + 1}: moment loss {loss.item():.4g}, NFE {out.solution.stats.nfe}")

    sde.eval()
    with torch.no_grad():
        out = sde(torch.tensor([[2.0, 0.0]]).expand(2000, 2), saveat=times, entropy=12345)
    print(f"prediction: NFE {out.solution.stats.nfe}")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, color) in enumerate((("u1", "tab:blue"), ("u2", "tab:orange"))):
        axes[0].plot(times, mean[:, i], color=color, lw=2, label=f"data {name}")
        axes[0].plot(times, out.ys.mean(1)[:, i], color=color, ls="--", label=f"neural SDE {name}")
        axes[1].plot(times, var[:, i], color=color, lw=2, label=f"data {name}")
        axes[1].plot(times, out.ys.var(1)[:, i], color=color, ls="--", label=f"neural SDE {name}")
    axes[0].set(title="means (solid: data, dashed: model)", xlabel="t", ylabel="mean")
    axes[1].set(title="variances (solid: data, dashed: model)", xlabel="t", ylabel="variance")
    axes[0].legend()
    axes[1].legend()
    setting = "vanilla" if args.weight == 0 else f"regularized, weight {args.weight:g}"
    fig.suptitle(
        f"neural SDE on the spiral: {setting}, {args.iterations} iterations of {args.paths} paths; "
        f"prediction NFE {out.solution.stats.nfe} (2000 paths)"
    )
    fig.tight_layout()
    path = args.out / f"neural_sde_spiral_weight{args.weight:g}_it{args.iterations}.png"
    save_figure(fig, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
