"""``sciml bench ode``: our ODE solvers against torchdiffeq, torchode and scipy, in one run.

1. Work–precision: for a range of tolerances on three problems, error vs NFE for our Tsit5/DP5/BS3,
   torchdiffeq's dopri5 and scipy's RK45 and DOP853 (PNG of the diagram). Each of our rows carries the NFE
   and error ratios to torchdiffeq's dopri5 at the same tolerance.
2. Overhead on a neural ODE (MLP 2→64→64→2, tanh, t ∈ [0, 10], weights scaled so the solve takes tens of
   steps), batch 16 and 256, forward and forward+backward, against torchdiffeq and torchode on the same
   function, with the floor = NFE × the time of one bare evaluation of the MLP.

Timings interleave the methods and keep the best of several repeats. By default they use the process's
CPU time (``--clock cpu``): the timings run on one thread, and on a shared machine CPU time does not count
the time other processes hold the core, which wall time does (``--clock wall`` for wall time).

Equal tolerance is not equal accuracy: torchdiffeq's dopri5 pairs the Dormand–Prince solution with a
different embedded 4th-order formula (b̂ = 1951/21600, …, 1/60) from the standard one that we and scipy's
RK45 use (b̂ = 5179/57600, …, 1/40); its estimate is smaller, so it takes a few percent fewer steps and
makes about twice the error at the same tolerance. The table therefore also reports our NFE at
torchdiffeq's *error* (interpolated on our work–precision curve), the comparison that matters to users.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sciml.bench.report import print_table, ratio
from sciml.checkpoint import save_figure
from sciml.problems import ode
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import reference_solution, solve

DESCRIPTION = "ODE solvers: work-precision and neural-ODE overhead vs torchdiffeq, torchode, scipy"

PROBLEMS = ("lotka_volterra", "van_der_pol", "cubic_spiral")
OURS = ("tsit5", "dp5", "bs3")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=None, help="timing repeats (default 5 quick, 15 full)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the timings (default 1)")
    parser.add_argument(
        "--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time (default) or wall time"
    )


_CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = time.process_time


class _Counted:
    """Counts calls of a vector field (for solvers that do not report NFE)."""

    def __init__(self, f: Callable):
        self.f, self.n = f, 0

    def __call__(self, t, y):
        self.n += 1
        return self.f(t, y)


def _best_times(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Interleaved timing: each repeat runs every function once; the minimum per function is kept."""
    best = {k: math.inf for k in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for k, fn in fns.items():
            start = _clock()
            fn()
            best[k] = min(best[k], _clock() - start)
    return best


# ----------------------------------------------------------------------------------------- work-precision
def _work_precision_runs(problem, ts, rtol, atol, np_rhs) -> dict[str, Callable]:
    """One solve per method at one tolerance, as zero-argument callables."""
    import torchdiffeq
    from scipy.integrate import solve_ivp

    runs: dict[str, Callable] = {}
    for m in OURS:
        runs[m] = lambda m=m: solve(problem, m, rtol=rtol, atol=atol, saveat=ts, max_steps=10**6)
    runs["torchdiffeq-dopri5"] = lambda: torchdiffeq.odeint(
        _Counted(problem.rhs), problem.y0, ts, rtol=rtol, atol=atol, method="dopri5"
    )
    for m in ("RK45", "DOP853"):
        runs[f"scipy-{m}"] = lambda m=m: solve_ivp(
            np_rhs, problem.t_span, problem.y0.numpy(), method=m, t_eval=ts.numpy(), rtol=rtol, atol=atol
        )
    try:
        import torchode
    except ImportError:  # an optional baseline (the `bench` extra)
        return runs
    term = torchode.ODETerm(lambda t, y: problem.rhs(t[0], y[0])[None])
    solver = torchode.AutoDiffAdjoint(
        torchode.Tsit5(term=term), torchode.IntegralController(atol=atol, rtol=rtol, term=term)
    )
    ivp = torchode.InitialValueProblem(y0=problem.y0[None], t_eval=ts[None])
    runs["torchode-tsit5"] = lambda: solver.solve(ivp)
    return runs


def _work_precision(tolerances: list[float], repeats: int) -> list[dict]:
    import torchdiffeq

    rows = []
    for name in PROBLEMS:
        problem = ode.get(name)
        ts = torch.linspace(*problem.t_span, 21, dtype=torch.float64)
        ref = reference_solution(problem, ts)
        scale = ref.abs().max().item()

        def rel_error(ys, ref=ref, scale=scale):
            return (torch.as_tensor(ys) - ref).abs().max().item() / scale

        def np_rhs(t, y, problem=problem):
            return problem.rhs(torch.tensor(t, dtype=torch.float64), torch.from_numpy(y)).numpy()

        for tol in tolerances:
            rtol, atol = tol, tol * 1e-2
            runs = _work_precision_runs(problem, ts, rtol, atol, np_rhs)
            seconds = _best_times(runs, repeats)
            for method, run in runs.items():
                if method in OURS:
                    sol = run()
                    nfe, err = sol.stats.nfe, rel_error(sol.ys)
                elif method.startswith("torchode"):
                    sol = run()
                    nfe, err = int(sol.stats["n_f_evals"].max()), rel_error(sol.ys[0])
                elif method.startswith("torchdiffeq"):
                    counted = _Counted(problem.rhs)
                    ys = torchdiffeq.odeint(counted, problem.y0, ts, rtol=rtol, atol=atol, method="dopri5")
                    nfe, err = counted.n, rel_error(ys)
                else:
                    sol = run()
                    nfe, err = int(sol.nfev), rel_error(torch.from_numpy(sol.y.T.copy()))
                rows.append(
                    {
                        "part": "work-precision",
                        "method": method,
                        "case": name,
                        "batch": 1,
                        "tol": tol,
                        "nfe": nfe,
                        "error": err,
                        "seconds": seconds[method],
                    }  # fmt: skip
                )
    by_key = {(r["case"], r["tol"], r["method"]): r for r in rows}
    for r in rows:
        base = by_key[(r["case"], r["tol"], "torchdiffeq-dopri5")]
        r["nfe_vs_torchdiffeq"] = ratio(r["nfe"], base["nfe"])
        r["error_vs_torchdiffeq"] = ratio(r["error"], base["error"])
        curve = sorted(
            (x["error"], x["nfe"]) for x in rows if x["case"] == r["case"] and x["method"] == r["method"]
        )
        r["nfe_at_equal_error_vs_torchdiffeq"] = ratio(_nfe_at_error(curve, base["error"]), base["nfe"])
    return rows


def _nfe_at_error(curve: list[tuple[float, float]], error: float) -> float:
    """NFE at ``error`` by log-log interpolation of a work-precision curve; NaN outside its range."""
    errors, nfes = zip(*curve)
    if not min(errors) <= error <= max(errors) or min(errors) <= 0:
        return math.nan
    return math.exp(np.interp(math.log(error), np.log(errors), np.log(nfes)))


def _plot_work_precision(rows: list[dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PROBLEMS), figsize=(5 * len(PROBLEMS), 4), squeeze=False)
    markers = dict(zip(OURS, "os^"))
    markers.update({"torchdiffeq-dopri5": "x", "scipy-RK45": "D", "scipy-DOP853": "v", "torchode-tsit5": "P"})
    for ax, name in zip(axes[0], PROBLEMS):
        methods = dict.fromkeys(r["method"] for r in rows if r["case"] == name)
        for m in methods:
            pts = sorted((r["nfe"], r["error"]) for r in rows if r["case"] == name and r["method"] == m)
            ours = m in OURS
            # baselines hollow and dashed/dotted so that curves lying on each other stay visible
            style = "-" if ours else {"torchdiffeq": "--", "scipy": ":", "torchode": "-."}[m.split("-")[0]]
            ax.loglog(*zip(*pts), marker=markers.get(m, "o"), label=m, linestyle=style,
                      markersize=6 if ours else 8, markerfacecolor=None if ours else "none",
                      alpha=0.9)  # fmt: skip
        ax.set(title=name, xlabel="function evaluations", ylabel="max relative error")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


# ----------------------------------------------------------------------------------------- overhead
def _mlp(scale: float, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 64),
        torch.nn.Tanh(),
        torch.nn.Linear(64, 2),
    )
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(scale)
    return net


