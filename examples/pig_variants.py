"""Train PIG variants on one suite problem and compare them on a validation set (not the test grid).

Each variant is the problem's preset with some PIG or training settings replaced; the validation error is
the relative L2 error at 20 000 uniform random points of the domain (their own seed, so settings are not
chosen on the test grid), and the test error is the preset's reference grid. Used to measure which
differences between our PIG and the authors' code matter (README, "PINNs and Physics-Informed Gaussians").

    OMP_NUM_THREADS=1 python examples/pig_variants.py --problem helmholtz --seed 1 \\
        --variant 'shared:{}' --variant 'separate:{"pig": {"channels": "separate", "n_gaussians": 200}}'

A variant is ``NAME:JSON`` with keys ``"pig"`` (PIG keyword arguments) and ``"train"`` (TrainConfig
fields), both merged over the preset (its PIG training settings, ``pig_train`` included).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import sciml.problems.pde as pde
import torch

from sciml.pinn import PIG, Constrained, train
from sciml.pinn.presets import preset


def validation_error(problem, model, n: int = 20000, seed: int = 12345) -> float:
    """Relative L2 error at ``n`` uniform random points of the box (the problem's exact solution)."""
    g = torch.Generator().manual_seed(seed)
    lower, upper = torch.tensor(problem.domain.lower), torch.tensor(problem.domain.upper)
    x = lower + (upper - lower) * torch.rand(n, len(lower), generator=g)
    dtype = next(model.parameters()).dtype
    x = x.to(dtype)
    with torch.no_grad():
        u = model(x).reshape(n, -1)
        e = problem.exact(x).reshape(n, -1).to(dtype)
    return float(torch.linalg.norm(u - e) / torch.linalg.norm(e))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--variant", action="append", required=True, help="NAME:JSON (see the docstring)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    problem = pde.get(args.problem)
    if problem.exact is None:
        raise SystemExit(f"{args.problem} has no exact solution; the validation error needs one")
    settings = preset(args.problem)
    rows = []
    for spec in args.variant:
        name, _, text = spec.partition(":")
        changes = json.loads(text or "{}")
        own = settings.config("default", "pig")  # the shared schedule with the PIG's own overrides
        config = dataclasses.replace(own, seed=args.seed, **changes.get("train", {}))
        kwargs = {**settings.pig, **changes.get("pig", {})}
        generator = torch.Generator().manual_seed(args.seed)
        box = dict(lower=problem.domain.lower, upper=problem.domain.upper, generator=generator)
        model = PIG(problem.domain.ndim, len(problem.fields), **kwargs, **box)
        if settings.hard_constraint and problem.constraint is not None:
            model = Constrained(model, problem.constraint)
        result = train(problem, model, config, progress=False)
        model = model.to(torch.float64 if config.dtype == "float64" else torch.float32)
        row = (name, validation_error(problem, model), result.rel_l2, result.cpu_seconds, result.iterations)
        rows.append(row)
        print(f"{name:>24}  val {row[1]:.3e}  test {row[2]:.3e}  cpu {row[3]:.1f} s  it {row[4]}", flush=True)
    base = rows[0][1]
    print(f"\n{'variant':>24}  {'validation':>10}  {'/ first':>7}  {'test':>9}  {'CPU s':>6}")
    for name, val, test, cpu, _ in rows:
        print(f"{name:>24}  {val:10.3e}  {val / base:7.2f}  {test:9.3e}  {cpu:6.1f}")


if __name__ == "__main__":
    main()
