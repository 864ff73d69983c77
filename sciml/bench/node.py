"""``sciml bench node``: every regularization variant against vanilla on the digits and latent tasks.

Each (task, variant, seed) is a full ``sciml train`` run (same data split, same tolerances for training and
prediction); runs go to a pool of single-threaded processes (``--jobs``, default 2, one per core). The
table reports mean ± std over seeds of the final test metric, training wall time, prediction wall time
and prediction NFE on the test set, and the ratios of the means to vanilla. Wall times of runs that shared
the machine are comparable with each other, not with a quiet machine.

Two more modes:

* ``--sweep``: the trade-off curve of one regularizer (``--sweep-variant``, default ``error``) over the
  weights ``--weights`` on one task. Each run is evaluated on the task's **validation** split (prediction NFE
  and metric); the chosen weight is the one with the fewest validation NFE whose validation metric stays
  within ``--tolerance`` of vanilla's (relative for losses, points for accuracy). The test split is read
  only to report the chosen run. Writes ``node-sweep.png`` (validation NFE against validation metric).
  ``--reuse`` keeps the finished runs in ``--out`` whose stored configuration matches, so a sweep can be
  extended by weights or seeds without retraining. A run delayed by ``d`` epochs (``--weight-delays``)
  repeats vanilla's first ``d`` epochs exactly, so when both use backprop it starts from vanilla's
  checkpoint after epoch ``d`` (vanilla trains first and keeps that copy). ``--sweep-backend`` sets the
  regularized runs' gradient method (``local-unbiased`` with ``backprop``: the cheapest adjoint), and
  ``--local-dtype float64`` the dtype of the local regularizers' step (weights given; its runs are folders
  of their own, and ``--reuse`` keys on it).
* ``--e2e``: end-to-end training speed as a user measures it — the same model, data, seed, batches and
  learning-rate schedule trained with a plain ``torchdiffeq.odeint`` script (dopri5, backprop through the
  solver), with the same script trained at the looser rtol 1e-3, atol 1e-4 (:data:`E2E_LOOSE_TOL`; the
  free speed-up a torchdiffeq user has), with ``torchdiffeq.odeint_adjoint``, and with ours (Tsit5,
  backprop) without the regularizer, at the same looser tolerances, and with the error regularizer, at the
  task's tolerances and at the looser ones (``--methods`` picks some; the plain script always trains); the
  validation metric (loss or accuracy) is measured
  after every epoch (not timed) at the task's own tolerances for every method, and the table gives each
  method's training wall time until its validation metric first reaches (up to the relative slack of
  :func:`first_reaching`) the plain torchdiffeq script's final one, and the ratio; and the same in CPU time
  of the training process (steadier than wall time on a shared machine). One seed by default; with
  ``--seeds N`` every seed trains every method, each seed's plain script sets that seed's reference, and a
  last table gives mean ± std over the seeds.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import dataclasses
import json
import math
import multiprocessing
import time
from pathlib import Path

import numpy as np
import torch

from sciml.bench.report import blank_single_std, check_unique, mean_std, print_table, ratio
from sciml.checkpoint import load_checkpoint, save_figure
from sciml.neural_de.cli import epoch_list
from sciml.neural_de.model import NeuralODEResult
from sciml.neural_de.tasks import TASKS, batches, get_task
from sciml.neural_de.training import (
    LOCAL_DTYPES,
    LOCAL_VARIANTS,
    UNWEIGHTED,
    VARIANTS,
    TrainConfig,
    active_regularizer,
    check_local_dtype,
    check_variant,
    default_backend,
    epoch_learning_rate,
    evaluate,
    local_cast,
    local_step_dtype,
    make_variant,
    model_dtype,
    train,
)
from sciml.solvers.solution import Solution, SolverStats, Status

DESCRIPTION = (
    "neural-ODE regularizers vs vanilla (and STEER, RNODE, TayNODE) on digits and latent, >= 3 seeds"
)

#: epochs per task: quick, full
EPOCHS = {"digits": (10, 30), "latent": (10, 40), "latent-hard": (25, 100), "mnist1d": (10, 75)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per variant (default 3; --e2e: 1, each seed trains every method: give 5 for mean ± std)",
    )
    parser.add_argument(
        "--tasks",
        default="digits,latent",
        help=f"comma-separated tasks, from {', '.join(EPOCHS)} (default digits,latent); --sweep and --e2e "
        "take one task with a validation split (latent-hard, mnist1d, kinetics)",
    )
    parser.add_argument(
        "--variants", default=None, help="comma-separated --reg values (default: all; not with --sweep/--e2e)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel training processes (default 2)")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs of every run")
    parser.add_argument("--sweep", action="store_true", help="trade-off curve over --weights on --tasks")
    parser.add_argument(
        "--sweep-variant",
        action="append",
        default=None,
        help="regularizer of --sweep (default error); NAME=W1,W2 gives it its own start weights; repeat it "
        "to put several regularizers on one trade-off curve",
    )
    parser.add_argument(
        "--weights",
        default=None,
        help="comma-separated start weights of --sweep for the variants without their own "
        "(default: 0.1,0.3,1,3,10 x the task's)",
    )
    parser.add_argument(
        "--weight-delays",
        default=None,
        help="--sweep: comma-separated epochs without the regularizer before its schedule starts; every "
        "weight is trained with each (default: the task's)",
    )
    parser.add_argument(
        "--sweep-backend",
        choices=("backprop", "continuous", "torchdiffeq"),
        default=None,
        help="--sweep: gradient method of the regularized runs (default: the variant's; vanilla always "
        "backprop) — e.g. local-unbiased with backprop through the solver",
    )
    parser.add_argument(
        "--local-dtype",
        choices=tuple(LOCAL_DTYPES),
        default=None,
        help="--sweep: dtype of the local regularizers' extra step (default: the model's, float32); only for "
        "a --sweep-variant local-unbiased or local-biased (other variants keep theirs). float64 has no "
        "calibrated weight: give --weights or NAME=W1,W2. Its runs are kept apart (run folders "
        "VARIANT[-BACKEND]-float64-w...; --reuse never takes a run of another dtype)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="--sweep: allowed validation-metric loss vs vanilla (default 0.02 relative, "
        "0.5 points for accuracy)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="--sweep: keep finished runs in --out whose stored configuration matches (add weights or seeds "
        "to a sweep without retraining)",
    )
    parser.add_argument(
        "--methods",
        default=None,
        help=f"--e2e: comma-separated methods to train, from {', '.join(E2E_METHODS)} (default: all; the "
        "plain torchdiffeq-odeint script always trains: it sets the reference)",
    )
    parser.add_argument(
        "--e2e",
        action="store_true",
        help="wall time to equal validation metric (loss or accuracy): torchdiffeq scripts (plain, trained "
        "at rtol 1e-3/atol 1e-4, adjoint) vs ours (plain, trained loose, regularized) on one of --tasks",
    )


def run_trainings(configs: list[TrainConfig], jobs: int, root: Path) -> list[dict]:
    """Train every config on ``jobs`` spawned processes (shared by ``bench node`` and ``bench sde``); one
    row per run, printed as it finishes."""
    print(f"{len(configs)} training runs on {jobs} processes -> {root}", flush=True)
    rows = []
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {pool.submit(train, c): c for c in configs}
        for done, future in enumerate(cf.as_completed(futures), 1):
            c = futures[future]
            summary = future.result()
            keys = ("task", "method", "seed", "test_metric", "train_seconds", "predict_seconds",
                    "predict_nfe", "backend", "epochs")  # fmt: skip
            rows.append({k: summary[k] for k in keys} | {"weight": c.weight})
            r = rows[-1]
            print(f"[{done}/{len(configs)}] {c.task}/{c.reg} seed {c.seed}: test {r['test_metric']:.4g}, "
                  f"predict NFE {r['predict_nfe']}, train {r['train_seconds']:.0f}s", flush=True)  # fmt: skip
    return rows


#: options that only ``--sweep`` reads (argument name -> flag)
SWEEP_ONLY = {
    "sweep_variant": "--sweep-variant", "weights": "--weights", "weight_delays": "--weight-delays",
    "sweep_backend": "--sweep-backend", "tolerance": "--tolerance", "reuse": "--reuse",
    "local_dtype": "--local-dtype",
}  # fmt: skip


def check_mode_options(args: argparse.Namespace) -> None:
    """Refuse options the chosen mode would ignore, and counts it cannot use, before any training.

    Raises:
        ValueError: naming the option and the mode it belongs to.
    """
    sweep, e2e = getattr(args, "sweep", False), getattr(args, "e2e", False)
    if sweep and e2e:
        raise ValueError("--sweep and --e2e are separate modes; run them one at a time")
    if not sweep:
        given = [flag for name, flag in SWEEP_ONLY.items() if getattr(args, name, None) not in (None, False)]
        if given:
            mode = "--e2e" if e2e else "the default bench (every variant at its default weight)"
            raise ValueError(
                f"{', '.join(given)} only applies to --sweep, and {mode} would ignore it: add --sweep, or "
                "drop it"
            )
    if (sweep or e2e) and getattr(args, "variants", None) is not None:
        instead = "--sweep reads --sweep-variant" if sweep else "--e2e chooses among its methods by --methods"
        raise ValueError(f"--variants is for the default bench; {instead}: drop --variants")
    if getattr(args, "methods", None) is not None:
        if not e2e:
            raise ValueError("--methods chooses the trainings of --e2e: add --e2e, or drop it")
        e2e_methods(args)
    if seed_count(args) < 1 or args.jobs < 1:
        raise ValueError(f"--seeds and --jobs must be at least 1, got {seed_count(args)} and {args.jobs}")
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    tolerance = getattr(args, "tolerance", None)
    if tolerance is not None and not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"--tolerance must be a finite number >= 0, got {tolerance}")


def seed_count(args: argparse.Namespace) -> int:
    """``--seeds``, or its default: 3, and 1 for ``--e2e`` (whose one seed trains every method)."""
    if args.seeds is not None:
        return args.seeds
    return 1 if getattr(args, "e2e", False) else 3


def bench_tasks(args: argparse.Namespace, mode: str | None = None) -> list[str]:
    """``--tasks`` as a list: tasks this benchmark trains (:data:`EPOCHS`), or for ``mode`` ``"--sweep"`` or
    ``"--e2e"`` one neural ODE task.

    Raises:
        ValueError: a repeated or unknown task, one ``sciml train`` has but this benchmark does not, or not
            exactly one task for ``--sweep``/``--e2e``.
    """
    tasks = [t for t in args.tasks.split(",") if t]
    check_unique(tasks, "--tasks")
    if mode and len(tasks) != 1:
        raise ValueError(f"{mode} takes one task in --tasks, got {tasks}")
    known = [n for n, t in TASKS.items() if t.kind == "node"] if mode else list(EPOCHS)
    for task in tasks:
        if task in known:
            continue
        if task in TASKS:
            raise ValueError(
                f"--tasks: {task!r} is a `sciml train` task, but `sciml bench node` does not benchmark it; "
                f"choose from {known}"
            )
        raise ValueError(f"--tasks: unknown task {task!r}; choose from {known}")
    return tasks


def bench_variants(args: argparse.Namespace, tasks: list[str]) -> list[str]:
    """``--variants`` (vanilla first), each checked to train on every task.

    Raises:
        ValueError: a repeated or unknown variant, or one a task cannot train.
    """
    variants = [v for v in (args.variants or ",".join(VARIANTS)).split(",") if v]
    check_unique(variants, "--variants")
    if "vanilla" not in variants:
        variants.insert(0, "vanilla")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    for task in tasks:
        for variant in variants:
            check_variant(get_task(task, "node"), variant)  # a pair that cannot train: refused before any run
    return variants


def check_args(args: argparse.Namespace) -> None:
    """Every check that needs no data or training, before ``sciml bench`` creates ``--out`` (:func:`run`
    repeats it for callers that call it directly).

    Raises:
        ValueError: naming the option.
    """
    check_mode_options(args)
    mode = "--sweep" if getattr(args, "sweep", False) else "--e2e" if getattr(args, "e2e", False) else None
    tasks = bench_tasks(args, mode)
    if mode is None:
        bench_variants(args, tasks)


#: the ``--json`` help's default: each mode writes its own file
JSON_DEFAULT = "OUT/node.json; OUT/node-sweep.json with --sweep, OUT/node-e2e.json with --e2e"


def json_stem(args: argparse.Namespace) -> str:
    """The default JSON's name: ``node``, ``node-sweep`` or ``node-e2e``, so one ``--out`` keeps all three."""
    if getattr(args, "sweep", False):
        return "node-sweep"
    return "node-e2e" if getattr(args, "e2e", False) else "node"


