"""``sciml bench NAME``: benchmarks against the baselines users already have, in one run.

Each entry of :data:`BENCHMARKS` names a module with ``DESCRIPTION``, optional ``add_arguments(parser)``
and ``run(args) -> dict``; see :mod:`sciml.bench.report` for the shared contract.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from sciml.checkpoint import check_writable_dir, write_json

#: benchmark name -> module implementing it
BENCHMARKS: dict[str, str] = {
    "ode": "sciml.bench.ode",
    "node": "sciml.bench.node",
    "relax": "sciml.bench.relax",
    "pde": "sciml.bench.pde",
    "medida": "sciml.bench.medida",
    "sde": "sciml.bench.sde",
    "poisson": "sciml.bench.poisson",
    "stiff": "sciml.bench.stiff",
}

HELP = "run a benchmark (quick by default, --full for paper scale); prints a table and writes JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="NAME", required=True)
    for name, module_name in BENCHMARKS.items():
        module = importlib.import_module(module_name)
        # argparse %-formats a sub-command's help line, not its description
        p = sub.add_parser(name, help=module.DESCRIPTION.replace("%", "%%"), description=module.DESCRIPTION)
        p.add_argument("--full", action="store_true", help="paper-scale sizes and budgets (slow)")
        p.add_argument(
            "--out", default="bench-results", help="directory for JSON and PNG (default: %(default)s)"
        )
        p.add_argument("--json", default=None, help="JSON path (default: OUT/NAME.json)")
        if hasattr(module, "add_arguments"):
            module.add_arguments(p)


def main(args: argparse.Namespace) -> int:
    module = importlib.import_module(BENCHMARKS[args.benchmark])
    out = check_writable_dir(args.out)
    json_path = Path(args.json) if args.json else out / f"{args.benchmark}.json"
    start = time.perf_counter()
    payload = module.run(args)
    payload.setdefault("benchmark", args.benchmark)
    payload.setdefault("full", bool(args.full))
    payload.setdefault("seconds_total", time.perf_counter() - start)
    payload.setdefault("argv", sys.argv[1:])
    write_json(json_path, payload)
    print(f"wrote {json_path}")
    return 0
