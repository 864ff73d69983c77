"""The ``sciml`` command.

Each sub-command lives in its own module exposing ``HELP``, ``add_arguments(parser)`` and
``main(args) -> int``; :data:`COMMANDS` lists them. Errors users can fix (bad arguments, unwritable paths)
are printed as one line without a traceback (``SCIML_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

#: sub-command -> module implementing it
COMMANDS: dict[str, str] = {
    "demo": "sciml.demo",
    "bench": "sciml.bench",
    "train": "sciml.neural_de.cli",
    "medida": "sciml.medida.cli",
    "pde": "sciml.pinn.cli",
    "dcdm": "sciml.dcdm.cli",
    "relax": "sciml.relax.cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sciml", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._module.main(args) or 0)
    except (ValueError, FileNotFoundError, PermissionError) as exc:
        if os.environ.get("SCIML_DEBUG"):
            raise
        print(f"sciml {args.command}: error: {exc}  (set SCIML_DEBUG=1 for a traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sciml {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