def run(args: argparse.Namespace) -> dict:
    check_args(args)
    if getattr(args, "sweep", False):
        return run_sweep(args)
    if getattr(args, "e2e", False):
        return run_e2e(args)
    tasks = bench_tasks(args)
    variants = bench_variants(args, tasks)
    root = Path(args.out) / "node-runs"
    configs = []
    for task in tasks:
        epochs = args.epochs or EPOCHS[task][1 if args.full else 0]
        for variant in variants:
            for seed in range(seed_count(args)):
                out = root / f"{task}-{variant}-s{seed}"
                configs.append(TrainConfig(task=task, reg=variant, seed=seed, epochs=epochs, out=str(out),
                                           threads=1, progress=False))  # fmt: skip
    rows = run_trainings(configs, args.jobs, root)
    rows.sort(key=lambda r: (tasks.index(r["task"]), variants.index(r["method"]), r["seed"]))
    summary = summarize(rows, tasks, variants, points_tasks=accuracy_tasks(tasks, "node"), keep="backend")
    columns = ["task", "method", "backend", "test_metric", "test_std", "train_seconds", "predict_seconds",
               "predict_nfe", "nfe_vs_vanilla", "train_time_vs_vanilla", "metric_delta"]  # fmt: skip
    print_table(
        blank_single_std(summary, "seeds", ["test_std"]),
        columns,
        f"Means over {seed_count(args)} seed(s); {metric_units(tasks, 'node')}",
    )
    _plot(summary, Path(args.out) / "node.png")
    return {"rows": rows, "summary": summary}


