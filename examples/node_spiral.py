"""Learn the cubic spiral y' = y³A from windows of its trajectory (torchdiffeq's classic demo), with the
stiffness regularizer Σ_j S_j keeping the learned field easy for an explicit solver.

    python examples/node_spiral.py --epochs 20
"""

import argparse

import torch
from sciml.problems.ode import cubic_spiral
from sciml.solvers.ode import reference_solution

from sciml.neural_de import NeuralODE, StiffnessRegularizer
from sciml.neural_de.tasks import CubicField

parser = argparse.ArgumentParser()
parser.add_argument("--weight", type=float, default=0.05, help="stiffness regularization weight (0: vanilla)")
parser.add_argument("--epochs", type=int, default=20)
args = parser.parse_args()
torch.manual_seed(0)
torch.set_num_threads(1)

times = torch.linspace(0.0, 25.0, 1000, dtype=torch.float64)
trajectory = reference_solution(cubic_spiral(), times).float()  # DOP853 at rtol 1e-13, cached
times = times.float()
field = CubicField()
window = NeuralODE(field, (0.0, float(times[9])), rtol=1e-6, atol=1e-6)  # 10-sample windows for training
whole = NeuralODE(field, (0.0, 25.0), rtol=1e-6, atol=1e-6)  # the same field over the whole span
optimizer = torch.optim.Adam(field.parameters(), lr=1e-3)
regularizer = StiffnessRegularizer("sum") if args.weight > 0 else None

for epoch in range(args.epochs):
    for _ in range(20):
        starts = torch.randint(0, 990, (20,))
        target = torch.stack([trajectory[s : s + 10] for s in starts.tolist()], 1)  # (10, 20, 2)
        out = window(target[0], saveat=times[:10], regularizer=regularizer)
        loss = (out.ys - target).pow(2).mean()
        if regularizer is not None:
            loss = loss + args.weight * out.regularization
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    whole.eval()
    with torch.no_grad():
        out = whole(trajectory[:1], saveat=times)
    print(
        f"epoch {epoch + 1}: trajectory MSE {(out.ys[:, 0] - trajectory).pow(2).mean():.4g}, "
        f"NFE {out.solution.stats.nfe}"
    )
