"""A stand-in ``torchdiffeq`` module whose ``odeint``, ``odeint_adjoint`` and ``odeint_event`` are sciml's.

Kept outside the package and outside the default pytest run: it exists to run torchdiffeq's own test suite
against our drop-ins (see ``run_torchdiffeq.py``). ``install()`` puts the module on ``sys.modules`` so that
``import torchdiffeq`` in the upstream tests gets it.
"""

from __future__ import annotations

import sys
import types


def install() -> types.ModuleType:
    """Register (and return) a module named ``torchdiffeq`` rebound to ``sciml.solvers.ode``."""
    import sciml.solvers.ode as ode

    odeint, odeint_adjoint = ode.odeint, ode.odeint_adjoint
    odeint_event = getattr(ode, "odeint_event", None)

    module = types.ModuleType("torchdiffeq")
    module.__doc__ = "sciml.solvers.ode standing in for torchdiffeq (tests/compat/torchdiffeq_shim.py)"
    module.odeint = odeint
    module.odeint_adjoint = odeint_adjoint
    module.odeint_event = odeint_event
    module.__version__ = "sciml"
    sys.modules["torchdiffeq"] = module
    return module