def accuracy_tasks(tasks: list[str], kind: str) -> tuple[str, ...]:
    """The ``tasks`` whose test metric is an accuracy (in %): their ``metric_delta`` is in points."""
    return tuple(t for t in tasks if get_task(t, kind).higher_is_better)


def metric_units(tasks: list[str], kind: str) -> str:
    """The table title's account of each task's metric and of the unit of its ``metric_delta``."""
    parts = []
    for t in tasks:
        task = get_task(t, kind)
        if task.higher_is_better:
            parts.append(f"{t}: {task.metric} %, metric_delta in points")
        else:
            parts.append(f"{t}: {task.metric}, metric_delta relative to vanilla")
    return "; ".join(parts)


def summarize(
    rows: list[dict], tasks: list[str], variants: list[str], points_tasks: tuple[str, ...], keep: str
) -> list[dict]:
    """Mean ± std per (task, variant) and the ratios to vanilla; ``metric_delta`` is in points for
    ``points_tasks`` (accuracy) and relative otherwise (``metric_delta_unit`` says which); ``keep`` names a
    run column copied to the summary."""
    out = []
    for task in tasks:
        by = {v: [r for r in rows if r["task"] == task and r["method"] == v] for v in variants}
        base = {
            k: mean_std(r[k] for r in by["vanilla"])[0]
            for k in ("test_metric", "train_seconds", "predict_nfe")
        }
        for v in variants:
            if not by[v]:
                continue
            stats = {k: mean_std(r[k] for r in by[v]) for k in
                     ("test_metric", "train_seconds", "predict_seconds", "predict_nfe")}  # fmt: skip
            metric = stats["test_metric"][0]
            delta = (
                metric - base["test_metric"]
                if task in points_tasks
                else ratio(metric, base["test_metric"]) - 1
            )
            out.append({
                "task": task, "method": v, keep: by[v][0][keep], "seeds": len(by[v]), "test_metric": metric,
                "test_std": stats["test_metric"][1], "train_seconds": stats["train_seconds"][0],
                "train_std": stats["train_seconds"][1], "predict_seconds": stats["predict_seconds"][0],
                "predict_nfe": stats["predict_nfe"][0], "predict_nfe_std": stats["predict_nfe"][1],
                "nfe_vs_vanilla": ratio(stats["predict_nfe"][0], base["predict_nfe"]),
                "train_time_vs_vanilla": ratio(stats["train_seconds"][0], base["train_seconds"]),
                "metric_delta": delta,
                "metric_delta_unit": "points" if task in points_tasks else "relative",
            })  # fmt: skip
    return out


def _plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in summary))
    fig, axes = plt.subplots(len(tasks), 2, figsize=(12, 3.6 * len(tasks)), squeeze=False)
    for row, task in zip(axes, tasks):
        rs = [r for r in summary if r["task"] == task]
        names = [r["method"] for r in rs]
        row[0].bar(names, [r["nfe_vs_vanilla"] for r in rs], color="tab:blue")
        row[0].axhline(0.5, color="k", linestyle="--", linewidth=1, label="half of vanilla's NFE")
        row[0].legend(fontsize=8)
        row[0].set(title=f"{task}: prediction NFE / vanilla", ylim=(0, None))
        row[1].bar(names, [r["test_metric"] for r in rs], yerr=[r["test_std"] for r in rs], color="tab:green")
        row[1].set(title=f"{task}: test metric (mean ± std)")
        for ax in row:
            ax.tick_params(axis="x", rotation=35)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


# ------------------------------------------------------------------------------------------ sweep
def _validation(config: TrainConfig) -> tuple[float, float, float, float]:
    """Validation metric and mean NFE, test metric and mean NFE of a finished run (from its checkpoint)."""
    task = get_task(config.task)
    data = task.data()
    if "val" not in data:
        raise ValueError(f"--sweep: task {config.task!r} has no validation split; use latent-hard or mnist1d")
    state = load_checkpoint(Path(config.out) / "checkpoint.pt")
    backend = state["identity"]["backend"]
    model = task.model(backend)
    model.load_state_dict(state["model"])
    val = evaluate(model, data["val"], 256)
    test = evaluate(model, data["test"], 256)
    return val[0], val[1], test[0], test[1]


