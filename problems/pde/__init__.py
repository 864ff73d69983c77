"""PDE problems for physics-informed models and grid discretisations: one definition each.

``get(name)`` returns a problem of the suite; ``names()`` lists them; ``describe()`` gives one line each.
Problems are frozen :class:`PDEProblem` objects (``replace(**changes)`` for variants). A user's own problem
is a :class:`PDEProblem` on any geometry (:class:`Box`, :class:`Ball`/:func:`Disk`, :class:`Polygon`/
:func:`LShape`, ``a | b``, ``a & b``, ``a - b``, ``shape.times(t0, t1)``) with conditions on named parts
or predicate-selected parts of its boundary.
"""

from __future__ import annotations

from collections.abc import Callable

from sciml.problems.pde import singular, suite
from sciml.problems.pde.conditions import (
    Condition,
    Dirichlet,
    InitialValue,
    InitialVelocity,
    Neumann,
    Observations,
    Periodic,
    PointCondition,
    Robin,
)
from sciml.problems.pde.derivatives import AutogradDerivatives, Derivatives
from sciml.problems.pde.domain import Box
from sciml.problems.pde.geometry import (
    Ball,
    Difference,
    Disk,
    Geometry,
    Intersection,
    Interval,
    LShape,
    Polygon,
    SpaceTime,
    Union,
)
from sciml.problems.pde.poisson import PoissonProblem, PoissonSystem
from sciml.problems.pde.problem import (
    HardConstraint,
    NonlinearDiffusionReference,
    PDEProblem,
    SemilinearReference,
)
from sciml.problems.pde.suite import GaussianBumps

__all__ = [
    "AutogradDerivatives",
    "Ball",
    "Box",
    "Condition",
    "Derivatives",
    "Difference",
    "Dirichlet",
    "Disk",
    "Geometry",
    "GaussianBumps",
    "HardConstraint",
    "InitialValue",
    "InitialVelocity",
    "Intersection",
    "Interval",
    "LShape",
    "Neumann",
    "NonlinearDiffusionReference",
    "Observations",
    "PDEProblem",
    "Periodic",
    "PointCondition",
    "PoissonProblem",
    "PoissonSystem",
    "Polygon",
    "Robin",
    "SemilinearReference",
    "SpaceTime",
    "Union",
    "describe",
    "get",
    "names",
    "register",
]

_REGISTRY: dict[str, Callable[..., PDEProblem]] = {
    "helmholtz": lambda **kw: suite.helmholtz(**{"a1": 1.0, "a2": 4.0, **kw}),
    "helmholtz-high": lambda **kw: suite.helmholtz(
        **{"a1": 10.0, "a2": 10.0, "name": "helmholtz-high", **kw}
    ),
    "klein-gordon": suite.klein_gordon,
    "flow-mixing": suite.flow_mixing,
    "nonlinear-diffusion": suite.nonlinear_diffusion,
    "allen-cahn": suite.allen_cahn,
    "burgers": suite.burgers,
    "poisson": suite.poisson,
    "legendre": suite.legendre,
    "hypergeometric": suite.hypergeometric,
    "accretion": singular.accretion,
    "khronon": singular.khronon,
}


def names() -> list[str]:
    """The registered problem names, in the suite's order."""
    return list(_REGISTRY)


def get(name: str, **kwargs) -> PDEProblem:
    """The problem ``name`` (keyword arguments go to its constructor, e.g. ``get("legendre", degree=4)``).

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown PDE problem {name!r}; choose one of: {', '.join(_REGISTRY)}")
    return _REGISTRY[name](**kwargs)


def register(name: str, factory: Callable[..., PDEProblem]) -> None:
    """Add a problem constructor under ``name`` (for users' own problems).

    Raises:
        ValueError: ``name`` is taken or empty.
    """
    if not name or name in _REGISTRY:
        raise ValueError(f"problem name {name!r} is empty or already registered")
    _REGISTRY[name] = factory


def describe() -> dict[str, str]:
    """``{name: one-line description}`` for every registered problem."""
    return {name: get(name).description for name in _REGISTRY}
