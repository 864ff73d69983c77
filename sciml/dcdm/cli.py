"""``sciml dcdm train | eval | export | info``: train, check, export and inspect DCDM models.

* ``sciml dcdm train --out DIR [--resume] [options]`` — train on random layouts (see
  :class:`~sciml.dcdm.train.TrainConfig`); writes ``DIR/model.pt``, ``model.json`` (with this command),
  ``checkpoint.pt`` and ``loss.png``. A ``DIR`` that already holds a run needs ``--resume`` (which
  continues it with the same options; ``--checkpoint-every`` and ``--validate-layouts`` may change).
* ``sciml dcdm eval [--model PATH] [--sizes 64 128 256]`` — DCDM and CG iterations on unseen layouts.
* ``sciml dcdm export [--model PATH] OUT.pt`` — TorchScript for ``torch.jit.load`` without sciml.
* ``sciml dcdm info [--model PATH]`` — the model's configuration and training record.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

HELP = "deep conjugate-direction method: train, evaluate, export (TorchScript) and inspect models"


def _number(low: float, high: float | None = None, open_low: bool = False, *, integer: bool = True):
    """An argparse ``type`` that parses a number and checks its range (argparse names the flag)."""
    from sciml.dcdm.train import check_number

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(  # noqa: B904 - argparse reports this message, not the cause
                f"expected {'an integer' if integer else 'a number'}, got {text!r}"
            )
        problem = check_number(value, low, high, open_low, integer=integer)
        if problem:
            raise argparse.ArgumentTypeError(f"must be {problem}, got {text}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from sciml.dcdm.train import BOUNDS, CHOICES, FLOAT_FIELDS, TrainConfig

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    defaults = TrainConfig()

    p = sub.add_parser("train", help="train a model on random obstacle layouts (Lanczos right-hand sides)")
    p.add_argument(
        "--out", required=True, help="output directory (model.pt, model.json, checkpoint.pt, loss.png)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/checkpoint.pt with the same options (but --checkpoint-every and "
        "--validate-layouts may change)",
    )
    p.add_argument(
        "--cache-dir", default=None, help="where the training set is cached (default: sciml cache)"
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    for field in dataclasses.fields(TrainConfig):
        default = getattr(defaults, field.name)
        flag = "--" + field.name.replace("_", "-")
        if field.name in CHOICES:
            kind = type(CHOICES[field.name][0])
            p.add_argument(
                flag, type=kind, choices=CHOICES[field.name], default=default, help=f"default {default}"
            )
        elif isinstance(default, bool):
            p.add_argument(flag, type=_parse_bool, default=default, metavar="BOOL", help=f"default {default}")
        else:
            low, high, open_low = BOUNDS[field.name]
            integer = field.name not in FLOAT_FIELDS
            p.add_argument(
                flag,
                type=_number(low, high, open_low, integer=integer),
                default=default,
                help="default: by dimension" if default is None else f"default {default}",
            )

    p = sub.add_parser("eval", help="DCDM vs CG iterations on unseen layouts")
    p.add_argument("--model", default=None, help="model file (default: the shipped model)")
    p.add_argument("--ndim", type=int, default=2, choices=(2, 3))
    p.add_argument(
        "--sizes", type=_number(8), nargs="+", default=[64, 128, 256], help="cells per side (>= 8)"
    )
    p.add_argument("--layouts", type=_number(1), default=4, help="unseen layouts per size")
    p.add_argument("--rtol", type=_number(0.0, open_low=True, integer=False), default=1e-6)
    p.add_argument("--threads", type=_number(1), default=1)
    p.add_argument("--json", default=None, help="write the rows to this JSON file")

    p = sub.add_parser("export", help="write TorchScript that loads with plain torch.jit.load")
    p.add_argument("path", help="output .pt file")
    p.add_argument("--model", default=None, help="model file (default: the shipped model)")
    p.add_argument("--ndim", type=int, default=2, choices=(2, 3))

    p = sub.add_parser("info", help="print a model's configuration and training record")
    p.add_argument("--model", default=None, help="model file (default: the shipped model)")
    p.add_argument("--ndim", type=int, default=2, choices=(2, 3))


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _load_model(path: str | None, ndim: int):
    """:meth:`DCDM.load`, with a message for a ``--model`` file that torch cannot read at all (empty, a
    folder, not a torch file, changed after it was written): it names the file and says what to pass.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a sciml DCDM model file (or weights that do not fit its configuration).
    """
    from sciml.dcdm.solver import DCDM

    try:
        return DCDM.load(path, ndim=ndim)
    except ValueError as exc:
        what = None if path is None else _unreadable(Path(path))
        if what is None:  # a readable file: DCDM.load's message says what is wrong with it
            raise
        raise ValueError(
            f"--model {path} {what}, so it is not a usable sciml DCDM model file; pass a model.pt written by "
            "`sciml dcdm train --out DIR` (DIR/model.pt) or by `DCDM.save`"
        ) from exc


def _unreadable(file: Path) -> str | None:
    """Why torch cannot read ``file`` at all, or None when it can."""
    from sciml.checkpoint import load_checkpoint

    if file.is_dir():
        return "is a folder"
    if file.stat().st_size == 0:
        return "is empty (0 bytes)"
    try:
        load_checkpoint(file)
    except ValueError as exc:
        cause = exc.__cause__
        if cause is None:
            return "fails its checksum (it was changed after it was written)"
        # (torch's own text, e.g. advice to load with weights_only=False, does not help here)
        return f"cannot be read by torch.load ({type(cause).__name__}: not a torch file, or a truncated one)"
    return None


def main(args: argparse.Namespace) -> int:
    import torch

    if args.action == "train":
        from sciml.dcdm.train import TrainConfig, train

        config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
        command = "sciml " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        solver = train(
            config,
            args.out,
            resume=args.resume,
            command=command,
            progress=not args.no_progress,
            cache_dir=args.cache_dir,
        )
        print(
            f"final loss {solver.info['final_loss']:.4g}; "
            f"validation iterations {solver.info.get('validation_iterations')}"
        )
        print(f"wrote {args.out}/model.pt")
        return 0

    solver = _load_model(args.model, getattr(args, "ndim", 2))
    if args.action == "info":
        print(json.dumps({"config": solver.config, "k": solver.k, "info": solver.info}, indent=2))
        return 0
    if args.action == "export":
        path = solver.export(args.path)
        print(
            f"wrote {path} (load with torch.jit.load; "
            "call as solver(b, diag, couplings, x0, rtol, atol, maxiter, null_labels); contract in "
            "sciml.dcdm.DCDM.export)"
        )
        return 0

    # eval
    from sciml.bench.report import print_table
    from sciml.checkpoint import write_json
    from sciml.dcdm.train import VALIDATION_SEED
    from sciml.problems.linear.generators import random_layout, random_rhs
    from sciml.solvers.linear import cg

    torch.set_num_threads(args.threads)
    rows = []
    for n in args.sizes:
        for i in range(args.layouts):
            grid = random_layout((n,) * args.ndim, seed=VALIDATION_SEED + i)
            b = random_rhs(grid, seed=VALIDATION_SEED + i)
            start = time.perf_counter()
            reference = cg(grid.matrix(), grid.to_vector(b), rtol=args.rtol)
            cg_seconds = time.perf_counter() - start
            prepared = solver.prepare(grid)
            start = time.perf_counter()
            result = prepared.solve(b, rtol=args.rtol, threads=args.threads)
            rows.append(
                {
                    "grid": "x".join([str(n)] * args.ndim),
                    "layout": i,
                    "cg_iterations": reference.iterations,
                    "dcdm_iterations": result.iterations,
                    "ratio": result.iterations / max(reference.iterations, 1),
                    "cg_seconds": cg_seconds,
                    "dcdm_seconds": time.perf_counter() - start,
                    "dcdm_setup_seconds": prepared.setup_seconds,
                    "converged": bool(result.converged),
                }
            )
    print_table(rows, list(rows[0]), title=f"DCDM vs CG to rtol {args.rtol} on unseen layouts")
    summary = []
    for n in args.sizes:
        sel = [r for r in rows if r["grid"] == "x".join([str(n)] * args.ndim)]
        summary.append(
            {
                "grid": sel[0]["grid"],
                "cg_iterations": float(np.mean([r["cg_iterations"] for r in sel])),
                "dcdm_iterations": float(np.mean([r["dcdm_iterations"] for r in sel])),
                "ratio": float(np.mean([r["ratio"] for r in sel])),
            }
        )
    print_table(summary, list(summary[0]), title="means over layouts")
    if args.json:
        write_json(args.json, {"rows": rows, "summary": summary, "model": solver.config})
    return 0 if all(r["converged"] for r in rows) else 1
