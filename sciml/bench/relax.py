"""``sciml bench relax``: bandit-tuned SOR / SSOR-PCG across sequences of linear systems (REFERENCES §7).

Settings (Khodak et al., *Learning to Relax*, ICLR 2024):

* ``shift-high`` / ``shift-low``: SOR on ``A + c_t I`` (10×10 Laplacian), ``T`` i.i.d. instances, x0 = 0,
  rtol 1e-8. Every relaxation factor of the 20-arm grid is run on every instance first (batched SOR), which
  gives the best fixed ω in hindsight and the instance-optimal grid policy; then each method runs its own
  sequential solves, timed: ω = 1, best fixed, instance-optimal, Young's ω* per instance, Tsallis-INF,
  ChebCB (context c_t) and one Tsallis-INF per context bin. Each tuner's choices are also replayed on the
  cost table for 5 more tuner seeds (mean ± std of the ratio).
* ``heat-N``: Crank–Nicolson heat equation on N² unknowns, warm starts, rtol 1e-8: plain CG against
  SSOR-preconditioned CG with ω = 1, Young's ω*, the best fixed ω and the tuners (context κ(t)); total
  iterations and wall time. The best fixed ω is chosen from, and the instance-optimal policy estimated on,
  every ``stride``-th step where all 20 arms are run from the CG trajectory's state (the instance-optimal
  row is that estimate scaled to all steps; its seconds are not measured).

JSON rows ``{"setting", "method", "total_iterations", "seconds", ...}``; ``relax-regret.png``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from sciml.bench.report import print_table, ratio
from sciml.checkpoint import save_figure
from sciml.problems.linear import HeatEquation2D, ShiftedLaplacianSequence
from sciml.relax import ChebCB, ContextualBins, TsallisINF, default_arms
from sciml.solvers.linear import cg, sor, sor_batch, ssor_preconditioner, young_omega

DESCRIPTION = "bandit-tuned SOR / SSOR-PCG over sequences of systems (shifted Laplacians, heat equation)"

RTOL = 1e-8
SOR_MAXITER = 10_000
REPLAY_SEEDS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--instances", type=int, default=None, help="T per shift setting (default 500, full 5000)"
    )
    parser.add_argument(
        "--heat-N", type=int, default=None, help="heat grid N (N² unknowns; default 64, full 200)"
    )
    parser.add_argument(
        "--heat-steps", type=int, default=1000, help="heat time steps (default 1000 = one period of κ)"
    )
    parser.add_argument(
        "--heat-stride", type=int, default=None, help="run all arms every k-th heat step (default steps/40)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the shift sequences (tuners: 0)")


def _tuners(context_range: tuple[float, float], seed: int) -> dict[str, Any]:
    return {
        "tsallis-inf": TsallisINF(default_arms(), seed=seed),
        "contextual-cheb": ChebCB(default_arms(), context_range=context_range, gamma=10.0, seed=seed),
        "contextual-bins": ContextualBins(default_arms(), context_range=context_range, seed=seed),
    }


def _arm_index(arms: np.ndarray, omega: float) -> int:
    return int(np.argmin(np.abs(arms - omega)))


# --------------------------------------------------------------------------------------------- shifts
def _shift_setting(variance: str, T: int, seed: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    seq = ShiftedLaplacianSequence(variance, seed=seed)
    arms = default_arms()
    A, c, B = seq.matrix(), seq.shifts(T), seq.rhs(T)
    start = time.perf_counter()
    batch = sor_batch(A, np.tile(B.T, (1, arms.size)), np.repeat(arms, T), np.tile(c, arms.size), rtol=RTOL)
    table = batch.iterations.reshape(arms.size, T).T  # (T, arms)
    table_seconds = time.perf_counter() - start
    best = int(table.sum(0).argmin())
    eye = sp.eye_array(seq.n, format="csr")
    systems = [sp.csr_array(A + ct * eye) for ct in c]
    young = [young_omega(spectral_radius=seq.jacobi_spectral_radius(ct)) for ct in c]
    fixed_choices = {
        "omega=1": np.ones(T),
        "best-fixed": np.full(T, arms[best]),
        "instance-optimal": arms[table.argmin(1)],
        "young": np.asarray(young),
    }
    setting = f"shift-{variance}"
    costs: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    consistent = True
    for name, omegas in fixed_choices.items():
        its = np.empty(T, dtype=np.int64)
        start = time.perf_counter()
        for t in tqdm(range(T), desc=f"{setting} {name}", leave=False):
            its[t] = sor(systems[t], B[t], omegas[t], rtol=RTOL, maxiter=SOR_MAXITER).iterations
        seconds[name] = time.perf_counter() - start
        costs[name] = its
        if name != "young":
            consistent &= bool(
                np.array_equal(its, table[np.arange(T), [_arm_index(arms, w) for w in omegas]])
            )
    replays: dict[str, list[float]] = {}
    for name, tuner in _tuners(seq.context_range, 0).items():
        its = np.empty(T, dtype=np.int64)
        start = time.perf_counter()
        for t in tqdm(range(T), desc=f"{setting} {name}", leave=False):
            omega = tuner.select(c[t])
            its[t] = sor(systems[t], B[t], omega, rtol=RTOL, maxiter=SOR_MAXITER).iterations
            tuner.update(its[t])
            consistent &= bool(its[t] == table[t, _arm_index(arms, omega)])
        seconds[name] = time.perf_counter() - start
        costs[name] = its
        replays[name] = [_replay(make, table, c, arms) for make in _replay_makers(name, seq.context_range)]
    bf, io, w1 = table[:, best].sum(), table.min(1).sum(), table[:, 0].sum()
    rows = []
    for name, its in costs.items():
        row = {
            "setting": setting,
            "method": name,
            "total_iterations": int(its.sum()),
            "seconds": seconds[name],
            "mean_iterations": float(its.mean()),
            "vs_best_fixed": ratio(its.sum(), bf),
            "vs_instance_optimal": ratio(its.sum(), io),
            "fewer_than_omega1": ratio(w1, its.sum()),
            "instances": T,
        }
        if name == "best-fixed":
            row["omega"] = float(arms[best])
        if name in replays:
            base = bf if name == "tsallis-inf" else io
            r = np.asarray(replays[name]) / base
            row["replay_ratio_mean"], row["replay_ratio_std"] = float(r.mean()), float(r.std())
        rows.append(row)
    rows[0]["table_seconds"] = table_seconds
    rows[0]["solves_match_table"] = consistent
    # ω = 1 is off the scale of the others (its ratio is in the table); instance-optimal is the zero line
    curves = {
        name: np.cumsum(its - table.min(1))
        for name, its in costs.items()
        if name not in ("instance-optimal", "omega=1")
    }
    return rows, curves


def _replay_makers(name: str, context_range: tuple[float, float]) -> list:
    return [lambda s=s: _tuners(context_range, s)[name] for s in range(1, REPLAY_SEEDS + 1)]


def _replay(make, table: np.ndarray, contexts: np.ndarray, arms: np.ndarray) -> float:
    tuner, total = make(), 0
    for t in range(table.shape[0]):
        cost = table[t, _arm_index(arms, tuner.select(contexts[t]))]
        tuner.update(cost)
        total += cost
    return float(total)


# --------------------------------------------------------------------------------------------- heat
def _heat_run(heat: HeatEquation2D, method: str, choose, stride: int | None = None) -> dict[str, Any]:
    """Run the simulation with one solver policy. ``choose(k, context) -> omega`` (None: plain CG);
    ``feedback(cost)`` via ``choose.update`` when present. With ``stride``, also run all arms every
    ``stride``-th step from the current state (not timed)."""
    K = heat.laplacian()
    u = heat.initial()
    M = None
    arms = default_arms()
    iterations = np.zeros(heat.steps, dtype=np.int64)
    elapsed = np.zeros(heat.steps)
    sampled: list[np.ndarray] = []
    for k in tqdm(range(heat.steps), desc=f"heat-{heat.N} {method}", leave=False):
        inst = heat.system(k, u, K)
        start = time.perf_counter()
        omega = choose(k, inst.context)
        if omega is None:
            res = cg(inst.A, inst.b, inst.x0, rtol=RTOL)
        else:
            M = ssor_preconditioner(inst.A, omega) if M is None else M.update(inst.A, omega)
            res = cg(inst.A, inst.b, inst.x0, rtol=RTOL, M=M)
        if hasattr(choose, "update"):
            choose.update(res.iterations)
        elapsed[k] = time.perf_counter() - start
        if not res.converged:
            raise RuntimeError(f"heat step {k} with {method}: {res.message}")
        iterations[k] = res.iterations
        if stride and k % stride == 0:
            P = ssor_preconditioner(inst.A, 1.0)
            sampled.append(
                np.array(
                    [cg(inst.A, inst.b, inst.x0, rtol=RTOL, M=P.update(omega=w)).iterations for w in arms]
                )
            )
        u = res.x
    return {"iterations": iterations, "elapsed": elapsed, "sampled": np.array(sampled)}


class _TunerPolicy:
    def __init__(self, tuner):
        self.tuner = tuner

    def __call__(self, k, context):
        return self.tuner.select(context)

    def update(self, cost):
        self.tuner.update(cost)


def _heat_setting(N: int, steps: int, stride: int) -> tuple[list[dict], dict[str, np.ndarray]]:
    heat = HeatEquation2D(N=N, steps=steps)
    setting = f"heat-{N}"
    arms = default_arms()
    runs: dict[str, dict] = {}
    runs["cg"] = _heat_run(heat, "cg", lambda k, c: None, stride=stride)
    table = runs["cg"]["sampled"]  # (sampled steps, arms)
    best = int(table.sum(0).argmin())
    runs["omega=1"] = _heat_run(heat, "omega=1", lambda k, c: 1.0)
    runs["best-fixed"] = _heat_run(heat, "best-fixed", lambda k, c: float(arms[best]))
    runs["young"] = _heat_run(
        heat, "young", lambda k, c: young_omega(spectral_radius=heat.jacobi_spectral_radius(k))
    )
    for name, tuner in _tuners(heat.context_range, 0).items():
        runs[f"ssor-pcg-{name}"] = _heat_run(heat, name, _TunerPolicy(tuner))
    cg_seconds = runs["cg"]["elapsed"].sum()
    rows = []
    for name, run in runs.items():
        total, secs = int(run["iterations"].sum()), float(run["elapsed"].sum())
        row = {
            "setting": setting,
            "method": name,
            "total_iterations": total,
            "seconds": secs,
            "seconds_vs_cg": ratio(secs, cg_seconds),
            "steps": steps,
            "unknowns": heat.n,
        }
        if name == "best-fixed":
            row["omega"] = float(arms[best])
        rows.append(row)
    sampled_total = table.min(1).mean() * steps
    rows.append(
        {
            "setting": setting,
            "method": "instance-optimal",
            "total_iterations": int(round(sampled_total)),
            "seconds": math.nan,
            "estimated_from_steps": int(table.shape[0]),
            "steps": steps,
            "unknowns": heat.n,
        }
    )
    for row in rows:
        if row["method"] not in ("cg", "instance-optimal"):
            row["vs_instance_optimal_estimate"] = ratio(row["total_iterations"], sampled_total)
    curves = {name: np.cumsum(run["elapsed"]) for name, run in runs.items()}
    return rows, curves


# --------------------------------------------------------------------------------------------- main
def _plot(curves: dict[str, dict[str, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4.2), squeeze=False)
    for ax, (setting, series) in zip(axes[0], curves.items()):
        for name, values in series.items():
            ax.plot(np.arange(1, values.size + 1), values, label=name, lw=1.6)
        ax.set_title(setting)
        if setting.startswith("heat"):
            ax.set_xlabel("time step")
            ax.set_ylabel("cumulative solve wall time [s]")
        else:
            ax.set_xlabel("instance t")
            ax.set_ylabel("cumulative iterations above instance-optimal")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def run(args: argparse.Namespace) -> dict:
    T = args.instances or (5000 if args.full else 500)
    N = args.heat_N or (200 if args.full else 64)
    steps = args.heat_steps
    stride = args.heat_stride or max(1, steps // 40)
    for name, value in (
        ("--instances", T),
        ("--heat-N", N),
        ("--heat-steps", steps),
        ("--heat-stride", stride),
    ):
        if value < 1:
            raise ValueError(f"{name} must be positive, got {value}")
    if N < 2:
        raise ValueError(f"--heat-N must be at least 2, got {N}")
    rows: list[dict] = []
    curves: dict[str, dict[str, np.ndarray]] = {}
    for variance in ("high", "low"):
        r, cv = _shift_setting(variance, T, args.seed)
        rows += r
        curves[f"shift-{variance}"] = cv
        print_table(
            r,
            [
                "method",
                "total_iterations",
                "mean_iterations",
                "seconds",
                "vs_best_fixed",
                "vs_instance_optimal",
                "fewer_than_omega1",
                "replay_ratio_mean",
                "replay_ratio_std",
            ],
            title=f"shift-{variance}: SOR, T = {T} instances, rtol {RTOL:g}"
            + ("" if T >= 5000 else " (quick: fewer than the paper's 5000)"),
        )
    r, cv = _heat_setting(N, steps, stride)
    rows += r
    curves[f"heat-{N}"] = cv
    print_table(
        r,
        ["method", "total_iterations", "seconds", "seconds_vs_cg", "vs_instance_optimal_estimate"],
        title=f"heat-{N}: CG vs SSOR-PCG, {N}² unknowns, {steps} steps (dt 1e-3), warm starts, "
        f"rtol {RTOL:g}; all arms run every {stride}th step",
    )
    png = Path(args.out) / "relax-regret.png"
    _plot(curves, png)
    print(f"wrote {png}")
    return {
        "rows": rows,
        "instances": T,
        "heat": {"N": N, "steps": steps, "stride": stride},
        "quick_note": None
        if args.full
        else "quick mode: fewer instances and a smaller heat grid than --full",
        "png": str(png),
    }
