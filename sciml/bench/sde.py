"""``sciml bench sde``: (1) our adaptive SDE solvers against torchsde's adaptive stepping; (2) neural SDEs
trained vanilla and with the solver-heuristic regularizers.

(1) Work–precision: for each test problem with an exact solution (geometric Brownian motion — diagonal noise;
Ornstein–Uhlenbeck with correlated time-dependent additive noise; a 2-D linear SDE with scalar noise), one
batch of Brownian paths (a ``BrownianInterval``) is shared by every solver and by the exact solution, so all
errors are measured on the same paths. For a sweep of tolerances (rtol = atol = tol) each solver reports
the strong error ``E|y_h(T) − y(T)|`` (mean over paths and components) and its work: NFE = evaluations of
``f`` plus evaluations of ``g`` (torchsde's counted by wrapping the SDE object; its diffusion–vector
products call ``g``). Baselines: torchsde's adaptive stepping (step doubling: one full and two half steps
per step) with its default method ``"srk"`` (Rößler's SRI2 / SRA1, the same order as ours) and with
``"milstein"`` (diagonal/scalar noise) or ``"euler"`` (additive noise). torchsde starts from the same
initial step as our solvers (:func:`sciml.solvers.sde.initial_step_size`).

Each of our rows carries ``nfe_ratio_vs_torchsde``: our NFE over torchsde-srk's NFE at the same strong
error, read off torchsde's work–precision curve (log–log interpolation on its Pareto front: the cheapest
NFE that reached each error), and ``nfe_ratio_vs_best_torchsde`` against the better of torchsde's two
methods there. NaN where our error lies outside the range torchsde's sweep reached.

Note on torchsde's NFE: its SRK step recomputes ``f`` and ``g`` of earlier stages inside the stage loop
(4-stage diagonal SRK: 10 evaluations each of f and g per step, where 4 + 4 suffice), and step doubling
makes three such steps per step. The ratios measure the solvers as users get them.

Timings (CPU time of the process, one thread, best of ``--repeats`` interleaved runs) are reported beside
NFE; they include each solver's Python overhead.

(2) Neural SDEs: each (task, variant, seed) of the tasks ``spiral-sde`` and ``digits-sde`` is a full
``sciml train sde`` run (backprop through the solver, the same tolerances for training and prediction), on a
pool of single-threaded processes (``--jobs``). The table reports mean ± std over seeds of the final test
metric, training wall time, prediction wall time and prediction NFE, and the ratios to vanilla (spiral:
moment loss, relative change; digits: accuracy, change in points). Rows as in ``sciml bench node``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sciml.bench.report import blank_single_std, check_unique, print_table, ratio, refuse_ignored
from sciml.checkpoint import save_figure
from sciml.neural_de.tasks import get_task
from sciml.neural_de.training import calibrated_weight
from sciml.problems import sde as problems
from sciml.solvers.sde import brownian_interval, get_method, solve
from sciml.solvers.sde.methods import SDESolverStats, Terms
from sciml.solvers.sde.solve import initial_step_size

DESCRIPTION = "SDE solvers: strong error vs NFE against torchsde's adaptive stepping on the same paths"

#: problem -> (our methods, torchsde methods)
CASES = {
    "gbm": (("sosri", "sosri2", "sriw1", "milstein"), ("srk", "milstein")),
    "ornstein_uhlenbeck": (("sosra", "sosra2", "sra1", "sra3"), ("srk", "euler")),
    "linear_scalar": (("sosri", "sriw1", "milstein"), ("srk", "milstein")),
}
#: the default method for each problem's noise type (the headline rows)
DEFAULTS = {"gbm": "sosri", "ornstein_uhlenbeck": "sosra", "linear_scalar": "sosri"}


#: part 2: epochs per task (quick, full) and the regularization weight of each variant (the schedule's start;
#: it decays 10x over training like the neural-ODE defaults, except the stiffness weight and the digits-sde
#: error weight, which are constant). The weights live in :mod:`sciml.neural_de.training`
#: (:func:`~sciml.neural_de.training.calibrated_weight`, the defaults of ``sciml train sde``); they were
#: calibrated with this benchmark:
#: Calibration (single runs, seed 0; digits 6 epochs, spiral 10; test metric, prediction NFE): digits vanilla
#: 94.7 %, 160; error weight 0.3: 95.6 %, 144; 1: 90.0 %, 42; 3 to 300: about 90 %, 34; local-unbiased 3e3:
#: 94.4 %, 160; 1e5: 95.3 %, 152; 1e6: 90.3 %, 128. Spiral vanilla 1.02, 558; error 30: 1.69, 508; 100: 13.4,
#: 372. Three seeds (``sciml bench sde --part neural``, 6 epochs): digits error 0.5 decaying 10x: 0.83x NFE,
#: +1.1 points; 0.75: 0.70x, -1.9 points; 1 (20 epochs): 0.20x, -2.5 points. The error weight has a cliff
#: near 0.6: above it training falls into a few large steps (34-50 NFE) and loses accuracy; a decaying weight
#: lets the step count climb back (0.75 -> 0.25: 34 NFE, 90.6 %; 0.5 -> 0.25: 106 NFE, seed 0). A constant
#: weight holds it (seeds 0-4, test NFE of the last epoch; vanilla 6/8/9 epochs: 94.8/95.6/95.7 %, 158-160):
#: 0.4, 6 epochs: 0.63x, +0.8 points (seeds 0-2); 0.45, 6/8/9 epochs: 0.59x/0.54x/0.52x, +0.4/-0.3/-0.2
#: points; 0.5: 0.52x/0.47x/0.46x, -1.0/-0.9/-0.8 points; 0.6: 0.28x, -4.3 points (seeds 0, 2). Hence 8 epochs
#: and a constant 0.45; ``sciml bench sde --part neural --tasks digits-sde --variants vanilla,error``: error
#: 95.00 ± 1.21 % at 84.7 NFE, vanilla 95.37 ± 0.58 % at 160: 0.53x NFE, -0.37 points, 0.70x training time.
#: At the full budget (20 epochs, seeds 0-1) the constant 0.45 keeps falling to 66 NFE: 96.7 % against
#: vanilla's 94.7 % at 168 (0.39x).
EPOCHS = {"spiral-sde": (10, 30), "digits-sde": (8, 20)}
VARIANTS = ("vanilla", "error", "local-unbiased", "local-biased")
WEIGHTS = {
    task: {v: calibrated_weight(v, get_task(task, "sde"))[0] for v in ("error", *VARIANTS[2:], "stiffness")}
    for task in EPOCHS
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--part",
        choices=("solvers", "neural", "all"),
        default="all",
        help="which part to run: solvers (1), neural (2) or all (default: %(default)s)",
    )
    parser.add_argument(
        "--paths", type=int, default=None, help="part 1: paths per problem (default 256; --full 1024)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="part 1: timing repeats (default 2; --full 5)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="part 1: entropy of the Brownian paths (default 0)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--seeds", type=int, default=None, help="part 2: seeds per variant (default 3)")
    parser.add_argument(
        "--tasks", default=None, help=f"part 2: comma-separated tasks (default: {','.join(EPOCHS)})"
    )
    parser.add_argument(
        "--variants",
        default=None,
        help=f"part 2: comma-separated --reg values (default: {','.join(VARIANTS)}; vanilla is always run)",
    )
    parser.add_argument(
        "--jobs", type=int, default=None, help="part 2: parallel training processes (default 2)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="part 2: override the epochs of every run")
    parser.add_argument("--weight", type=float, default=None, help="part 2: override every variant's weight")


#: the options of each part (argument names), and the defaults of those left out
SOLVER_OPTIONS = ("paths", "repeats", "seed")
NEURAL_OPTIONS = ("seeds", "tasks", "variants", "jobs", "epochs", "weight")
NEURAL_DEFAULTS = {"seeds": 3, "jobs": 2, "tasks": ",".join(EPOCHS), "variants": ",".join(VARIANTS)}


def check_options(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """Refuse, before either part runs, the options of a part that does not run, counts that cannot be
    used, and unknown or repeated tasks and variants; fill in the defaults of the options left out.

    Returns:
        The part-2 tasks and variants (vanilla first when it was not listed).

    Raises:
        ValueError: naming the option.
    """
    from sciml.cli import check_numbers
    from sciml.neural_de.training import VARIANTS as ALL_VARIANTS

    check_numbers(args)  # also when run() is called without the command (counts at least 1, ...)
    if args.part == "neural":
        refuse_ignored(args, SOLVER_OPTIONS, "by --part neural (they set part 1)")
    if args.part == "solvers":
        refuse_ignored(args, NEURAL_OPTIONS, "by --part solvers (they set part 2)")
    for name, value in NEURAL_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.seed is None:
        args.seed = 0
    tasks = [t for t in args.tasks.split(",") if t]
    variants = [v for v in args.variants.split(",") if v]
    if args.part == "solvers":
        return tasks, variants
    check_unique(tasks, "--tasks")
    check_unique(variants, "--variants")
    if "vanilla" not in variants:
        variants.insert(0, "vanilla")
    bad = [v for v in variants if v not in ALL_VARIANTS or v in ("rnode", "taynode")]
    if bad:
        raise ValueError(f"--variants: {bad} not available for neural SDEs; choose from "
                         f"{[v for v in ALL_VARIANTS if v not in ('rnode', 'taynode')]}")  # fmt: skip
    unknown = [t for t in tasks if t not in EPOCHS]
    if unknown or not tasks:
        raise ValueError(
            f"--tasks: unknown task {(unknown or [args.tasks])[0]!r}; choose from {sorted(EPOCHS)}"
        )
    return tasks, variants


class _CountedSDE(torch.nn.Module):
    """A torchsde SDE object around a problem, counting evaluations of f and g."""

    def __init__(self, problem: problems.SDEProblem):
        super().__init__()
        self.problem = problem
        self.noise_type, self.sde_type = problem.noise_type, problem.sde_type
        self.n = 0

    def f(self, t, y):
        self.n += 1
        return self.problem.drift(t, y)

    def g(self, t, y):
        self.n += 1
        return self.problem.diffusion(t, y)


def _first_step(problem: problems.SDEProblem, method: str, tol: float) -> float:
    """Our automatic initial step for this tolerance (given to torchsde too)."""
    stepper = get_method(method, problem.noise_type, problem.sde_type)
    terms = Terms(problem.drift, problem.diffusion, problem.noise_type, SDESolverStats(), problem.y0)
    t0 = problem.t_span[0]
    with torch.no_grad():
        f0, g0 = terms.f(t0, problem.y0), terms.g(t0, problem.y0)
        return initial_step_size(terms, t0, problem.y0, f0, g0, stepper.error_exponent, tol, tol)


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """(cost, error) points on the front: sorted by cost, each with a lower error than every cheaper one."""
    front, best = [], math.inf
    for nfe, err in sorted(points):
        if err < best:
            front.append((nfe, err))
            best = err
    return front


def _cost_at_error(points: list[tuple[float, float]], error: float) -> float:
    """The cost (NFE or seconds) needed to reach ``error``: log–log interpolation on the Pareto front of
    ``(cost, error)`` points; NaN outside its range."""
    front = _pareto(points)
    if len(front) < 2:
        return math.nan
    nfes, errors = (np.array(x) for x in zip(*front))
    if not errors.min() <= error <= errors.max() or errors.min() <= 0:
        return math.nan
    order = np.argsort(errors)
    return math.exp(np.interp(math.log(error), np.log(errors[order]), np.log(nfes[order])))


def _best_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Interleaved timing (CPU time): each repeat runs every function once; the minimum is kept."""
    best = {k: math.inf for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.process_time()
            fn()
            best[key] = min(best[key], time.process_time() - start)
    return best


def _work_precision(name: str, n_paths: int, seed: int, tols: list[float], their_tols: list[float],
                    repeats: int) -> list[dict]:  # fmt: skip
    import torchsde

    ours, theirs = CASES[name]
    problem = problems.get(name, batch=n_paths)
    bm = brownian_interval(problem, entropy=seed)
    span = torch.tensor(problem.t_span, dtype=torch.float64)
    exact = problem.solution(span, bm)[-1]

    def strong_error(yT: torch.Tensor) -> float:
        return (yT - exact).abs().mean().item()

    runs: dict[tuple[str, float], Callable] = {}
    for method in ours:
        for tol in tols:
            runs[(method, tol)] = lambda m=method, tol=tol: solve(problem, m, bm=bm, rtol=tol, atol=tol,
                                                                  max_steps=10**6)  # fmt: skip
    for method in theirs:
        for tol in their_tols:
            dt0 = _first_step(problem, DEFAULTS[name], tol)

            def theirs_run(method=method, tol=tol, dt0=dt0):
                sde = _CountedSDE(problem)
                ys = torchsde.sdeint(sde, problem.y0, span, bm=bm, method=method, adaptive=True, rtol=tol,
                                     atol=tol, dt=dt0)  # fmt: skip
                return ys, sde.n

            runs[(f"torchsde-{method}", tol)] = theirs_run
    rows = []
    with torch.no_grad():
        seconds = _best_times({f"{k[0]}@{k[1]}": fn for k, fn in runs.items()}, repeats)
        for (method, tol), fn in runs.items():
            out = fn()
            if isinstance(out, tuple):
                ys, nfe = out
                row = {"nfe": nfe, "strong_error": strong_error(ys[-1])}
            else:
                st = out.stats
                row = {
                    "nfe": st.nfe, "nfe_drift": st.nfe_drift, "nfe_diffusion": st.nfe_diffusion,
                    "steps": st.n_steps, "rejected": st.n_rejected, "strong_error": strong_error(out.ys[-1]),
                }  # fmt: skip
            rows.append({
                "part": "work-precision", "case": name, "noise": problem.noise_type, "method": method,
                "tol": tol, "paths": n_paths, **row, "seconds": seconds[f"{method}@{tol}"],
            })  # fmt: skip
    curves = {
        m: [(r["nfe"], r["strong_error"]) for r in rows if r["method"] == m]
        for m in {r["method"] for r in rows}
    }
    time_curves = {m: [(r["seconds"], r["strong_error"]) for r in rows if r["method"] == m] for m in curves}
    for r in rows:
        if r["method"].startswith("torchsde"):
            continue
        e = r["strong_error"]
        base = _cost_at_error(curves["torchsde-srk"], e)
        best = min(
            (_cost_at_error(curves[f"torchsde-{m}"], e) for m in theirs),
            key=lambda x: x if x == x else math.inf,
        )
        r["nfe_ratio_vs_torchsde"] = ratio(r["nfe"], base)
        r["nfe_ratio_vs_best_torchsde"] = ratio(r["nfe"], best)
        r["time_ratio_vs_torchsde"] = ratio(r["seconds"], _cost_at_error(time_curves["torchsde-srk"], e))
    return rows


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(r["case"] for r in rows))
    fig, axes = plt.subplots(1, len(cases), figsize=(5 * len(cases), 4), squeeze=False)
    for ax, case in zip(axes[0], cases):
        for method in dict.fromkeys(r["method"] for r in rows if r["case"] == case):
            pts = sorted(
                (r["nfe"], r["strong_error"]) for r in rows if r["case"] == case and r["method"] == method
            )
            ax.loglog(
                *zip(*pts), marker="o", linestyle="--" if method.startswith("torchsde") else "-", label=method
            )
        ax.set(title=case, xlabel="NFE (f + g evaluations)", ylabel="strong error E|y_h(T) − y(T)|")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def _geomean(values) -> float:
    logs = [math.log(v) for v in values if v == v and v > 0]
    return math.exp(sum(logs) / len(logs)) if logs else math.nan