def _weights(text: str, option: str) -> list[float]:
    try:
        weights = [float(w) for w in text.split(",") if w]
    except ValueError:
        weights = []
    if not weights or any(not w > 0 for w in weights):
        raise ValueError(f"{option} must be positive numbers, got {text!r}")
    check_unique(weights, option.rstrip("="))
    return weights


def sweep_specs(
    args: argparse.Namespace, task, epochs: int, local_dtype: str | None = None
) -> list[tuple[str, list[float]]]:
    """``(regularizer, start weights)`` of each ``--sweep-variant`` (``NAME`` or ``NAME=W1,W2``; a plain
    name takes ``--weights``, or 0.1, 0.3, 1, 3 and 10 × the task's start weight — not for a local
    variant whose step runs in ``local_dtype``, another dtype than the model's: no weight is calibrated
    there).

    Raises:
        ValueError: an unknown or repeated regularizer, weights that are not positive numbers, or no weights
            for a local variant in ``local_dtype``.
    """
    items = args.sweep_variant or ["error"]
    specs = []
    for item in [items] if isinstance(items, str) else items:
        name, _, own = item.partition("=")
        if name not in VARIANTS or name in UNWEIGHTED:
            weighted = [v for v in VARIANTS if v not in UNWEIGHTED]
            raise ValueError(
                f"--sweep-variant must be a regularizer with a weight, one of {weighted}; got {name!r}"
            )
        if name in [n for n, _ in specs]:
            raise ValueError(f"--sweep-variant {name} is given twice; list all its weights in one NAME=W1,W2")
        if own:
            weights = _weights(own, f"--sweep-variant {name}=")
        elif args.weights:
            weights = _weights(args.weights, "--weights")
        elif local_dtype is not None and name in LOCAL_VARIANTS:
            raise ValueError(
                f"--sweep-variant {name} with --local-dtype {local_dtype} has no calibrated weight to sweep "
                f"around (the task's local weights were measured with the step in the model's dtype, "
                f"{model_dtype(task)}): give its weights, --weights W1,W2 or --sweep-variant {name}=W1,W2"
            )
        else:
            _, schedule = make_variant(name, task, epochs, delay=0)  # the start weight, whatever the delay
            weights = [schedule(0) * f for f in (0.1, 0.3, 1.0, 3.0, 10.0)]
        specs.append((name, weights))
    return specs


