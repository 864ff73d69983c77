"""Train PIG (or PINN) variants on one suite problem and compare them on a validation set (not the test grid).

Each variant is the problem's preset with some model or training settings replaced; the validation error is
the relative L2 error at 20 000 uniform random points of the domain (their own seed, so settings are not
chosen on the test grid) for a problem with an exact solution, or at the points of ``--validation FILE.npz``
(arrays ``points`` and ``values``, e.g. a finer solve than the test grid's) for one without; the test error
is the preset's reference grid. Used to measure which differences between our PIG and the authors' code
matter (README, "PINNs and Physics-Informed Gaussians"), and how the error of either model falls with the
budget (``--curve``: the validation error every ``eval_every`` iterations of each run).

    OMP_NUM_THREADS=1 python examples/pig_variants.py --problem helmholtz --seed 1 \\
        --variant 'shared:{}' --variant 'separate:{"pig": {"channels": "separate", "n_gaussians": 200}}'
    OMP_NUM_THREADS=1 python examples/pig_variants.py --problem legendre --model pinn --curve \\
        --variant 'it4000:{"train": {"lbfgs_iterations": 4000, "eval_every": 500}}'

A variant is ``NAME:JSON`` with keys ``"pig"`` or ``"pinn"`` (keyword arguments of the model),
``"train"`` (TrainConfig fields), merged over the preset (its model's own training settings included), and
``"model"`` (``"pig"`` or ``"pinn"``: this variant's model, instead of ``--model``), so one run can put both
models side by side, and ``"hard"`` (names of the problem's Dirichlet or initial-value conditions to build
into the model as a hard constraint instead of the problem's own, ``[]`` for none); ``--plot FILE.png`` draws
each variant's validation error and training loss against its CPU seconds:

    OMP_NUM_THREADS=1 python examples/pig_variants.py --problem poisson --plot poisson.png \\
        --variant 'PINN:{"model": "pinn"}' --variant 'PIG:{}' \\
        --variant 'PIG float64:{"train": {"dtype": "float64", "lbfgs_iterations": 4000}}'
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
from pathlib import Path

import numpy as np
import sciml.problems.pde as pde
import torch
from sciml.problems.pde import HardConstraint
from sciml.solvers.fd import reference_solution

from sciml.pinn import PIG, PINN, Constrained, TrainConfig, Trainer
from sciml.pinn.presets import preset


def validation_points(problem, n: int = 20000, seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform random points of the box (their own seed) and the exact solution there (float64)."""
    g = torch.Generator().manual_seed(seed)
    lower, upper = torch.tensor(problem.domain.lower), torch.tensor(problem.domain.upper)
    x = (lower + (upper - lower) * torch.rand(n, len(lower), generator=g)).double()
    with torch.no_grad():
        u = problem.exact(x).reshape(n, -1).double()
    return x.numpy(), u.numpy()


def refinable(problem) -> bool:
    """Whether ``--validation finer`` works for ``problem`` (see :func:`finer_reference_points`)."""
    return isinstance(problem.reference, (pde.NonlinearDiffusionReference, pde.SemilinearReference))


