"""``sciml bench stiff``: our implicit methods against scipy's Radau, BDF and LSODA on stiff test problems.

1. Work–precision on the Hairer–Wanner test problems (Robertson, Van der Pol μ = 1e3, HIRES, POLLU; with
   ``--full`` also OREGO, E5 and the 1-D Brusselator with 1000 unknowns; ``--problems`` picks some of
   them): Rodas5P, Radau5 (Radau IIA) and Kvaerno5 everywhere, Rosenbrock23 where it keeps its Jacobian
   across steps (more than 8 unknowns), Rodas4 and Kvaerno3 with ``--full``. For each
   tolerance, the error (max over 11 save times and components of ``|y − ref| / max_t |ref_i|``, reference
   Radau at rtol 1e-11 with the exact Jacobian), the work ``NFE + n·NJEV`` and the CPU time. Every solver
   gets the exact Jacobian (ours by reverse-mode AD; scipy's as a callable computing the same), and the
   same torch vector field. The table compares at equal error: our work and time interpolated (log-log) on
   our curve at each baseline point's error, divided by the baseline's. One PNG per problem (error vs work
   and vs time).
   Quick mode runs the baselines at rtol 1e-4, 1e-5, 1e-6 (ours at 1e-4 … 1e-8); ``--full`` runs
   everything at 1e-4 … 1e-8.
2. Batched Robertson: ``B`` (256) perturbed rate sets in one Rodas5P solve (block-diagonal Jacobian, one
   LU per sample per step) against scipy Radau looping over the systems (quick mode times the loop over
   the first 32 and scales it to ``B``, saying so) and diffrax's Kvaerno5 under ``jax.vmap``.
3. ``method="auto"`` on Van der Pol μ = 1000 over two relaxation periods: its work against pure Rodas5P
   and pure Tsit5.
4. ``--mol`` (alone): the 1-D Brusselator with 10⁴ unknowns, Kvaerno5 matrix-free Newton–Krylov (banded
   preconditioner) against scipy BDF and Radau with ``jac_sparsity`` (see :func:`_mol`).

diffrax's Kvaerno5 (JAX CPU, float64, compiled once with ``jax.jit``; the compiled call is timed) is a
baseline when ``jax`` and ``diffrax`` are importable (``pip install sciml[bench]``), on the batched case
and on Robertson's work–precision (time only: diffrax reports steps, not evaluations); otherwise the
output says it was skipped. Timings are process CPU time (all threads; torch and XLA on one thread), best
of the repeats.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import time
from collections.abc import Callable

import numpy as np
import torch

from sciml.bench.report import check_unique, print_table, ratio, refuse_ignored
from sciml.checkpoint import save_figure
from sciml.problems import ode
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import reference_solution, solve
from sciml.solvers.ode.jacobian import AutodiffJacobian

DESCRIPTION = (
    "stiff ODEs: Rosenbrock, Radau IIA, ESDIRK, method='auto' vs scipy Radau, BDF, LSODA (work-precision)"
)

#: problem -> (factory kwargs, atol as a multiple of rtol, reference atol)
QUICK = {
    "robertson": ({}, 1e-6, 1e-16),
    "van_der_pol_stiff": ({"mu": 1e3}, 1.0, 1e-12),
    "hires": ({}, 1e-4, 1e-16),
    "pollu": ({}, 1e-4, 1e-16),
}
FULL_EXTRA = {
    "orego": ({}, 1.0, 1e-12),
    "e5": ({"t1": 1e5}, 1e-16, 1e-30),  # the core refuses steps < 16 eps |t1 - t0|: 1e13 fails at t0
    "brusselator_1d": ({"n": 500}, 1.0, 1e-12),
}
BASELINES = ("scipy-Radau", "scipy-BDF", "scipy-LSODA")
DIFFRAX = "diffrax-Kvaerno5"
OURS = ("rodas5p", "radau5", "kvaerno5", "rodas4", "kvaerno3", "rosenbrock23")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=None, help="timing repeats (default 1 quick, 3 full)")
    parser.add_argument(
        "--batch", type=int, default=None, help="batched Robertson size (default 256; not with --mol)"
    )
    parser.add_argument(
        "--problems",
        default=None,
        help=f"comma-separated subset of {', '.join({**QUICK, **FULL_EXTRA})} (default: the first four; "
        "--full: all; not with --mol)",
    )
    parser.add_argument(
        "--mol", action="store_true", help="only the large method-of-lines case: 1-D Brusselator, 2 x 5000 "
        "unknowns, kvaerno5 Newton-Krylov vs scipy BDF/Radau with jac_sparsity",
    )  # fmt: skip


def _work(nfe: int, njev: int, n: int) -> int:
    return int(nfe + n * njev)


def _best_cpu(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    best, out = math.inf, None
    for _ in range(repeats):
        start = time.process_time()
        out = fn()
        best = min(best, time.process_time() - start)
    return best, out


def _numpy_field(problem: ODEProblem):
    shape = problem.y0.shape

    def fun(t, y):
        with torch.no_grad():
            return problem.rhs(torch.tensor(t, dtype=torch.float64), torch.from_numpy(y).view(shape)).numpy()

    def jac(t, y):
        def f(tt, z):
            return problem.rhs(torch.tensor(tt, dtype=torch.float64), z)

        with torch.no_grad():
            z = torch.from_numpy(y).view(shape)
            return AutodiffJacobian()(f, t, z.reshape(-1), shape, z).matrix.numpy()

    return fun, jac


def _ours(problem, method, rtol, atol, ts):
    with torch.no_grad():
        sol = solve(problem, method, rtol=rtol, atol=atol, saveat=ts, max_steps=10**6)
    n = problem.y0.numel()
    return sol.ys, _work(sol.stats.nfe, sol.stats.njev, n)


def _scipy(problem, method, rtol, atol, ts):
    from scipy.integrate import solve_ivp

    fun, jac = _numpy_field(problem)
    sol = solve_ivp(
        fun,
        problem.t_span,
        problem.y0.numpy(),
        method=method,
        t_eval=ts.numpy(),
        rtol=rtol,
        atol=atol,
        jac=jac,
    )
    if not sol.success:
        raise RuntimeError(f"scipy {method} failed: {sol.message}")
    return torch.from_numpy(sol.y.T.copy()), _work(sol.nfev, sol.njev, problem.y0.numel())


def _at_error(curve: list[tuple[float, float]], error: float) -> float:
    """log-log interpolation of ``value`` at ``error`` on ``[(error, value)]``; NaN outside the range."""
    curve = sorted(c for c in curve if c[0] > 0 and math.isfinite(c[0]))
    if len(curve) < 2:
        return math.nan
    errors, values = zip(*curve)
    if not min(errors) <= error <= max(errors):
        return math.nan
    return math.exp(np.interp(math.log(error), np.log(errors), np.log(values)))


def _work_precision(
    problems: dict, tolerances: list[float], baseline_tolerances: list[float], repeats: int, out, full: bool
) -> list[dict]:
    rows = []
    for name, (kwargs, atol_factor, ref_atol) in problems.items():
        problem = ode.get(name, **kwargs)
        ts = torch.linspace(*problem.t_span, 11, dtype=torch.float64)
        ref = reference_solution(problem, ts, rtol=1e-11, atol=ref_atol)
        scale = ref.abs().amax(0).clamp_min(ref_atol)
        n = problem.y0.numel()
        ours = ["rodas5p", "radau5", "kvaerno5"] + (["rodas4", "kvaerno3"] if full else [])
        ours += ["rosenbrock23"] if 8 < n <= 100 else []
        started = time.time()
        for tol in sorted(set(tolerances) | set(baseline_tolerances), reverse=True):
            atol = tol * atol_factor
            setting = (problem, tol, atol, ts)
            runs = {m: (lambda m=m, c=setting: _ours(c[0], m, *c[1:])) for m in ours if tol in tolerances}
            if tol < 1e-7:
                runs.pop("rosenbrock23", None)  # order 2: hundreds of thousands of steps at rtol 1e-8
            if tol in baseline_tolerances:
                for base in BASELINES:
                    runs[base] = lambda b=base, c=setting: _scipy(c[0], b.split("-")[1], *c[1:])
                if name == "robertson" and _diffrax() is not None:
                    runs[DIFFRAX] = _diffrax_single(problem, tol, atol, ts)  # compiled here, not timed
            for method, fn in runs.items():
                try:
                    seconds, (ys, work) = _best_cpu(fn, repeats)
                except RuntimeError as exc:
                    print(f"  {name} {method} rtol={tol:g}: {exc}")
                    continue
                error = ((ys - ref).abs() / scale).max().item()
                rows.append(dict(part="work-precision", case=name, method=method, tol=tol, work=work,
                                 error=error, seconds=seconds))  # fmt: skip
        _plot(rows, name, out)
        print(f"  {name}: {time.time() - started:.0f} s", flush=True)
    return rows


def _equal_error(rows: list[dict]) -> list[dict]:
    """Our work and time at each baseline point's error, as ratios to the baseline's."""
    table = []
    for case in dict.fromkeys(r["case"] for r in rows):
        for method in OURS:
            mine = [r for r in rows if r["case"] == case and r["method"] == method]
            if not mine:
                continue
            for base in (*BASELINES, DIFFRAX):
                for b in (r for r in rows if r["case"] == case and r["method"] == base):
                    w = _at_error([(r["error"], r["work"]) for r in mine], b["error"])
                    s = _at_error([(r["error"], r["seconds"]) for r in mine], b["error"])
                    table.append(dict(part="equal-error", case=case, method=method, baseline=base,
                                      tol=b["tol"], error=b["error"], work_ratio=ratio(w, b["work"]),
                                      time_ratio=ratio(s, b["seconds"])))  # fmt: skip
    return table


def _plot(rows: list[dict], case: str, out, work_label: str = "work = NFE + n·NJEV") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for m in dict.fromkeys(r["method"] for r in rows if r["case"] == case):
        pts = sorted(
            (r["error"], r["work"], r["seconds"]) for r in rows if r["case"] == case and r["method"] == m
        )
        err, work, sec = zip(*pts)
        style = "--" if m.startswith(("scipy", "diffrax")) else "-"
        if all(math.isfinite(w) for w in work):
            axes[0].loglog(work, err, marker="o", linestyle=style, label=m)
        axes[1].loglog(sec, err, marker="o", linestyle=style, label=m)
    axes[0].set(xlabel=work_label, ylabel="max relative error", title=f"{case}: error vs work")
    axes[1].set(xlabel="CPU seconds (1 thread)", ylabel="max relative error", title=f"{case}: error vs time")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        _few_log_ticks(ax)
    axes[0].legend(fontsize=8)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / f"stiff-{case}.png", dpi=110)


def _few_log_ticks(ax, most: int = 6) -> None:
    """Label a log x axis at a few ticks only: matplotlib labels the minor ticks too when the axis spans
    less than about two decades, and they overlap. Decades when at least three are in view, else 1, 2 and 5
    times them, else 1 to 9 times them, thinned to at most ``most`` labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    low, high = ax.get_xlim()
    if not (0 < low < high and math.isfinite(high)):
        return
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    for subs in ((1,), (1, 2, 5), tuple(range(1, 10))):
        ticks = [m * 10.0**k for k in decades for m in subs if low <= m * 10.0**k <= high]
        if len(ticks) >= 3:
            break
    ticks = ticks[:: max(1, math.ceil(len(ticks) / most))]
    ax.set_xlim(low, high)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _diffrax():
    """``(jax, jax.numpy, diffrax)`` in float64 on one CPU thread, or None when they are not installed."""
    try:
        os.environ.setdefault(
            "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        )
        import diffrax
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    return jax, jnp, diffrax


@functools.cache
def _diffrax_robertson(t1: float, ts: tuple[float, ...], batched: bool):
    """diffrax Kvaerno5 on Robertson, ``(y0, rates, rtol, atol) -> ys`` (``jax.vmap`` over rows when
    ``batched``), compiled with ``jax.jit`` once per ``(t1, ts, batched)`` (the tolerances are traced); the
    first call compiles, so callers make one before timing."""
    jax, jnp, diffrax = _diffrax()

    def f(t, y, k):
        a, b, c = y[0], y[1], y[2]
        return jnp.stack([-k[0] * a + k[2] * b * c, k[0] * a - k[2] * b * c - k[1] * b * b, k[1] * b * b])

    term, save = diffrax.ODETerm(f), diffrax.SaveAt(ts=jnp.asarray(ts))

    def one(y0, k, rtol, atol):
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
        return diffrax.diffeqsolve(term, diffrax.Kvaerno5(), 0.0, t1, None, y0, args=k, saveat=save,
                                   stepsize_controller=controller, max_steps=100_000).ys  # fmt: skip

    fn = jax.jit(jax.vmap(one, in_axes=(0, 0, None, None)) if batched else one)

    def call(y0: np.ndarray, k: np.ndarray, rtol: float, atol: float) -> torch.Tensor:
        ys = jax.block_until_ready(fn(jnp.asarray(y0), jnp.asarray(k), rtol, atol))
        return torch.from_numpy(np.array(ys))

    return call


def _diffrax_single(problem: ODEProblem, rtol: float, atol: float, ts: torch.Tensor):
    """A compiled diffrax solve of ``problem`` (Robertson) returning ``(ys, work)``; work is NaN (diffrax
    counts steps, not evaluations)."""
    call = _diffrax_robertson(float(problem.t_span[1]), tuple(ts.tolist()), False)
    y0, k = problem.y0.numpy(), torch.as_tensor(problem.params, dtype=torch.float64).numpy()
    call(y0, k, rtol, atol)  # compile (once) outside the timing
    return lambda: (call(y0, k, rtol, atol), math.nan)


def _batched(batch: int, repeats: int, full: bool) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    rates = torch.tensor([0.04, 3e7, 1e4], dtype=torch.float64) * (
        1 + 0.2 * (torch.rand(batch, 3, generator=gen, dtype=torch.float64) - 0.5)
    )
    y0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).repeat(batch, 1)

    def f(t, y, k):
        a, b, c = y.unbind(-1)
        k1, k2, k3 = k.unbind(-1)
        return torch.stack([-k1 * a + k3 * b * c, k1 * a - k3 * b * c - k2 * b * b, k2 * b * b], -1)

    problem = ODEProblem(f, y0, (0.0, 40.0), rates, name="robertson_batch", stiff=True)
    rtol, atol = 1e-6, 1e-12
    ts = torch.tensor([0.0, 40.0], dtype=torch.float64)
    looped = batch if full else min(batch, 32)

    def ours():
        with torch.no_grad():
            return solve(problem, "rodas5p", rtol=rtol, atol=atol, saveat=ts, jac="batched")

    def scipy_loop():
        outs = []
        for b in range(looped):
            single = ODEProblem(f, y0[b], (0.0, 40.0), rates[b], stiff=True)
            outs.append(_scipy(single, "Radau", rtol, atol, ts)[0][-1])
        return torch.stack(outs)

    t_ours, sol = _best_cpu(ours, repeats)
    t_loop, ys = _best_cpu(scipy_loop, repeats)
    t_scipy = t_loop * batch / looped
    diff = (sol.ys[-1, :looped] - ys).abs().max().item()
    case = f"robertson x{batch}"
    loop_label = (
        "scipy-Radau (loop)" if looped == batch else f"scipy-Radau (loop; {looped} of {batch} timed, scaled)"
    )
    rows = [
        dict(part="batched", case=case, method="rodas5p (one batched solve)", seconds=t_ours,
             time_vs_radau_loop=t_ours / t_scipy, max_difference_vs_radau=diff),
        dict(part="batched", case=case, method=loop_label, seconds=t_scipy, time_vs_radau_loop=1.0,
             max_difference_vs_radau=0.0),
    ]  # fmt: skip
    if _diffrax() is not None:
        call = _diffrax_robertson(40.0, tuple(ts.tolist()), True)
        call(y0.numpy(), rates.numpy(), rtol, atol)  # compile outside the timing
        t_dfx, ys_dfx = _best_cpu(lambda: call(y0.numpy(), rates.numpy(), rtol, atol), repeats)
        rows.append(dict(part="batched", case=case, method=f"{DIFFRAX} (jax.vmap, compiled)", seconds=t_dfx,
                         time_vs_radau_loop=t_dfx / t_scipy,
                         max_difference_vs_radau=(ys_dfx[:looped, -1] - ys).abs().max().item()))  # fmt: skip
        rows[0]["time_vs_diffrax"] = t_ours / t_dfx
    return rows


