"""``sciml bench node``: every regularization variant against vanilla on the digits and latent tasks.

Each (task, variant, seed) is a full ``sciml train`` run (same data split, same tolerances for training and
prediction); runs go to a pool of single-threaded processes (``--jobs``, default 2, one per core). The
table reports mean ± std over seeds of the final test metric, training wall time, prediction wall time
and prediction NFE on the test set, and the ratios of the means to vanilla. Wall times of runs that shared
the machine are comparable with each other, not with a quiet machine.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
from pathlib import Path

from sciml.bench.report import mean_std, print_table, ratio
from sciml.checkpoint import save_figure
from sciml.neural_de.training import VARIANTS, TrainConfig, train

DESCRIPTION = (
    "neural-ODE regularizers vs vanilla (and STEER, RNODE, TayNODE) on digits and latent, >= 3 seeds"
)

#: epochs per task: quick, full
EPOCHS = {"digits": (10, 30), "latent": (10, 40)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant (default 3)")
    parser.add_argument(
        "--tasks", default="digits,latent", help="comma-separated tasks (default digits,latent)"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated --reg values")
    parser.add_argument("--jobs", type=int, default=2, help="parallel training processes (default 2)")
    parser.add_argument("--epochs", type=int, default=None, help="override the epochs of every run")


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


def run(args: argparse.Namespace) -> dict:
    tasks = [t for t in args.tasks.split(",") if t]
    variants = [v for v in args.variants.split(",") if v]
    if "vanilla" not in variants:
        variants.insert(0, "vanilla")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    if args.seeds < 1 or args.jobs < 1:
        raise ValueError("--seeds and --jobs must be at least 1")
    root = Path(args.out) / "node-runs"
    configs = []
    for task in tasks:
        if task not in EPOCHS:
            raise ValueError(f"--tasks: unknown task {task!r}; choose from {sorted(EPOCHS)}")
        epochs = args.epochs or EPOCHS[task][1 if args.full else 0]
        for variant in variants:
            for seed in range(args.seeds):
                out = root / f"{task}-{variant}-s{seed}"
                configs.append(TrainConfig(task=task, reg=variant, seed=seed, epochs=epochs, out=str(out),
                                           threads=1, progress=False))  # fmt: skip
    rows = run_trainings(configs, args.jobs, root)
    rows.sort(key=lambda r: (tasks.index(r["task"]), variants.index(r["method"]), r["seed"]))
    summary = summarize(rows, tasks, variants, points_tasks=("digits",), keep="backend")
    columns = ["task", "method", "backend", "test_metric", "test_std", "train_seconds", "predict_seconds",
               "predict_nfe", "nfe_vs_vanilla", "train_time_vs_vanilla", "metric_delta"]  # fmt: skip
    print_table(
        summary, columns, f"Means over {args.seeds} seeds (digits: accuracy %, latent: MSE on unseen values)"
    )
    _plot(summary, Path(args.out) / "node.png")
    return {"rows": rows, "summary": summary}


def summarize(
    rows: list[dict], tasks: list[str], variants: list[str], points_tasks: tuple[str, ...], keep: str
) -> list[dict]:
    """Mean ± std per (task, variant) and the ratios to vanilla; ``metric_delta`` is in points for
    ``points_tasks`` (accuracy) and relative otherwise; ``keep`` names a run column copied to the summary."""
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
                "task": task, "method": v, keep: by[v][0][keep], "test_metric": metric,
                "test_std": stats["test_metric"][1], "train_seconds": stats["train_seconds"][0],
                "train_std": stats["train_seconds"][1], "predict_seconds": stats["predict_seconds"][0],
                "predict_nfe": stats["predict_nfe"][0], "predict_nfe_std": stats["predict_nfe"][1],
                "nfe_vs_vanilla": ratio(stats["predict_nfe"][0], base["predict_nfe"]),
                "train_time_vs_vanilla": ratio(stats["train_seconds"][0], base["train_seconds"]),
                "metric_delta": delta,
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
        row[0].axhline(0.5, color="k", linestyle="--", linewidth=1)
        row[0].set(title=f"{task}: prediction NFE / vanilla", ylim=(0, None))
        row[1].bar(names, [r["test_metric"] for r in rs], yerr=[r["test_std"] for r in rs], color="tab:green")
        row[1].set(title=f"{task}: test metric (mean ± std)")
        for ax in row:
            ax.tick_params(axis="x", rotation=35)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