def run_sweep(args: argparse.Namespace) -> dict:
    """NFE against metric over regularization weights (of one or several regularizers), the weight chosen on
    the validation split."""
    task_name = bench_tasks(args, "--sweep")[0]
    task = get_task(task_name, "node")
    if "val" not in task.data():  # the weight is chosen on validation: an error now, not after training
        with_val = sorted(n for n, t in TASKS.items() if t.kind == "node" and "val" in _split_names(t))
        raise ValueError(
            f"--sweep: task {task_name!r} has no validation split to choose the weight on; pass --tasks with "
            f"one of {with_val}"
        )
    epochs = args.epochs or EPOCHS.get(task_name, (task.epochs, task.epochs))[1 if args.full else 0]
    local_dtype = sweep_local_dtype(args, task)  # None: the model's dtype
    specs = sweep_specs(args, task, epochs, local_dtype)
    delays = _delays(getattr(args, "weight_delays", None))
    backend = getattr(args, "sweep_backend", None)

    def dtype_of(variant: str) -> str | None:  # the local variants take --local-dtype, the others nothing
        return local_dtype if variant in LOCAL_VARIANTS else None

    for variant, _ in specs:  # a delay or backend that cannot train: an error now, not after training
        try:
            check_variant(task, variant, backend)
        except ValueError as exc:  # the sweep's option is --sweep-backend
            raise ValueError(str(exc).replace("--backend", "--sweep-backend")) from exc
        for d in delays:
            make_variant(variant, task, epochs, delay=d, local_dtype=dtype_of(variant))
    settings = [(v, w, d) for v, weights in specs for d in delays for w in weights]
    accuracy = task.higher_is_better
    tolerance = args.tolerance if args.tolerance is not None else (0.5 if accuracy else 0.02)
    root = Path(args.out) / "node-sweep-runs"

    # the dtype of the model's own local step, found once (building a model can generate the task's data)
    own_dtype = model_dtype(task) if any(v in LOCAL_VARIANTS for v, _ in specs) else None

    def step_dtype(variant: str) -> str | None:  # the dtype a variant's local step runs in (None: no step)
        return local_step_dtype(variant, dtype_of(variant), lambda: own_dtype)

    def run_name(variant: str) -> str:
        name = variant if backend is None else f"{variant}-{backend}"
        return name if dtype_of(variant) is None else f"{name}-{dtype_of(variant)}"

    # a run delayed by d epochs repeats vanilla's first d epochs exactly (same seed, batches and backend):
    # it starts from vanilla's copy of its checkpoint after epoch d instead of training them again
    def forks(variant: str) -> bool:
        return (backend or default_backend(variant)) == "backprop"

    forked = sorted({d for d in delays if d}) if any(forks(v) for v, _ in specs) else []
    configs = [
        TrainConfig(
            task=task_name,
            reg="vanilla",
            seed=s,
            epochs=epochs,
            out=str(root / f"vanilla-s{s}"),
            threads=1,
            progress=False,
            save_epochs=forked or None,
        )
        for s in range(seed_count(args))
    ]
    configs += [
        TrainConfig(
            task=task_name,
            reg=v,
            seed=s,
            epochs=epochs,
            weight=w,
            weight_delay=d,
            backend=backend,
            local_dtype=dtype_of(v),
            threads=1,
            progress=False,
            out=str(root / (f"{run_name(v)}-w{w:g}" + ("" if d is None else f"-d{d}") + f"-s{s}")),
            init_from=str(root / f"vanilla-s{s}" / f"checkpoint-e{d}.pt")
            if d in forked and forks(v)
            else None,
        )
        for v, w, d in settings
        for s in range(seed_count(args))
    ]
    done = [c for c in configs if getattr(args, "reuse", False) and finished_run(c)]
    if done:
        print(f"--reuse: {len(done)} finished run(s) with the same configuration kept", flush=True)
    todo = [c for c in configs if c not in done]
    first = [c for c in todo if c.reg == "vanilla"]  # the delayed runs start from vanilla's checkpoints
    for stage in (first, [c for c in todo if c.reg != "vanilla"]) if forked else (todo,):
        if stage:
            run_trainings(stage, args.jobs, root)
    points = []
    groups = [[c for c in configs if c.reg == "vanilla"]]
    groups += [[c for c in configs if (c.reg, c.weight, c.weight_delay) == vwd] for vwd in settings]
    for label, group in zip([("vanilla", None, None), *settings], groups):
        evals = [_validation(c) for c in group]
        points.append(
            {
                "weight": label[1],
                "delay": label[2],
                "method": label[0],
                "local_dtype": step_dtype(label[0]),
                "val_metric": mean_std(e[0] for e in evals)[0],
                "val_nfe": mean_std(e[1] for e in evals)[0],
                "test_metric": mean_std(e[2] for e in evals)[0],
                "test_nfe": mean_std(e[3] for e in evals)[0],
            }
        )
    chosen = choose_weight(points, accuracy, tolerance)
    base = points[0]
    columns = [
        "method",
        "weight",
        *(["delay"] if delays != [None] else []),
        *(["local_dtype"] if any(step_dtype(v) for v, _ in specs) else []),
        "val_metric",
        "val_nfe",
        "val_nfe_vs_vanilla",
        "val_metric_change",
        "admissible",
        "chosen",
    ]
    unit = "accuracy %, change in points" if accuracy else "MSE, relative change"
    print_table(
        points,
        columns,
        f"{task_name}: {', '.join(v for v, _ in specs)} weight sweep on the validation split ({unit}; "
        f"{seed_count(args)} seed(s), {epochs} epochs)",
    )
    if chosen is None:
        print(f"no weight keeps the validation {task.metric} within {tolerance:g} of vanilla's")
    else:
        delay = "" if chosen["delay"] is None else f", delay {chosen['delay']}"
        delay += "" if chosen["local_dtype"] is None else f", local step in {chosen['local_dtype']}"
        print(
            f"chosen on validation: {chosen['method']} weight {chosen['weight']:g}{delay} -> test "
            f"{task.metric} {chosen['test_metric']:.4g} (vanilla {base['test_metric']:.4g}), test NFE "
            f"{chosen['test_nfe']:.0f} (vanilla {base['test_nfe']:.0f})"
        )
    reference = getattr(task, "reference_nfe", None)  # latent-hard: the data's own hidden ODE
    reference_nfe = None if reference is None else reference("val")
    if reference_nfe is not None:
        print(
            f"the data's true hidden ODE, solved with the model's solver and tolerances: "
            f"{reference_nfe:.0f} NFE per validation batch (vanilla model {base['val_nfe']:.0f})"
        )
    name = "-".join(run_name(v) for v, _ in specs)
    png = Path(args.out) / ("node-sweep.png" if name == "error" else f"node-sweep-{name}.png")
    _plot_sweep(points, task_name, task.metric, png, _vanilla_path([c.out for c in groups[0]]),
                {v: run_name(v) for v, _ in specs})  # fmt: skip
    describe = getattr(task, "describe_runs", None)  # tasks with more solver statistics (kinetics)
    details = None
    if describe is not None:
        details = describe([(f"{p['method']} {p['weight'] or ''}".strip(), [c.out for c in group])
                            for p, group in zip(points, groups)])  # fmt: skip
        print_table(details, list(details[0]), f"{task_name}: test-split prediction cost (seed means)")
        if hasattr(task, "plot_runs"):  # the task's own trade-off figure (kinetics: work incl. Jacobians)
            task.plot_runs(details, Path(args.out) / f"{task_name}-tradeoff.png")
    return {
        "details": details,
        "rows": points,
        "task": task_name,
        "variant": ",".join(v for v, _ in specs),
        "backend": backend,
        "local_dtype": local_dtype,
        "reference_val_nfe": reference_nfe,
        "epochs": epochs,
        "seeds": seed_count(args),
        "tolerance": tolerance,
        "chosen_variant": None if chosen is None else chosen["method"],
        "chosen_weight": None if chosen is None else chosen["weight"],
        "chosen_delay": None if chosen is None else chosen["delay"],
    }


def _split_names(task) -> set[str]:
    """The data splits a task has (``train``, ``test`` and maybe ``val``)."""
    return set(task.data())


def _delays(text: str | None) -> list[int | None]:
    """``--weight-delays`` as epochs (``[None]``: the task's default)."""
    if not text:
        return [None]
    delays = epoch_list(text, "--weight-delays", 0)
    check_unique(delays, "--weight-delays")
    return delays


def finished_run(config: TrainConfig) -> bool:
    """Whether ``config.out`` holds a finished run (``summary.json``) trained with this exact configuration
    (every option ``config`` sets equals the one stored in ``metrics.json``; the local step's dtype always,
    as runs record it: None for the model's own, so a run of one dtype never serves another)."""
    out = Path(config.out)
    if not (out / "summary.json").is_file() or not (out / "metrics.json").is_file():
        return False
    stored = json.loads((out / "metrics.json").read_text())["config"]
    wanted = dataclasses.asdict(config)
    kept = set(stored.get("save_epochs") or ())  # a run that kept more checkpoint copies serves as well
    dtype = wanted.pop("local_dtype")
    if dtype is not None:  # float32 on a float32 model is the default run
        dtype = local_cast(get_task(config.task, config.kind), dtype)
    return (
        set(wanted.pop("save_epochs") or ()) <= kept
        and stored.get("local_dtype") == dtype  # runs from before --local-dtype: the model's dtype
        and all(stored.get(k) == v for k, v in wanted.items() if v is not None)
    )


def sweep_local_dtype(args: argparse.Namespace, task) -> str | None:
    """``--local-dtype`` of a sweep as its local runs record it (None: the model's dtype).

    Raises:
        ValueError: no ``--sweep-variant`` is a local regularizer (every run would ignore it).
    """
    requested = getattr(args, "local_dtype", None)
    if requested is None:
        return None
    items = args.sweep_variant or ["error"]
    names = [item.partition("=")[0] for item in ([items] if isinstance(items, str) else items)]
    local = [n for n in names if n in LOCAL_VARIANTS]
    if not local:
        raise ValueError(
            f"--local-dtype only applies to the local regularizers ({', '.join(LOCAL_VARIANTS)}), and "
            f"--sweep-variant {', '.join(names)} would ignore it: add --sweep-variant local-unbiased, or "
            "drop --local-dtype"
        )
    return check_local_dtype(local[0], task, requested)