class _Field(torch.nn.Module):
    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, t, y):
        return self.net(y)


def _overhead(batches: list[int], repeats: int, rtol: float, atol: float, scale: float) -> list[dict]:
    import torchdiffeq

    try:
        import torchode
    except ImportError:  # an optional baseline (pip install -e ".[bench]")
        torchode = None
    rows = []
    field = _Field(_mlp(scale))
    ts = torch.tensor([0.0, 10.0])
    for batch in batches:
        torch.manual_seed(1)
        y0 = torch.randn(batch, 2)
        ref = solve(ODEProblem(_Field(_mlp(scale)).double(), y0.double(), (0.0, 10.0)), "dp5", rtol=1e-12,
                    atol=1e-12).ys[-1]  # fmt: skip

        def ours(method, y0=y0):
            return solve(ODEProblem(field, y0, (0.0, 10.0)), method, rtol=rtol, atol=atol)

        def diffeq(y0=y0, counter=None):
            return torchdiffeq.odeint(counter or field, y0, ts, rtol=rtol, atol=atol, method="dopri5")

        runs = {"tsit5": lambda: ours("tsit5"), "dp5": lambda: ours("dp5"), "torchdiffeq-dopri5": diffeq}
        if torchode is not None:
            term = torchode.ODETerm(lambda t, y: field.net(y))
            to_solver = torchode.AutoDiffAdjoint(
                torchode.Tsit5(term=term), torchode.IntegralController(atol=atol, rtol=rtol, term=term)
            )
            t_eval = ts.repeat(batch, 1)

            def torchode_run(y0=y0, to_solver=to_solver, t_eval=t_eval):
                return to_solver.solve(torchode.InitialValueProblem(y0=y0, t_eval=t_eval))

            runs["torchode-tsit5"] = torchode_run

        # NFE and error of each method (torchode solves every sample with its own steps: report the mean)
        info = {}
        with torch.no_grad():
            for m in ("tsit5", "dp5"):
                sol = ours(m)
                info[m] = (sol.stats.nfe, (sol.ys[-1].double() - ref).abs().max().item())
            counter = _Counted(field)
            ys = diffeq(counter=counter)
            info["torchdiffeq-dopri5"] = (counter.n, (ys[-1].double() - ref).abs().max().item())
            if torchode is not None:
                sol = runs["torchode-tsit5"]()
                nfe = float(sol.stats["n_f_evals"].float().mean())
                info["torchode-tsit5"] = (nfe, (sol.ys[:, -1].double() - ref).abs().max().item())

        n_floor = info["tsit5"][0]  # the floor is timed as this many bare evaluations back to back

        def bare_forward(x=y0, n=n_floor):
            for _ in range(n):
                field(ts[0], x)

        with torch.no_grad():
            forward_times = _best_times({**runs, "bare-eval": bare_forward}, repeats)

        def backward(run):
            def go():
                out = run()
                ys = out.ys if hasattr(out, "ys") else out
                ys = ys.ys if hasattr(ys, "ys") else ys
                loss = ys.pow(2).sum()
                grads = torch.autograd.grad(loss, list(field.parameters()))
                return grads

            return go

        def bare_backward(x=y0, n=n_floor):
            for _ in range(n):
                torch.autograd.grad(field(ts[0], x).pow(2).sum(), list(field.parameters()))

        timed = {k: backward(v) for k, v in runs.items()}
        backward_times = _best_times({**timed, "bare-eval": bare_backward}, repeats)
        for mode, times in (("forward", forward_times), ("forward+backward", backward_times)):
            for m in runs:
                nfe, err = info[m]
                rows.append(
                    {
                        "part": "overhead",
                        "method": m,
                        "case": f"mlp-{mode}",
                        "mode": mode,
                        "batch": batch,
                        "nfe": nfe,
                        "error": err,
                        "seconds": times[m],
                        "eval_seconds": times["bare-eval"] / n_floor,
                        "floor_ratio": times[m] / (nfe * times["bare-eval"] / n_floor),
                        "time_vs_torchdiffeq": ratio(times[m], times["torchdiffeq-dopri5"]),
                        "nfe_vs_torchdiffeq": ratio(nfe, info["torchdiffeq-dopri5"][0]),
                    }  # fmt: skip
                )
    return rows


