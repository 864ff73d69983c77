"""A latent ODE on irregularly sampled series, regularized *locally* while the main solve uses the
continuous adjoint: one differentiable Tsit5 step at a random time per batch (Pal et al., ICML 2023).

    python examples/node_latent.py --epochs 10
"""

import argparse
import math

import torch
from torch import nn

from sciml.neural_de import LocalErrorRegularizer, NeuralODE
from sciml.neural_de.tasks import MLPField, damped_oscillators

parser = argparse.ArgumentParser(
    description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
)
parser.add_argument(
    "--weight", type=float, default=100.0, help="local regularization weight (>= 0; 0: vanilla)"
)
parser.add_argument("--epochs", type=int, default=10, help="epochs over the 800 training series, >= 1")
args = parser.parse_args()
if not (math.isfinite(args.weight) and args.weight >= 0):
    parser.error(f"argument --weight: must be a finite number >= 0 (0: vanilla), got {args.weight}")
if args.epochs < 1:
    parser.error(f"argument --epochs: must be >= 1, got {args.epochs}")
torch.manual_seed(0)
torch.set_num_threads(1)

times = torch.linspace(0.0, 5.0, 50)
values, mask, truth = damped_oscillators(1000, times)  # half of the values are masked out
latent = 8
encoder = nn.GRU(2 * 3 + 1, 32, batch_first=True)
to_latent, decode = nn.Linear(32, latent), nn.Linear(latent, 3)
node = NeuralODE(MLPField(latent, 50, 3), (0.0, 5.0), rtol=1e-5, atol=1e-5, backend="continuous")
params = [*encoder.parameters(), *to_latent.parameters(), *decode.parameters(), *node.parameters()]
optimizer = torch.optim.Adam(params, lr=5e-3)
regularizer = LocalErrorRegularizer("unbiased") if args.weight > 0 else None


def predict(v, m, reg=None):
    dt = torch.diff(times, prepend=times[:1]).expand(len(v), -1)[..., None]
    _, h = encoder(torch.cat([v, m, dt], -1).flip(1))  # read the observations backwards in time
    out = node(to_latent(h[-1]), saveat=times, regularizer=reg)
    return decode(out.ys).transpose(0, 1), out


for epoch in range(args.epochs):
    for batch in torch.randperm(800).split(50):
        pred, out = predict(values[batch], mask[batch], regularizer)
        loss = ((pred - values[batch]) ** 2 * mask[batch]).sum() / mask[batch].sum()
        if regularizer is not None:
            loss = loss + args.weight * out.regularization
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    node.eval()
    with torch.no_grad():
        pred, out = predict(values[800:], mask[800:])
        unseen = 1 - mask[800:]
        mse = (((pred - truth[800:]) ** 2) * unseen).sum() / unseen.sum()
    node.train()
    print(f"epoch {epoch + 1}: MSE on unseen values {mse:.4f}, prediction NFE {out.solution.stats.nfe}")
