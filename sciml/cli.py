"""The ``sciml`` command.

Each sub-command lives in its own module exposing ``HELP``, ``add_arguments(parser)`` and
``main(args) -> int`` (and optionally ``interrupt_hint(args) -> str | None``: what to say after Ctrl-C);
:data:`COMMANDS` lists them. Errors users can fix (bad arguments, unwritable paths) are printed as one line
without a traceback (``SCIML_DEBUG=1`` shows it); so is Ctrl-C (exit status 130). Output piped into a reader
that stops early (``sciml ... | head``) ends quietly with status 141, as a process stopped by SIGPIPE.
"""

from __future__ import annotations

import argparse
import importlib
import math
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


DESCRIPTION = (
    "Differential equations and scientific machine learning in PyTorch: neural ODEs/SDEs trained to be "
    "cheap to solve, PINNs and PIGs, learned and tuned linear solvers, model-error discovery."
)


def build_parser() -> argparse.ArgumentParser:
    from sciml import __version__

    parser = argparse.ArgumentParser(prog="sciml", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"sciml {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


#: options whose numbers must be whole and at least 1 (counts and sizes), and those that must be positive
_AT_LEAST_ONE = {
    "threads", "jobs", "seeds", "epochs", "repeats", "members", "sparse_pairs", "batch_size", "windows",
    "steps", "layouts", "sizes", "frames", "paths", "iterations", "batch", "instances", "other_instances",
    "heat_steps", "heat_N", "varcoef_N", "paper_seeds", "qg_pairs",
}  # fmt: skip
_POSITIVE = {"lr", "rtol", "atol", "tol"}
_NON_NEGATIVE = {"noise", "weight", "burn_in", "adam", "lbfgs", "localization"}


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse numbers no command can use (a zero count, a NaN rate...), naming the flag: every option with
    one of the names above is checked, whichever sub-command defines it.

    Raises:
        ValueError: naming the option and what it must be.
    """
    for dest, value in vars(args).items():
        values = value if isinstance(value, list) else [value]
        flag = "--" + dest.replace("_", "-")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{flag} must be a finite number, got {v}")
            if dest in _AT_LEAST_ONE and v < 1:
                raise ValueError(f"{flag} must be at least 1, got {v}")
            if dest in _POSITIVE and v <= 0:
                raise ValueError(f"{flag} must be positive, got {v}")
            if dest in _NON_NEGATIVE and v < 0:
                raise ValueError(f"{flag} must be zero or positive, got {v}")


def _interrupt_hint(args: argparse.Namespace) -> str | None:
    hint = getattr(args._module, "interrupt_hint", None)
    return hint(args) if hint is not None else None


def _error_text(exc: BaseException) -> str:
    """One line for an error users can fix; a file-system error names its path."""
    if isinstance(exc, OSError) and exc.filename is not None:
        paths = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        return f"{exc.strerror or exc}: {paths}"
    return str(exc)


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's last flush into a closed pipe is not reported
    as an error (Python's documented recipe for SIGPIPE)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (embedded, captured): nothing to flush
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--version"]:  # answered without importing the sub-commands (torch, scipy, ...)
        from sciml import __version__

        print(f"sciml {__version__}")
        return 0
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("sciml: interrupted", file=sys.stderr)
        return 130
    try:
        check_numbers(args)
        return int(args._module.main(args) or 0)
    except BrokenPipeError:  # the reader went away (`sciml ... | head`): stop quietly, as `cat` does
        _silence_stdout()
        return 141
    except (ValueError, OSError) as exc:
        if os.environ.get("SCIML_DEBUG"):
            raise
        print(
            f"sciml {args.command}: error: {_error_text(exc)}  (set SCIML_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        try:
            hint = _interrupt_hint(args)
        except Exception:  # a hint must never turn Ctrl-C into a traceback
            hint = None
        print(f"sciml {args.command}: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
