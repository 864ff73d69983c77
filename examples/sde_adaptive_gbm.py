"""Adaptive SOSRI on geometric Brownian motion: the solution against the exact one on the same Brownian
paths, the per-step embedded error estimates, and a drop-in ``sdeint`` for a torchsde model.

    python examples/sde_adaptive_gbm.py --paths 200 --out /tmp/sde-example
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from sciml.problems.sde import gbm  # noqa: E402
from sciml.solvers.sde import brownian_interval, sdeint, solve  # noqa: E402

from sciml.checkpoint import save_figure  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--paths", type=int, default=200)
parser.add_argument("--out", default="sde-example", help="directory for the PNG")
args = parser.parse_args()
torch.set_num_threads(1)
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)

problem = gbm(batch=args.paths)
bm = brownian_interval(problem, entropy=0)  # one seeded path per batch row, shared with the exact solution
ts = torch.linspace(0, 1, 11, dtype=torch.float64)
exact = problem.solution(ts, bm)
for tol in (1e-2, 1e-3, 1e-4):
    sol = solve(problem, "sosri", bm=bm, rtol=tol, atol=tol, saveat=ts)
    error = (sol.ys - exact).abs().mean().item()
    st = sol.stats
    print(f"tol {tol:.0e}: strong error {error:.2e}, NFE {st.nfe} (f {st.nfe_drift}, g {st.nfe_diffusion}), "
          f"{st.n_accepted} steps accepted, {st.n_rejected} rejected")  # fmt: skip

sol = solve(problem, "sosri", bm=bm, rtol=1e-3, atol=1e-3, save_steps=True)
exact_steps = problem.solution(sol.ts, bm)  # the exact solution at the step times, on the same paths
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for i in range(5):
    axes[0].plot(sol.ts, sol.ys[:, i, 0], marker=".", lw=1)
    axes[0].plot(sol.ts, exact_steps[:, i, 0], "k--", lw=0.8)
axes[0].set(title="GBM: adaptive SOSRI (dots), exact (dashed)", xlabel="t", ylabel="y_1")
axes[1].semilogy(sol.step_ts, sol.error_estimates.detach(), marker="o", label="E_j (accept if ≤ 1)")
axes[1].semilogy(sol.step_ts, sol.step_sizes, marker="s", label="h_j")
axes[1].set(title="per-step estimates", xlabel="t")
axes[1].legend()
fig.tight_layout()
save_figure(fig, out / "sde_adaptive_gbm.png")
print(f"wrote {out / 'sde_adaptive_gbm.png'}")


class TorchsdeModel(torch.nn.Module):  # a user's torchsde model, unchanged
    noise_type, sde_type = "diagonal", "ito"

    def __init__(self):
        super().__init__()
        self.mu = torch.nn.Parameter(torch.tensor([0.5, -0.2], dtype=torch.float64))

    def f(self, t, y):
        return self.mu * y

    def g(self, t, y):
        return 0.3 * y


model = TorchsdeModel()
ys = sdeint(model, torch.ones(64, 2, dtype=torch.float64), ts, entropy=1)  # same call as torchsde.sdeint
ys[-1].mean().backward()
print(f"sdeint: ys {tuple(ys.shape)}, d mean(y_T) / d mu = {model.mu.grad.tolist()}")
