"""The local regularizer's one-step error estimate, E·|h|, in float32 against float64.

``NeuralODE.local_error`` takes one Tsit5 step of Hairer's automatic initial size from a sampled state (Pal,
Edelman & Rackauckas, ICML 2023). That step is chosen to be accurate, so its truncation error can lie below
float32's round-off: the float32 value then measures rounding, and so does its gradient. This script trains
a small neural ODE (float32, a rotation-and-decay target) and, at initialisation and after training,
compares the float32 estimate with the same step computed in float64 (the same weights, cast), and the
cosine between the two parameter gradients.

    python examples/local_error_precision.py [--steps 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn

from sciml.neural_de import Autonomous, NeuralODE


def compare(node: NeuralODE, y: torch.Tensor, times: list[float]) -> list[tuple[float, float, float, float]]:
    """``(t, float32 value, float64 value, gradient cosine)`` of ``node.local_error`` at each time."""
    node64 = copy.deepcopy(node).double()
    rows = []
    for t in times:
        with torch.no_grad():
            start = y if t == 0 else node(y, saveat=[0.0, t]).ys[-1]
        values, grads = [], []
        for model, state in ((node, start), (node64, start.double())):
            model.zero_grad()
            value = model.local_error(t, state)
            value.backward()
            values.append(float(value.detach()))
            grads.append(torch.cat([p.grad.flatten().double() for p in model.parameters()]))
        cosine = float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0))
        rows.append((t, values[0], values[1], cosine))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="Adam steps of training (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed (default 0)")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"argument --steps: must be >= 1 (the second table is after training), got {args.steps}")
    torch.manual_seed(args.seed)
    field = Autonomous(
        nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 2))
    )
    node = NeuralODE(field, t_span=(0.0, 2.0), rtol=1e-6, atol=1e-6)
    rotation = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]])
    y0 = torch.randn(64, 2)
    target = y0 @ torch.linalg.matrix_exp(2.0 * rotation)  # y' = y A, y(2) = y0 exp(2A)
    times = [0.0, 0.7, 1.4]
    report = [("initialisation", compare(node, y0, times))]
    optimizer = torch.optim.Adam(node.parameters(), lr=3e-3)
    for _ in range(args.steps):
        optimizer.zero_grad()
        loss = (node(y0).ys[-1] - target).pow(2).mean()
        loss.backward()
        optimizer.step()
    report.append(
        (f"after {args.steps} Adam steps (MSE {float(loss.detach()):.2e})", compare(node, y0, times))
    )
    for label, rows in report:
        print(label)
        print("    t     E·|h| float32   E·|h| float64   float32 / float64   gradient cosine")
        for t, v32, v64, cosine in rows:
            print(f"  {t:4.1f}   {v32:13.3e}   {v64:13.3e}   {v32 / v64:17.3g}   {cosine:+15.2f}")


if __name__ == "__main__":
    main()
