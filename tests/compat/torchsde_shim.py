"""Rebind ``torchsde.sdeint`` and ``torchsde.sdeint_adjoint`` to sciml's drop-ins.

Kept outside the package: it exists only so that torchsde's own test suite can be run unchanged against
``sciml.solvers.sde.sdeint`` / ``sdeint_adjoint`` (see ``run_torchsde.py``). The Brownian objects
(``BrownianInterval``, ``BrownianPath``, ``BrownianTree``, ``ReverseBrownian``) stay torchsde's own: sciml
uses them as they are.
"""

from __future__ import annotations

import sciml.solvers.sde as _ours
import torchsde

sdeint = _ours.sdeint
sdeint_adjoint = getattr(_ours, "sdeint_adjoint", None)

_ORIGINAL = {"sdeint": torchsde.sdeint, "sdeint_adjoint": torchsde.sdeint_adjoint}


def install() -> None:
    """Point ``torchsde.sdeint``/``sdeint_adjoint`` at sciml's functions (upstream tests call them as
    attributes of the module, so the rebinding reaches every call)."""
    torchsde.sdeint = sdeint
    torchsde.sdeint_adjoint = sdeint_adjoint if sdeint_adjoint is not None else _missing_adjoint


def _missing_adjoint(*args, **kwargs):
    raise NotImplementedError("this version of sciml has no sdeint_adjoint")


def uninstall() -> None:
    """Restore torchsde's own functions."""
    torchsde.sdeint = _ORIGINAL["sdeint"]
    torchsde.sdeint_adjoint = _ORIGINAL["sdeint_adjoint"]
