"""sciml: differential equations and scientific machine learning in PyTorch.

One import namespace: ``sciml.problems`` (definitions), ``sciml.solvers`` (numerics) and the learning
methods (``sciml.neural_de``, ``sciml.pinn``, ``sciml.dcdm``, ``sciml.relax``, ``sciml.medida``). The
everyday entry points are re-exported here and imported on first use, so ``import sciml`` stays cheap::

    from sciml import odeint, solve, ODEProblem
"""

from __future__ import annotations

import importlib
from importlib import metadata

try:
    __version__ = metadata.version("sciml")
except metadata.PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0.0.0+unknown"

# public name -> module that defines it
_EXPORTS = {
    "ODEProblem": "sciml.problems.ode",
    "SDEProblem": "sciml.problems.sde",
    "solve": "sciml.solvers.ode",
    "odeint": "sciml.solvers.ode",
    "odeint_adjoint": "sciml.solvers.ode",
    "odeint_event": "sciml.solvers.ode",
    "Solution": "sciml.solvers.ode",
    "SolveError": "sciml.solvers.ode",
    "Status": "sciml.solvers.ode",
    "IController": "sciml.solvers.ode",
    "PIDController": "sciml.solvers.ode",
    "sdeint": "sciml.solvers.sde",
    "sdeint_adjoint": "sciml.solvers.sde",
    "sde_solve": ("sciml.solvers.sde", "solve"),
    "NeuralODE": "sciml.neural_de",
    "NeuralSDE": "sciml.neural_de.sde",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'sciml' has no attribute {name!r}")
    module_name, attr = (target, name) if isinstance(target, str) else target
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