def _summary(rows: list[dict]) -> list[dict]:
    out = []
    for case, (ours, _) in CASES.items():
        for method in ours:
            mine = [r for r in rows if r["case"] == case and r["method"] == method]
            measured = _geomean(r["nfe_ratio_vs_torchsde"] for r in mine)
            n = sum(1 for r in mine if r["nfe_ratio_vs_torchsde"] == r["nfe_ratio_vs_torchsde"])
            out.append({
                "case": case, "method": method, "tolerances": n, "nfe_vs_torchsde_srk": measured,
                "nfe_vs_best_torchsde": _geomean(r["nfe_ratio_vs_best_torchsde"] for r in mine),
            })  # fmt: skip
    return out


def _solver_part(args: argparse.Namespace) -> dict:
    n_paths = (1024 if args.full else 256) if args.paths is None else args.paths
    repeats = (5 if args.full else 2) if args.repeats is None else args.repeats
    # torchsde's sweep reaches further on both sides, so that our errors fall inside its curve
    tols = [10 ** (-k / 2) for k in range(2, 10)] if args.full else [10 ** (-k / 2) for k in range(2, 9)]
    their_tols = [10 ** (-k / 2) for k in range(0, 13)] if args.full else [10.0**-k for k in range(0, 7)]
    rows = []
    for name in CASES:
        rows += _work_precision(name, n_paths, args.seed, tols, their_tols, repeats)
    columns = ["case", "method", "tol", "nfe", "strong_error", "seconds", "nfe_ratio_vs_torchsde",
               "nfe_ratio_vs_best_torchsde", "time_ratio_vs_torchsde"]  # fmt: skip
    print_table(rows, columns, f"SDE work-precision ({n_paths} paths per problem, one thread, CPU seconds)")
    png = Path(args.out) / "sde-work-precision.png"
    _plot(rows, png)
    print(f"wrote {png}")
    summary = _summary(rows)
    print_table(
        summary,
        ["case", "method", "tolerances", "nfe_vs_torchsde_srk", "nfe_vs_best_torchsde"],
        "Our NFE / torchsde's at equal strong error (geometric mean over the tolerances)",
    )
    return {"rows": rows, "summary": summary, "paths": n_paths, "repeats": repeats}