def choose_weight(points: list[dict], higher_is_better: bool, tolerance: float) -> dict | None:
    """Mark the sweep points and return the chosen one — from validation columns only.

    Args:
        points: vanilla first, then one dict per weight with ``val_metric`` and ``val_nfe`` (other keys,
            such as test metrics, are ignored).
        higher_is_better: the metric is an accuracy (tolerance in points) rather than a loss (relative).
        tolerance: how much worse than vanilla's validation metric a weight may be.

    Returns:
        The admissible point with the fewest validation NFE, or None; every point gets
        ``val_nfe_vs_vanilla``, ``val_metric_change``, ``admissible`` and ``chosen``.
    """
    base = points[0]
    for p in points:
        p["val_nfe_vs_vanilla"] = ratio(p["val_nfe"], base["val_nfe"])
        if higher_is_better:
            p["val_metric_change"] = p["val_metric"] - base["val_metric"]
            worse = -p["val_metric_change"]
        else:
            p["val_metric_change"] = ratio(p["val_metric"], base["val_metric"]) - 1
            worse = p["val_metric_change"]
        p["admissible"] = worse <= tolerance
    admissible = [p for p in points[1:] if p["admissible"]]
    chosen = min(admissible, key=lambda p: p["val_nfe"]) if admissible else None
    for p in points:
        p["chosen"] = p is chosen
    return chosen


def _vanilla_path(outs: list[str]) -> list[tuple[int, float, float]]:
    """``(epoch, validation NFE, validation metric)`` of vanilla after every epoch, the mean over its runs
    (empty for runs that did not record the validation split)."""
    histories = [json.loads((Path(o) / "metrics.json").read_text())["history"] for o in outs]
    epochs = min(len(h) for h in histories)
    if not all("val_nfe" in h[e] for h in histories for e in range(epochs)):
        return []
    return [(e + 1, float(np.mean([h[e]["val_nfe"] for h in histories])),
             float(np.mean([h[e]["val_metric"] for h in histories]))) for e in range(epochs)]  # fmt: skip


def _plot_sweep(
    points: list[dict],
    task: str,
    metric: str,
    path: Path,
    path_vanilla: list | None = None,
    labels: dict[str, str] | None = None,
) -> None:
    """Validation NFE against validation metric: one line per regularizer and weight delay (label: weight),
    vanilla, and vanilla's own course over the epochs (label: epoch) when the runs recorded it; ``labels``
    names the regularizers in the legend (default: their ``method``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    regs = points[1:]
    labels = labels or {}
    lines = list(dict.fromkeys((p["method"], p.get("delay")) for p in regs))
    for k, (method, delay) in enumerate(lines):
        line = sorted((p for p in regs if (p["method"], p.get("delay")) == (method, delay)),
                      key=lambda p: p["weight"])  # fmt: skip
        when = "" if delay is None else (f", from epoch {delay + 1}" if delay else ", from epoch 1")
        ax.plot([p["val_nfe"] for p in line], [p["val_metric"] for p in line], "o-", color=f"C{k}",
                label=f"{labels.get(method, method)}{when} (label: weight)")  # fmt: skip
        for p in line:
            ax.annotate(f"{p['weight']:g}", (p["val_nfe"], p["val_metric"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)  # fmt: skip
    if path_vanilla:
        ax.plot([p[1] for p in path_vanilla], [p[2] for p in path_vanilla], ".-", color="grey", lw=0.8,
                label="vanilla after each epoch (label: epoch)")  # fmt: skip
        for epoch, nfe, value in path_vanilla[4::5]:
            ax.annotate(str(epoch), (nfe, value), textcoords="offset points", xytext=(-10, -10), fontsize=7,
                        color="grey")  # fmt: skip
    base = points[0]
    ax.plot(base["val_nfe"], base["val_metric"], "s", color="black", markersize=8, label="vanilla")
    ax.axhline(base["val_metric"], color="black", lw=0.6, ls=":")
    chosen = [p for p in regs if p.get("chosen")]
    if chosen:
        ax.plot(chosen[0]["val_nfe"], chosen[0]["val_metric"], "*", color="tab:red", markersize=15,
                label="chosen on validation")  # fmt: skip
    ax.axvline(0.5 * base["val_nfe"], color="grey", lw=0.6, ls="--", label="half of vanilla's NFE")
    ax.set(
        xlabel="prediction NFE per batch (validation)",
        ylabel=f"validation {metric}",
        title=f"{task}: NFE vs {metric} over the regularization weight",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


# ------------------------------------------------------------------------------------------ end to end
class _TorchdiffeqScript(torch.nn.Module):
    """What a user's torchdiffeq script does: ``odeint`` (or ``odeint_adjoint``) with dopri5 on the field,
    behind the interface of :class:`~sciml.neural_de.model.NeuralODE` so the same task model can use it.
    ``train_tol`` (rtol, atol), if given, replaces the node's tolerances in training mode only, so that
    evaluation (``model.eval()``) still solves at the task's tolerances."""

    def __init__(self, node: torch.nn.Module, adjoint: bool, train_tol: tuple[float, float] | None = None):
        super().__init__()
        self.field, self.t_span, self.adjoint = node.field, node.t_span, adjoint
        self.rtol, self.atol, self.train_tol = node.rtol, node.atol, train_tol

    def forward(self, y0, saveat=None, regularizer=None) -> NeuralODEResult:
        import torchdiffeq

        t = torch.as_tensor(self.t_span[1:] if saveat is None else saveat, dtype=y0.dtype)
        start = 0 if float(t[0]) == self.t_span[0] else 1  # torchdiffeq starts at its first time
        if start:
            t = torch.cat([t.new_tensor([self.t_span[0]]), t])
        nfe = [0]
        f = _Counted(self.field, nfe)
        solver = torchdiffeq.odeint_adjoint if self.adjoint else torchdiffeq.odeint
        extra = {"adjoint_params": tuple(self.field.parameters())} if self.adjoint else {}
        rtol, atol = self.train_tol if self.training and self.train_tol else (self.rtol, self.atol)
        ys = solver(f, y0, t, rtol=rtol, atol=atol, method="dopri5", **extra)[start:]
        t = t[start:]
        empty = y0.new_zeros((0,))
        sol = Solution(
            t.double(), ys, Status.SUCCESS, "", SolverStats(nfe=nfe[0]), empty, empty, empty, empty, False
        )
        return NeuralODEResult(ys, sol, None)