def _auto(repeats: int) -> list[dict]:
    problem = ode.van_der_pol(mu=1000.0).replace(t_span=(0.0, 3000.0))
    rows = []
    works = {}
    for method in ("rodas5p", "auto", "tsit5"):
        kwargs = dict(rtol=1e-5, atol=1e-7, throw=False)
        if method == "tsit5":  # bounded: ≥ 6 evaluations per step, so hitting the bound means more work
            kwargs["max_steps"] = works["rodas5p"] // 6 + 1
        with torch.no_grad():
            seconds, sol = _best_cpu(lambda m=method, kw=kwargs: solve(problem, m, **kw), repeats)
        work = _work(sol.stats.nfe, sol.stats.njev, 2)
        works[method] = work
        rows.append(dict(part="auto", case="van_der_pol mu=1000, t in [0, 3000]", method=method, work=work,
                         seconds=seconds, status=sol.status.value, switches=len(sol.switches)))  # fmt: skip
    pure = [r["work"] for r in rows if r["method"] != "auto" and r["status"] == "success"]
    best = min(pure) if pure else math.nan
    for r in rows:
        r["work_vs_best_pure"] = ratio(r["work"], best) if r["status"] == "success" else math.nan
    return rows


def run(args: argparse.Namespace) -> dict:
    from pathlib import Path

    out = Path(args.out)
    full = bool(args.full)
    repeats = (3 if full else 1) if args.repeats is None else args.repeats
    batch = 256 if args.batch is None else args.batch
    problems = {**QUICK, **FULL_EXTRA} if full else QUICK
    if args.mol:
        refuse_ignored(args, ["problems", "batch"], "by --mol (it runs only the large Brusselator case)")
    if args.problems is not None:
        names = [n.strip() for n in args.problems.split(",") if n.strip()]
        unknown = [n for n in names if n not in {**QUICK, **FULL_EXTRA}]
        if unknown or not names:
            raise ValueError(
                f"--problems: unknown {unknown or repr(args.problems)}; choose from "
                f"{', '.join({**QUICK, **FULL_EXTRA})}"
            )
        check_unique(names, "--problems")
        problems = {n: {**QUICK, **FULL_EXTRA}[n] for n in names}
    torch.set_num_threads(1)
    if args.mol:
        rows = _mol(repeats, out)
        columns = ["case", "method", "tol", "work", "error", "seconds", "work_vs_BDF", "time_vs_BDF",
                   "work_vs_Radau", "time_vs_Radau"]  # fmt: skip
        print_table(
            rows, columns, title="method of lines, matrix-free (ratios < 1: we need less; seconds: CPU time)"
        )
        return {"rows": rows}
    # ours at every decade in both modes: a chord over two decades of a convex work-precision curve
    # overstates the work between its ends (Van der Pol: radau5 1.21x instead of 1.04x at rtol 1e-5)
    tolerances = [1e-4, 1e-5, 1e-6, 1e-7, 1e-8]
    # quick: the baselines at the loose end only (their errors at rtol ≤ 1e-6 fall in our curve's range;
    # Radau's at 1e-8 fall below it), which keeps the run to a few minutes
    baseline_tolerances = tolerances if full else [1e-4, 1e-5, 1e-6]
    with torch.no_grad():  # first-call costs (autograd's vmap set-up, coefficient casts) kept out of timings
        solve(ode.robertson(), "rodas5p", rtol=1e-4, atol=1e-8, jac=None)
        solve(ode.robertson(), "radau5", rtol=1e-4, atol=1e-8, jac=None)
    rows = _work_precision(problems, tolerances, baseline_tolerances, repeats, out, full)
    print_table(
        rows,
        ["case", "method", "tol", "work", "error", "seconds"],
        title="work-precision (seconds: CPU time of the process, best of the repeats)",
    )
    equal = _equal_error(rows)
    print_table(
        [r for r in equal if r["method"] in ("rodas5p", "radau5")],
        ["case", "method", "baseline", "tol", "error", "work_ratio", "time_ratio"],
        title="Rodas5P and Radau5 at the baseline's error (ratio < 1: we need less)",
    )
    summary = []
    for case in dict.fromkeys(r["case"] for r in equal):
        for method in OURS:
            for base in (*BASELINES, DIFFRAX):
                sel = [r for r in equal if (r["case"], r["baseline"], r["method"]) == (case, base, method)]
                if not sel:
                    continue
                w = [r["work_ratio"] for r in sel if math.isfinite(r["work_ratio"])]
                s = [r["time_ratio"] for r in sel if math.isfinite(r["time_ratio"])]
                summary.append(dict(part="summary", case=case, method=method, baseline=base,
                                    median_work_ratio=float(np.median(w)) if w else math.nan,
                                    median_time_ratio=float(np.median(s)) if s else math.nan))  # fmt: skip
    print_table(summary, ["case", "method", "baseline", "median_work_ratio", "median_time_ratio"],
                title="ours vs baselines at equal error (median over baseline tolerances)")  # fmt: skip
    batched = _batched(batch, repeats, full)
    print_table(batched, ["case", "method", "seconds", "time_vs_radau_loop", "time_vs_diffrax",
                          "max_difference_vs_radau"],
                title="batched Robertson (rtol 1e-6; seconds: CPU time)")  # fmt: skip
    auto = _auto(repeats)
    print_table(auto, ["case", "method", "work", "seconds", "status", "switches", "work_vs_best_pure"],
                title="method='auto' (seconds: CPU time)")  # fmt: skip
    if _diffrax() is not None:
        diffrax_note = f"{DIFFRAX}: JAX CPU, float64, compiled call timed (Robertson and the batched case)"
    else:
        diffrax_note = "diffrax/jax not installed: Kvaerno5 baseline skipped (pip install sciml[bench])"
    print(diffrax_note)
    return {"rows": rows + equal + summary + batched + auto, "diffrax": diffrax_note}