# ----------------------------------------------------------------------------------------- neural SDEs
def _neural_part(args: argparse.Namespace, tasks: list[str], variants: list[str]) -> dict:
    from sciml.bench.node import accuracy_tasks, metric_units, run_trainings, summarize
    from sciml.neural_de.training import TrainConfig

    root = Path(args.out) / "sde-runs"
    configs = []
    for task in tasks:
        epochs = args.epochs or EPOCHS[task][1 if args.full else 0]
        for variant in variants:
            weight = (
                WEIGHTS[task].get(variant) if args.weight is None or variant == "vanilla" else args.weight
            )
            for seed in range(args.seeds):
                out = str(root / f"{task}-{variant}-s{seed}")
                configs.append(TrainConfig(
                    task=task, reg=variant, seed=seed, epochs=epochs, out=out, backend="backprop",
                    weight=weight, threads=1, progress=False, kind="sde",
                ))  # fmt: skip
    rows = run_trainings(configs, args.jobs, root)
    rows.sort(key=lambda r: (tasks.index(r["task"]), variants.index(r["method"]), r["seed"]))
    summary = summarize(rows, tasks, variants, points_tasks=accuracy_tasks(tasks, "sde"), keep="weight")
    columns = ["task", "method", "test_metric", "test_std", "train_seconds", "predict_seconds", "predict_nfe",
               "nfe_vs_vanilla", "train_time_vs_vanilla", "metric_delta"]  # fmt: skip
    print_table(blank_single_std(summary, "seeds", ["test_std"]), columns,
                f"Neural SDEs: means over {args.seeds} seed(s); {metric_units(tasks, 'sde')}")  # fmt: skip
    return {"rows": rows, "summary": summary}


def run(args: argparse.Namespace) -> dict:
    tasks, variants = check_options(args)
    torch.set_num_threads(args.threads)
    payload: dict = {"threads": torch.get_num_threads()}
    if args.part in ("solvers", "all"):
        payload["solvers"] = _solver_part(args)
    if args.part in ("neural", "all"):
        payload["neural"] = _neural_part(args, tasks, variants)
    rows = payload.get("solvers", {}).get("rows", []) + payload.get("neural", {}).get("rows", [])
    return {"rows": rows, **payload}