class _Counted(torch.nn.Module):
    """The field, counting its evaluations in ``counter[0]``."""

    def __init__(self, field, counter):
        super().__init__()
        self.field, self.counter = field, counter

    def forward(self, t, y):
        self.counter[0] += 1
        return self.field(t, y)


@contextlib.contextmanager
def _training_tolerances(node: torch.nn.Module, tolerances: tuple[float, float] | None):
    """``node``'s (rtol, atol) replaced by ``tolerances`` (None: kept) inside the block, restored after it, so
    that the validation after each epoch solves at the task's tolerances."""
    kept = node.rtol, node.atol
    if tolerances is not None:
        node.rtol, node.atol = tolerances
    try:
        yield
    finally:
        node.rtol, node.atol = kept


def _train_e2e(task_name: str, method: str, epochs: int, seed: int) -> dict:
    """One end-to-end training run: per-epoch training seconds and validation metric."""
    torch.set_num_threads(1)
    task = get_task(task_name, "node")
    data = task.data()
    torch.manual_seed(seed)
    model = task.model("backprop")
    loose = E2E_LOOSE_TOL if method.endswith("-loose") else None
    if method.startswith("torchdiffeq-"):
        model.node = _TorchdiffeqScript(model.node, adjoint=method.endswith("adjoint"), train_tol=loose)
    regularizer, schedule = make_variant(
        "error" if method.startswith("ours-error") else "vanilla", task, epochs
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=task.lr)
    learning_rate = epoch_learning_rate(task, task.lr, epochs)  # as `train` runs the task
    shuffle = torch.Generator().manual_seed(seed)
    seconds, cpu, curve = 0.0, 0.0, []
    for epoch in range(epochs):
        weight = schedule(epoch) if schedule is not None else 0.0
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(epoch)
        active = active_regularizer(regularizer, schedule, weight)
        start, start_cpu = time.perf_counter(), time.process_time()
        with _training_tolerances(model.node, None if method.startswith("torchdiffeq-") else loose):
            for batch in batches(data["train"], task.batch_size, shuffle):
                out = model(batch, regularizer=active)
                loss = (
                    out.loss
                    if out.result.regularization is None
                    else out.loss + weight * out.result.regularization
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        seconds += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        val_metric, val_nfe = evaluate(model, data["val"], 256)
        curve.append({"epoch": epoch + 1, "seconds": seconds, "cpu_seconds": cpu, "val_metric": val_metric,
                      "val_nfe": val_nfe})  # fmt: skip
    return {"method": method, "curve": curve}


E2E_METHODS = ("torchdiffeq-odeint", "torchdiffeq-loose", "torchdiffeq-adjoint", "ours-vanilla", "ours-loose",
               "ours-error", "ours-error-loose")  # fmt: skip
"""The ``--e2e`` methods; the first, the plain torchdiffeq script, sets the reference."""
E2E_LOOSE_TOL = (1e-3, 1e-4)
"""(rtol, atol) of the ``*-loose`` methods' training solves (their validation uses the task's)."""


FIRST_REACHING_RTOL = 1e-4
""":func:`first_reaching`'s default relative slack."""


def first_reaching(
    curve: list[dict], target: float, higher_is_better: bool, rtol: float = FIRST_REACHING_RTOL
) -> dict | None:
    """The first epoch of ``curve`` whose ``val_metric`` reaches ``target`` up to a relative ``rtol``.

    Runs that train the same model by different solvers end within rounding of each other (latent-hard:
    2.5e-6 relative between ours and the torchdiffeq script), so an exact comparison would call the same loss
    "not reached".

    Args:
        curve: per-epoch records with ``"val_metric"``.
        target: the metric to reach.
        higher_is_better: accuracy-like metric (reach = at least ``target``) or loss-like (at most).
        rtol: relative slack, ``|target| · rtol``.

    Returns:
        The first record that reaches the target, or None.
    """
    slack = abs(target) * rtol
    if higher_is_better:
        return next((c for c in curve if c["val_metric"] >= target - slack), None)
    return next((c for c in curve if c["val_metric"] <= target + slack), None)


def e2e_rows(runs: list[dict], higher_is_better: bool) -> list[dict]:
    """One table row per run of :func:`_train_e2e`, in order; the first run's final validation metric is the
    reference that every run's time is measured to, and its times are the ratios' denominators."""
    target = runs[0]["curve"][-1]["val_metric"]
    rows = []
    for r in runs:
        hit = first_reaching(r["curve"], target, higher_is_better)
        rows.append(
            {
                "method": r["method"],
                "final_val_metric": r["curve"][-1]["val_metric"],
                "final_val_nfe": r["curve"][-1]["val_nfe"],
                "train_seconds": r["curve"][-1]["seconds"],
                "train_cpu_seconds": r["curve"][-1]["cpu_seconds"],
                "epochs_to_reference": hit["epoch"] if hit else None,
                "seconds_to_reference": hit["seconds"] if hit else math.nan,
                "cpu_seconds_to_reference": hit["cpu_seconds"] if hit else math.nan,
            }
        )
    for row in rows:
        row["time_to_reference_vs_torchdiffeq"] = ratio(
            row["seconds_to_reference"], rows[0]["seconds_to_reference"]
        )
        row["cpu_to_reference_vs_torchdiffeq"] = ratio(
            row["cpu_seconds_to_reference"], rows[0]["cpu_seconds_to_reference"]
        )
        row["train_time_vs_torchdiffeq"] = ratio(row["train_seconds"], rows[0]["train_seconds"])
        row["train_cpu_vs_torchdiffeq"] = ratio(row["train_cpu_seconds"], rows[0]["train_cpu_seconds"])
    return rows


def e2e_methods(args: argparse.Namespace) -> list[str]:
    """``--methods`` (default: all of :data:`E2E_METHODS`), in that order, the plain torchdiffeq script first
    whether named or not: it sets the reference.

    Raises:
        ValueError: an unknown or repeated method.
    """
    given = getattr(args, "methods", None)
    if given is None:
        return list(E2E_METHODS)
    names = [m for m in given.split(",") if m]
    check_unique(names, "--methods")
    unknown = [m for m in names if m not in E2E_METHODS]
    if unknown:
        raise ValueError(f"--methods: unknown {unknown}; choose from {list(E2E_METHODS)}")
    return [m for m in E2E_METHODS if m in names or m == E2E_METHODS[0]]


def e2e_summary(rows: list[dict]) -> list[dict]:
    """One row per method over the seeds of :func:`e2e_rows`' rows (each with its ``"seed"``): how many seeds
    reached their reference, the ratios' mean ± std over those seeds, the time of all epochs against the plain
    script's (defined on every seed), and the final validation metric and NFE, mean ± std."""
    summary = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        reached = [r for r in mine if r["epochs_to_reference"] is not None]
        time_mean, time_std = mean_std(r["time_to_reference_vs_torchdiffeq"] for r in reached)
        cpu_mean, cpu_std = mean_std(r["cpu_to_reference_vs_torchdiffeq"] for r in reached)
        train_mean, train_std = mean_std(r["train_time_vs_torchdiffeq"] for r in mine)
        train_cpu_mean, train_cpu_std = mean_std(r["train_cpu_vs_torchdiffeq"] for r in mine)
        metric_mean, metric_std = mean_std(r["final_val_metric"] for r in mine)
        nfe_mean, nfe_std = mean_std(r["final_val_nfe"] for r in mine)
        summary.append(
            {
                "method": method,
                "seeds": len(mine),
                "seeds_reaching": len(reached),
                "time_to_reference_vs_torchdiffeq": time_mean,
                "time_std": time_std,
                "cpu_to_reference_vs_torchdiffeq": cpu_mean,
                "cpu_std": cpu_std,
                "train_time_vs_torchdiffeq": train_mean,
                "train_time_std": train_std,
                "train_cpu_vs_torchdiffeq": train_cpu_mean,
                "train_cpu_std": train_cpu_std,
                "final_val_metric": metric_mean,
                "final_val_metric_std": metric_std,
                "final_val_nfe": nfe_mean,
                "final_val_nfe_std": nfe_std,
            }
        )
    return summary


def run_e2e(args: argparse.Namespace) -> dict:
    """Wall time until the validation metric reaches the plain torchdiffeq script's final one, per seed (the
    script of each seed sets that seed's reference), and over the seeds."""
    tasks = bench_tasks(args, "--e2e")
    task = get_task(tasks[0], "node")
    if "val" not in task.data():
        raise ValueError(f"--e2e: task {tasks[0]!r} has no validation split; use latent-hard or mnist1d")
    epochs = args.epochs or EPOCHS.get(tasks[0], (task.epochs, task.epochs))[1 if args.full else 0]
    seeds = list(range(seed_count(args)))
    chosen = e2e_methods(args)
    methods = [m for _ in seeds for m in chosen]
    run_seeds = [s for s in seeds for _ in chosen]
    n = len(methods)
    print(f"{n} trainings ({len(chosen)} methods x {len(seeds)} seed(s), {epochs} epochs) on "
          f"{args.jobs} processes", flush=True)  # fmt: skip
    context = multiprocessing.get_context("spawn")
    runs: list[dict] = [{} for _ in range(n)]
    with cf.ProcessPoolExecutor(max_workers=args.jobs, mp_context=context) as pool:
        futures = {pool.submit(_train_e2e, tasks[0], m, epochs, s): k
                   for k, (m, s) in enumerate(zip(methods, run_seeds))}  # fmt: skip
        for done, future in enumerate(cf.as_completed(futures), 1):
            k = futures[future]
            runs[k] = {**future.result(), "seed": run_seeds[k]}
            last = runs[k]["curve"][-1]
            print(f"[{done}/{n}] {methods[k]} seed {run_seeds[k]}: validation {task.metric} "
                  f"{last['val_metric']:.4g}, NFE {last['val_nfe']}, {last['seconds']:.0f} s training",
                  flush=True)  # fmt: skip
    rows, references = [], []
    for seed in seeds:
        seed_runs = [r for r in runs if r["seed"] == seed]
        references.append(seed_runs[0]["curve"][-1]["val_metric"])
        rows += [{"seed": seed, **row} for row in e2e_rows(seed_runs, task.higher_is_better)]
    for seed, target in zip(seeds, references):
        print_table(
            [r for r in rows if r["seed"] == seed],
            list(rows[0]),
            f"{tasks[0]}: training wall time to the torchdiffeq script's final validation {task.metric} "
            f"({target:.4g}, the reference) — {epochs} epochs, seed {seed}",
        )
    summary = e2e_summary(rows)
    if len(seeds) > 1:
        print_table(
            summary,
            list(summary[0]),
            f"{tasks[0]}: mean ± std over {len(seeds)} seeds (*_to_reference over the seeds that reached "
            "their reference: partly chance, as the validation metric moves from epoch to epoch; "
            "train_time / train_cpu: the wall / CPU seconds of all epochs against the plain script's, every "
            "seed: steadier)",
        )
    print(
        f"*_to_reference: at the first epoch whose validation {task.metric} reaches the reference (up to "
        f"{FIRST_REACHING_RTOL:g} relative; None/-: never). The *-loose methods train at rtol "
        f"{E2E_LOOSE_TOL[0]:g}, atol {E2E_LOOSE_TOL[1]:g}; every method validates at the task's rtol "
        f"{task.rtol:g}, atol {task.atol:g}."
        + ("" if len(seeds) > 1 else " One seed: --seeds 5 gives mean ± std."),
        flush=True,
    )
    return {"rows": rows, "summary": summary, "runs": runs, "task": tasks[0], "epochs": epochs,
            "seeds": len(seeds), "reference_metrics": references}  # fmt: skip
