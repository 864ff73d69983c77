"""``sciml demo``: our adaptive solvers and torchdiffeq side by side on classic problems.

Prints, per problem and method, the function evaluations, the max relative error against the exact or
reference solution, and the wall time, at one tolerance. Runs in seconds on embedded defaults.
"""

from __future__ import annotations

import argparse
import time

import torch

from problems import ode
from sciml.bench.report import print_table
from solvers.ode import reference_solution, solve

HELP = "solve classic ODEs with our solvers and torchdiffeq side by side (NFE, error, time)"
PROBLEMS = ("harmonic_oscillator", "lotka_volterra", "van_der_pol", "brusselator", "cubic_spiral")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rtol", type=float, default=1e-7, help="relative tolerance (default %(default)s)")


def main(args: argparse.Namespace) -> int:
    import torchdiffeq

    rows = []
    for name in PROBLEMS:
        problem = ode.get(name)
        ts = torch.linspace(*problem.t_span, 21, dtype=torch.float64)
        ref = reference_solution(problem, ts)
        scale = ref.abs().max()
        rtol, atol = args.rtol, args.rtol * 1e-2
        for method in ("tsit5", "dp5", "torchdiffeq-dopri5"):
            calls = [0]

            def counted(t, y, problem=problem, calls=calls):
                calls[0] += 1
                return problem.rhs(t, y)

            start = time.perf_counter()
            if method.startswith("torchdiffeq"):
                ys = torchdiffeq.odeint(counted, problem.y0, ts, rtol=rtol, atol=atol, method="dopri5")
                nfe = calls[0]
            else:
                sol = solve(problem, method, rtol=rtol, atol=atol, saveat=ts)
                ys, nfe = sol.ys, sol.stats.nfe
            seconds = time.perf_counter() - start
            error = ((ys - ref).abs().max() / scale).item()
            rows.append({"problem": name, "method": method, "nfe": nfe, "error": error, "seconds": seconds})
    print_table(
        rows, ["problem", "method", "nfe", "error", "seconds"], f"rtol={args.rtol}, atol={args.rtol * 1e-2}"
    )
    return 0