def _torchode_note() -> str | None:
    """None when torchode is importable, else what the output says about the skipped baseline."""
    try:
        import torchode  # noqa: F401
    except ImportError:
        return "torchode is not installed: its baseline is skipped (python -m pip install -e '.[bench]')"
    return None


def run(args: argparse.Namespace) -> dict:
    global _clock
    _clock = _CLOCKS[args.clock]
    repeats = (15 if args.full else 5) if args.repeats is None else args.repeats  # counts: cli.check_numbers
    clock = "CPU time of the process" if args.clock == "cpu" else "wall time"
    torchode_note = _torchode_note()
    if torchode_note:
        print(torchode_note, flush=True)
    torch.set_num_threads(args.threads)
    tolerances = [10.0**-k for k in range(3, 11)] if args.full else [1e-3, 1e-5, 1e-7, 1e-9]
    wp = _work_precision(tolerances, max(1, repeats // 2))
    columns = [
        "case",
        "tol",
        "method",
        "nfe",
        "error",
        "seconds",
        "nfe_vs_torchdiffeq",
        "error_vs_torchdiffeq",
    ]
    print_table(
        wp, columns, f"Work-precision (error = max relative error over 21 save points; seconds: {clock})"
    )
    png = Path(args.out) / "ode-work-precision.png"
    _plot_work_precision(wp, png)
    print(f"wrote {png}")

    overhead = _overhead([16, 256], repeats, rtol=1e-6, atol=1e-6, scale=2.5)
    columns = ["case", "batch", "method", "nfe", "error", "seconds", "floor_ratio", "time_vs_torchdiffeq",
               "nfe_vs_torchdiffeq"]  # fmt: skip
    print_table(
        overhead,
        columns,
        f"Neural-ODE overhead (float32, rtol=atol=1e-6, {torch.get_num_threads()} thread; seconds: {clock})",
    )
    summary = _summary(wp, overhead)
    print_table(
        summary, ["comparison", "ratio"], "Summary (ratios of times or NFE; below 1 favours the first)"
    )
    if torchode_note:
        print(torchode_note)
    return {"rows": wp + overhead, "summary": summary, "threads": torch.get_num_threads(), "repeats": repeats,
            "clock": args.clock, "torchode": torchode_note or "torchode-tsit5 baseline included"}  # fmt: skip


def _summary(wp: list[dict], overhead: list[dict]) -> list[dict]:
    def pick(method, mode, batch):
        return next(
            r for r in overhead if r["method"] == method and r["mode"] == mode and r["batch"] == batch
        )

    def row(name: str, value: float) -> dict:
        return {"comparison": name, "ratio": value}

    out = []
    for batch in (16, 256):
        out.append(row(f"tsit5 forward / bare field evaluations, batch {batch}",
                       pick("tsit5", "forward", batch)["floor_ratio"]))  # fmt: skip
    for batch in (16, 256):
        out.append(row(f"tsit5 forward+backward / torchdiffeq dopri5, batch {batch}",
                       pick("tsit5", "forward+backward", batch)["time_vs_torchdiffeq"]))  # fmt: skip
    for method in ("tsit5", "dp5"):
        mine = [r for r in wp if r["method"] == method]
        for key, label in (
            ("nfe_vs_torchdiffeq", "NFE at equal tolerance"),
            ("error_vs_torchdiffeq", "error at equal tolerance"),
            ("nfe_at_equal_error_vs_torchdiffeq", "NFE at equal error"),
        ):
            out.append(
                row(
                    f"{label}: {method} / torchdiffeq dopri5 (geometric mean)", _geomean(r[key] for r in mine)
                )
            )
    return out


def _geomean(values) -> float:
    logs = [math.log(v) for v in values if v == v and v > 0]
    return math.exp(sum(logs) / len(logs)) if logs else math.nan
