"""Adaptive SOSRI on geometric Brownian motion: the solution against the exact one on the same Brownian
paths, the per-step embedded error estimates, and a drop-in ``sdeint`` for a torchsde model.

    python examples/sde_adaptive_gbm.py --paths 200 --out runs/sde-example
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from sciml.problems.sde import gbm  # noqa: E402
from sciml.solvers.sde import brownian_interval, sdeint, solve  # noqa: E402

from sciml.checkpoint import check_writable_dir, save_figure  # noqa: E402

DRAWN = 5  # paths drawn in the figure (at most --paths)
PLOT_TOL = 1e-3  # the tolerance of the plotted run


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--paths", type=int, default=200, help="Brownian paths (batch rows), >= 1")
    parser.add_argument("--out", default="runs/sde-example", help="directory for the PNG")
    args = parser.parse_args(argv)
    if args.paths < 1:
        parser.error(f"argument --paths: must be >= 1, got {args.paths}")
    try:
        args.out = check_writable_dir(args.out)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    out = args.out

    problem = gbm(batch=args.paths)
    bm = brownian_interval(problem, entropy=0)  # one seeded path per batch row, shared with the exact one
    ts = torch.linspace(0, 1, 11, dtype=torch.float64)
    exact = problem.solution(ts, bm)
    for tol in (1e-2, 1e-3, 1e-4):
        sol = solve(problem, "sosri", bm=bm, rtol=tol, atol=tol, saveat=ts)
        error = (sol.ys - exact).abs().mean().item()
        st = sol.stats
        print(
            f"tol {tol:.0e}: strong error {error:.2e}, NFE {st.nfe} (f {st.nfe_drift}, "
            f"g {st.nfe_diffusion}), {st.n_accepted} steps accepted, {st.n_rejected} rejected"
        )

    sol = solve(problem, "sosri", bm=bm, rtol=PLOT_TOL, atol=PLOT_TOL, save_steps=True)
    exact_steps = problem.solution(sol.ts, bm)  # the exact solution at the step times, on the same paths
    drawn = min(DRAWN, args.paths)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for i in range(drawn):
        axes[0].plot(sol.ts, sol.ys[:, i, 0], marker=".", lw=1)
        axes[0].plot(sol.ts, exact_steps[:, i, 0], "k--", lw=0.8)
    axes[0].set(
        title=f"GBM, rtol = atol = {PLOT_TOL:g}: SOSRI (dots), exact (dashed)\n"
        f"{drawn} of {args.paths} paths drawn",
        xlabel="t",
        ylabel="y_1",
    )
    axes[1].semilogy(sol.step_ts, sol.error_estimates.detach(), marker="o", color="tab:blue")
    axes[1].axhline(1.0, color="k", ls=":", lw=1, label="accept if E_j ≤ 1")
    axes[1].set(
        title="embedded error estimate of each accepted step", xlabel="t", ylabel="E_j (dimensionless)"
    )
    axes[1].legend()
    axes[2].semilogy(sol.step_ts, sol.step_sizes, marker="s", color="tab:orange")
    axes[2].set(title="size of each accepted step", xlabel="t", ylabel="h_j (time units)")
    fig.suptitle(f"adaptive SOSRI at rtol = atol = {PLOT_TOL:g}, all {args.paths} paths stepped together")
    fig.tight_layout()
    save_figure(fig, out / "sde_adaptive_gbm.png")
    print(f"wrote {out / 'sde_adaptive_gbm.png'}")

    model = TorchsdeModel()
    ys = sdeint(model, torch.ones(64, 2, dtype=torch.float64), ts, entropy=1)  # same call as torchsde.sdeint
    ys[-1].mean().backward()
    print(f"sdeint: ys {tuple(ys.shape)}, d mean(y_T) / d mu = {model.mu.grad.tolist()}")


class TorchsdeModel(torch.nn.Module):  # a user's torchsde model, unchanged
    noise_type, sde_type = "diagonal", "ito"

    def __init__(self):
        super().__init__()
        self.mu = torch.nn.Parameter(torch.tensor([0.5, -0.2], dtype=torch.float64))

    def f(self, t, y):
        return self.mu * y

    def g(self, t, y):
        return 0.3 * y


if __name__ == "__main__":
    main()