def finer_reference_points(problem, n: int = 20000, seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """Validation data from a finer run of the problem's own reference recipe (not the test grid).

    Spectral recipes (Allen–Cahn, Burgers): the whole 320 × 126 grid of ``n_points=2560, x_stride=8,
    n_times=126``. The nonlinear-diffusion recipe: saved at 41 times on every second node; ``n`` random points
    (their own seed) at the 20 times between the test grid's 21.
    """
    recipe = problem.reference
    diffusion = isinstance(recipe, pde.NonlinearDiffusionReference)
    if diffusion:
        finer = dataclasses.replace(recipe, n_times=2 * recipe.n_times - 1, stride=max(recipe.stride // 2, 1))
    elif isinstance(recipe, pde.SemilinearReference):
        finer = dataclasses.replace(recipe, n_points=2560, x_stride=8, n_times=126)
    else:
        exact = problem.exact is not None
        hint = "omit --validation (it has an exact solution)" if exact else "pass --validation FILE.npz"
        raise SystemExit(f"{problem.name} has no reference recipe to refine: {hint}")
    solved = reference_solution(problem.replace(reference=finer))
    points, values = solved.points(), solved.values.reshape(-1, solved.values.shape[-1])
    if diffusion:
        t = points[:, problem.domain.time_index]
        steps = np.rint((t - t.min()) / (t.max() - t.min()) * (finer.n_times - 1)).astype(int)
        between = np.flatnonzero(steps % 2 == 1)
        keep = np.random.default_rng(seed).choice(between, n, replace=False)
        points, values = points[keep], values[keep]
    return points, values


#: keyword arguments of the models that the script sets itself (not a variant's to change)
RESERVED = {"in_features", "out_features", "lower", "upper", "generator"}
MODELS = {"pig": PIG, "pinn": PINN}


def model_keywords(kind: str) -> list[str]:
    """The keyword arguments a variant may give the model ``kind`` (its constructor's, via inspect)."""
    parameters = inspect.signature(MODELS[kind]).parameters
    return [n for n, p in parameters.items() if n not in RESERVED and p.kind != p.VAR_KEYWORD]


def parse_variants(specs: list[str], default_model: str, settings, seed: int) -> list[tuple]:
    """Every ``--variant NAME:JSON`` as ``(name, model kind, TrainConfig, model keyword arguments, names of
    the conditions to build in or None for the problem's own constraint)``, all checked before anything is
    trained.

    Raises:
        ValueError: one line naming the variant, the bad key and the valid ones.
    """
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    variants = []
    for spec in specs:
        name, _, text = spec.partition(":")
        try:
            changes = json.loads(text or "{}")
        except json.JSONDecodeError as error:
            raise ValueError(f"--variant {name!r}: its settings are not JSON ({error})") from None
        if not isinstance(changes, dict):
            raise ValueError(f"--variant {name!r}: settings must be a JSON object, got {text}")
        unknown = set(changes) - {"model", "pig", "pinn", "train", "hard"}
        kind = changes.get("model", default_model)
        if unknown or kind not in ("pig", "pinn"):
            raise ValueError(
                f"--variant {name!r}: keys are 'model' ('pig' or 'pinn'), 'pig', 'pinn', 'train' and 'hard'; "
                f"got "
                f"{sorted(changes)} with model {kind!r}"
            )
        for key, valid in (
            ("train", fields),
            ("pig", model_keywords("pig")),
            ("pinn", model_keywords("pinn")),
        ):
            given = changes.get(key, {})
            if not isinstance(given, dict):
                raise ValueError(f"--variant {name!r}: {key!r} must be a JSON object, got {given!r}")
            bad = sorted(set(given) - set(valid))
            if bad:
                what = (
                    "TrainConfig fields" if key == "train" else f"keyword arguments of {MODELS[key].__name__}"
                )
                raise ValueError(
                    f"--variant {name!r}: unknown {key!r} key(s) {', '.join(map(repr, bad))}; valid {what}: "
                    f"{', '.join(valid)}"
                )
        own = settings.config("default", kind)  # the shared schedule with the model's own overrides
        try:
            config = dataclasses.replace(own, seed=seed, **changes.get("train", {}))
        except (TypeError, ValueError) as error:
            raise ValueError(f"--variant {name!r}: bad 'train' settings ({error})") from None
        kwargs = {**getattr(settings, kind), **changes.get(kind, {})}
        hard = changes.get("hard")
        if hard is not None and not (isinstance(hard, list) and all(isinstance(h, str) for h in hard)):
            raise ValueError(f"--variant {name!r}: 'hard' must be a list of condition names, got {hard!r}")
        variants.append((name, kind, config, kwargs, hard))
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--problem", required=True, choices=pde.names(), metavar="PROBLEM",
        help=f"the suite problem: {', '.join(pde.names())}",
    )  # fmt: skip
    parser.add_argument(
        "--model",
        choices=("pig", "pinn"),
        default="pig",
        help="model of variants without 'model' (default: pig)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the models and of training (default: 1)")
    parser.add_argument(
        "--validation",
        help="problems without an exact solution: an NPZ with points and values, or 'finer' for a finer run "
        "of the problem's reference recipe (see finer_reference_points)",
    )
    parser.add_argument("--curve", action="store_true", help="print the validation error along each run")
    parser.add_argument("--variant", action="append", required=True, help="NAME:JSON (see the docstring)")
    parser.add_argument("--plot", help="write a PNG of each variant's validation error against CPU seconds")
    args = parser.parse_args()
    torch.set_num_threads(1)
    problem = pde.get(args.problem)
    settings = preset(args.problem)
    try:
        variants = parse_variants(args.variant, args.model, settings, args.seed)
    except ValueError as error:
        parser.error(str(error))
    if args.validation == "finer":
        if not refinable(problem):
            exact = problem.exact is not None
            hint = "omit --validation (it has an exact solution)" if exact else "pass --validation FILE.npz"
            parser.error(f"argument --validation: {args.problem} has no reference recipe to refine: {hint}")
        validation = finer_reference_points(problem)
    elif args.validation:
        try:
            data = np.load(args.validation)
            validation = (np.asarray(data["points"]), np.asarray(data["values"]))
        except (OSError, ValueError, KeyError, IndexError) as error:
            parser.error(
                f"argument --validation: cannot read points and values from {args.validation} ({error})"
            )
    elif problem.exact is not None:
        validation = validation_points(problem)
    else:
        finer = "--validation finer (a finer run of its reference recipe) or " if refinable(problem) else ""
        parser.error(
            f"{args.problem} has no exact solution: pass {finer}--validation FILE.npz (points, values)"
        )
    if args.plot and not Path(args.plot).parent.is_dir():
        parser.error(f"argument --plot: the folder of {args.plot} does not exist")
    test = reference_solution(problem)
    posed_as = [problem if hard is None else with_hard(problem, hard, parser) for *_, hard in variants]
    rows, curves = [], []
    for (name, kind, config, kwargs, hard), posed in zip(variants, posed_as):
        generator = torch.Generator().manual_seed(args.seed)
        box = dict(lower=problem.domain.lower, upper=problem.domain.upper, generator=generator)
        model = (PIG if kind == "pig" else PINN)(problem.domain.ndim, len(problem.fields), **kwargs, **box)
        if (hard is not None or settings.hard_constraint) and posed.constraint is not None:
            model = Constrained(model, posed.constraint)
        trainer = Trainer(posed, model, config, reference=validation)
        result = trainer.fit(progress=False)
        row = (name, result.rel_l2, trainer.evaluate(test), result.cpu_seconds, result.iterations)
        rows.append(row)
        curves.append((name, result.history))
        print(f"{name:>24}  val {row[1]:.3e}  test {row[2]:.3e}  cpu {row[3]:.1f} s  it {row[4]}", flush=True)
        if not result.message.startswith("finished"):  # e.g. L-BFGS gave up before the budget
            print(f"{'':>24}  {result.message}", flush=True)
        if args.curve:
            curve = "  ".join(
                f"{h['iteration']}:{h['rel_l2']:.2e}@{h['cpu_seconds']:.1f}s" for h in result.history
            )
            print(f"{'':>24}  validation (iteration:error@CPU s)  {curve}", flush=True)
    base = rows[0][1]
    print(f"\n{'variant':>24}  {'validation':>10}  {'/ first':>7}  {'test':>9}  {'CPU s':>6}")
    for name, val, test_error, cpu, _ in rows:
        print(f"{name:>24}  {val:10.3e}  {val / base:7.2f}  {test_error:9.3e}  {cpu:6.1f}")
    if args.plot:
        plot_curves(args.plot, curves, f"{args.problem}, seed {args.seed}")


def with_hard(problem, names: list[str], parser: argparse.ArgumentParser):
    """``problem`` with the conditions ``names`` built into the model (Lagaris), the rest in the loss."""
    if not names:
        return problem.replace(constraint=None)
    known = [c.name for c in problem.conditions]
    missing = sorted(set(names) - set(known))
    if missing:
        parser.error(f"'hard' names {missing}, not conditions of {problem.name} (its conditions: {known})")
    chosen = tuple(c for c in problem.conditions if c.name in names)
    try:
        constraint = HardConstraint.from_conditions(problem.domain, chosen, problem.fields)
    except ValueError as error:
        parser.error(f"'hard' {names}: {error}")
    left = sorted(set(names) - set(constraint.enforces))
    if left:
        parser.error(f"'hard' names {left}: a hard constraint builds in Dirichlet and initial values only")
    return problem.replace(constraint=constraint)


def plot_curves(path: str, curves: list, title: str) -> None:
    """Each variant's validation error and training loss (log scales) against the CPU seconds of its run,
    as a PNG of two panels (a loss that falls while the error grows shows up side by side)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sciml.checkpoint import save_figure

    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, history in curves:
        seconds = [h["cpu_seconds"] for h in history]
        ax.plot(seconds, [h["rel_l2"] for h in history], ".-", label=name)
        ax_loss.plot(seconds, [h["loss"] for h in history], ".-", label=name)
    for axis, label in ((ax, "validation relative L2 error"), (ax_loss, "training loss (weighted)")):
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.set_xlabel("CPU seconds (one thread)")
        axis.set_ylabel(label)
    ax.set_title(f"{title}: error along each run")
    ax_loss.set_title("loss at the same iterations")
    ax.legend(fontsize=8)
    ax_loss.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