def _mol(repeats: int, out, n: int = 5000) -> list[dict]:
    """The 1-D Brusselator with ``2n`` unknowns (dense Jacobians refused): kvaerno5 matrix-free Newton–Krylov
    with the banded preconditioner against scipy BDF and Radau given the Jacobian's sparsity pattern
    (``jac_sparsity``: grouped finite differences and a sparse LU). Work: calls of ``f`` — ours ``nfe +
    njvp`` (a product costs about two calls here), scipy's counted at the field (its ``nfev`` leaves out
    the grouped differences). Error as in the work–precision part, against scipy Radau at rtol 1e-10; for
    each of our points, work and time at its error interpolated (log-log) on each baseline's curve. One PNG
    (error vs work and vs time)."""
    import scipy.sparse as sp
    from scipy.integrate import solve_ivp

    from sciml.solvers.ode.jacobian import BandedPreconditioner, NewtonKrylov

    problem = ode.brusselator_1d(n=n)
    size = problem.y0.numel()
    ts = torch.linspace(*problem.t_span, 11, dtype=torch.float64)
    pattern = sp.diags([np.ones(size - abs(k)) for k in range(-2, 3)], list(range(-2, 3)), format="csr")
    calls = [0]

    def fun(t, y):
        calls[0] += 1
        with torch.no_grad():
            return problem.rhs(torch.tensor(t, dtype=torch.float64), torch.from_numpy(y)).numpy()

    def scipy_run(method, tol):
        calls[0] = 0
        sol = solve_ivp(fun, problem.t_span, problem.y0.numpy(), method=method, rtol=tol, atol=tol,
                        t_eval=ts.numpy(), jac_sparsity=pattern)  # fmt: skip
        if not sol.success:
            raise RuntimeError(f"scipy {method} failed: {sol.message}")
        return torch.from_numpy(sol.y.T.copy()), calls[0]

    def ours(tol):
        jac = NewtonKrylov(preconditioner=BandedPreconditioner(2, 2))
        with torch.no_grad():
            sol = solve(problem, "kvaerno5", rtol=tol, atol=tol, saveat=ts, jac=jac, max_steps=10**6)
        return sol.ys, sol.stats.nfe + sol.stats.njvp

    ref = scipy_run("Radau", 1e-10)[0]
    scale = ref.abs().amax(0)
    case = f"brusselator_1d_{size}_unknowns"
    rows = []
    runs = [("kvaerno5 Newton-Krylov (banded)", ours)]
    runs += [(f"scipy-{m} (jac_sparsity)", functools.partial(scipy_run, m)) for m in ("BDF", "Radau")]
    for method, fn in runs:
        for tol in (1e-4, 1e-6, 1e-8):
            seconds, (ys, work) = _best_cpu(lambda fn=fn, tol=tol: fn(tol), repeats)
            error = ((ys - ref).abs() / scale).max().item()
            rows.append(dict(part="mol", case=case, method=method, tol=tol, work=work, error=error,
                             seconds=seconds))  # fmt: skip
    for base in ("BDF", "Radau"):
        curve = [r for r in rows if r["method"].startswith(f"scipy-{base}")]
        for r in rows:
            if r["method"].startswith("kvaerno5"):
                w = _at_error([(c["error"], c["work"]) for c in curve], r["error"])
                s = _at_error([(c["error"], c["seconds"]) for c in curve], r["error"])
                r[f"work_vs_{base}"], r[f"time_vs_{base}"] = ratio(r["work"], w), ratio(r["seconds"], s)
    _plot(rows, case, out, work_label="work = calls of f (ours: NFE + NJVP)")
    return rows
