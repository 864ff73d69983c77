"""``sciml bench NAME``: benchmarks against the baselines users already have, in one run.

Each entry of :data:`BENCHMARKS` names a module with ``DESCRIPTION``, optional ``add_arguments(parser)``,
``check_args(args)`` (refuses bad options before ``--out`` is created), ``interrupt_hint(args)`` and
``json_stem(args)`` (the default JSON's name for a mode, so that modes do not overwrite each other's), and
``run(args) -> dict``; see :mod:`sciml.bench.report` for the shared
contract.
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
        default_json = getattr(module, "JSON_DEFAULT", "OUT/NAME.json")
        p.add_argument("--json", default=None, help=f"JSON path (default: {default_json})")
        if hasattr(module, "add_arguments"):
            module.add_arguments(p)


def json_path(args: argparse.Namespace) -> Path:
    """Where the JSON goes, checked before any work: ``--json`` (or ``OUT/NAME.json``) must name a file whose
    folder can be created and written, not a directory; ``--out`` must be a writable directory.

    Raises:
        ValueError: naming the option and the path.
    """
    out = check_writable_dir(args.out)
    if not args.json:
        stem = getattr(importlib.import_module(BENCHMARKS[args.benchmark]), "json_stem", None)
        path = out / f"{stem(args) if stem is not None else args.benchmark}.json"
        if path.is_dir():
            raise ValueError(f"--out {out} holds a folder named {path.name}, where the JSON goes; move it")
        return path
    path = Path(args.json)
    if path.is_dir():
        raise ValueError(
            f"--json {path} is a directory; give a file path, e.g. --json {path / (args.benchmark + '.json')}"
        )
    try:
        check_writable_dir(path.parent, "--json")
    except ValueError as exc:
        raise ValueError(
            f"--json {path}: its folder {path.parent} cannot be created or written ({exc.__cause__})"
        ) from None
    return path


def interrupt_hint(args: argparse.Namespace) -> str | None:
    """What the benchmark's own ``interrupt_hint`` says after Ctrl-C (e.g. which runs ``--resume`` keeps)."""
    hint = getattr(importlib.import_module(BENCHMARKS[args.benchmark]), "interrupt_hint", None)
    return hint(args) if hint is not None else None


def main(args: argparse.Namespace) -> int:
    module = importlib.import_module(BENCHMARKS[args.benchmark])
    if hasattr(module, "check_args"):  # a refused invocation leaves no --out folder behind
        module.check_args(args)
    json_file = json_path(args)
    start = time.perf_counter()
    payload = module.run(args)
    payload.setdefault("benchmark", args.benchmark)
    payload.setdefault("full", bool(args.full))
    payload.setdefault("seconds_total", time.perf_counter() - start)
    payload.setdefault("argv", sys.argv[1:])
    write_json(json_file, payload)
    print(f"wrote {json_file}")
    return 0
