"""Digits classification with a neural ODE made cheap to solve by the error-estimate regularizer.

A plain PyTorch training loop: the regularizer adds ``λ Σ_j E_j |h_j|`` (the solver's own error estimates,
differentiated through the solver) to the loss. Compare the prediction NFE with ``--weight 0``.

    python examples/node_digits.py --weight 10 --epochs 10
"""

import argparse
import math

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from sciml.neural_de import ErrorEstimateRegularizer, NeuralODE
from sciml.neural_de.tasks import TimeConcatField

parser = argparse.ArgumentParser(
    description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
)
parser.add_argument("--weight", type=float, default=10.0, help="regularization weight (>= 0; 0: vanilla)")
parser.add_argument("--epochs", type=int, default=10, help="epochs over the training split, >= 1")
args = parser.parse_args()
if not (math.isfinite(args.weight) and args.weight >= 0):
    parser.error(f"argument --weight: must be a finite number >= 0 (0: vanilla), got {args.weight}")
if args.epochs < 1:
    parser.error(f"argument --epochs: must be >= 1, got {args.epochs}")
torch.manual_seed(0)
torch.set_num_threads(1)

digits = load_digits()
x_train, x_test, y_train, y_test = train_test_split(
    torch.tensor(digits.data / 16.0, dtype=torch.float32),
    torch.tensor(digits.target),
    test_size=0.2,
    stratify=digits.target,
    random_state=0,
)

node = NeuralODE(TimeConcatField(64, 100), t_span=(0.0, 1.0), rtol=1e-6, atol=1e-6)
classifier = nn.Linear(64, 10)
optimizer = torch.optim.Adam([*node.parameters(), *classifier.parameters()], lr=3e-3)
regularizer = ErrorEstimateRegularizer("sum") if args.weight > 0 else None

for epoch in range(args.epochs):
    for batch in torch.randperm(len(x_train)).split(64):
        out = node(x_train[batch], regularizer=regularizer)  # out.ys[-1] is the state at t = 1
        loss = nn.functional.cross_entropy(classifier(out.ys[-1]), y_train[batch])
        if regularizer is not None:
            loss = loss + args.weight * out.regularization
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    node.eval()
    with torch.no_grad():
        test = node(x_test)
        accuracy = (classifier(test.ys[-1]).argmax(1) == y_test).float().mean().item()
    node.train()
    print(f"epoch {epoch + 1}: test accuracy {100 * accuracy:.1f}%, prediction NFE {test.solution.stats.nfe}")
