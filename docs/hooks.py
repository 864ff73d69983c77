"""MkDocs hooks for the reference manual.

* Before the build: stage the package as it is installed (``sciml`` with ``sciml.problems`` and
  ``sciml.solvers`` mapped from the repository's ``problems/`` and ``solvers/`` folders) under
  ``build/api-src``, where mkdocstrings reads the docstrings.
* After the build: every name in a public package's ``__all__`` must have an entry in the manual; a missing
  one is a warning, which ``strict: true`` turns into a failed build.
"""

from __future__ import annotations

import importlib
import logging
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGE = ROOT / "build" / "api-src" / "sciml"
PUBLIC_PACKAGES = [
    "sciml", "sciml.problems.ode", "sciml.problems.sde", "sciml.problems.pde", "sciml.problems.linear",
    "sciml.problems.semilinear", "sciml.solvers.ode", "sciml.solvers.sde", "sciml.solvers.linear",
    "sciml.solvers.spectral", "sciml.solvers.fd", "sciml.solvers.fluid", "sciml.neural_de", "sciml.pinn",
    "sciml.dcdm", "sciml.relax", "sciml.medida", "sciml.checkpoint", "sciml.solvers.cache",
]  # fmt: skip
log = logging.getLogger("mkdocs.plugins.sciml")


def _stage() -> None:
    if STAGE.parent.exists():
        shutil.rmtree(STAGE.parent)
    STAGE.mkdir(parents=True)
    for entry in [*(ROOT / "sciml").iterdir(), ROOT / "problems", ROOT / "solvers"]:
        if entry.name != "__pycache__":
            (STAGE / entry.name).symlink_to(entry)


_stage()  # at import: mkdocstrings reads its search paths before any event runs


def _documented(obj, name: str, anchors: set[str]) -> bool:
    """True when some anchor shows this very object: ``module.name`` itself, or a re-export of it under
    another name (functions and classes are matched by identity)."""
    by_identity = callable(obj) or isinstance(obj, type)
    for anchor in anchors:
        module_name, _, last = anchor.rpartition(".")
        if not module_name or (last != name and not by_identity):
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if getattr(module, last, None) is obj:
            return True
    return False


def on_post_build(config, **kwargs) -> None:
    html = "".join(p.read_text() for p in Path(config["site_dir"]).rglob("*.html"))
    anchors = set(re.findall(r'id="(sciml[\w.]*)"', html))
    missing = []
    for package in PUBLIC_PACKAGES:
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", []):
            if not name.startswith("__") and not _documented(getattr(module, name), name, anchors):
                missing.append(f"{package}.{name}")
    if missing:
        log.warning("public names without an entry in the manual: %s", ", ".join(missing))
