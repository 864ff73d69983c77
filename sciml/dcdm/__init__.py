"""Deep conjugate-direction method (Kaneda et al., ICML 2023) for grid Poisson systems.

``DCDM.load()`` gives the model shipped with sciml; ``DCDM.solve(system, b)`` solves a grid system (a
``PoissonGrid``, a ``GridStencil`` of coefficient arrays, or a user's scipy matrix with ``shape=``/``mask=``;
pure-Neumann systems included), ``as_linear_operator`` hands it to scipy as a preconditioner, ``export``
writes TorchScript for simulation codes (C++ consumer in ``examples/cpp``); ``sciml.dcdm.train.train``
trains new models (``sciml.dcdm.train`` is the submodule).
"""

from sciml.dcdm.data import lanczos, lanczos_rhs, ritz_vectors, training_set
from sciml.dcdm.loss import scale_invariant_loss
from sciml.dcdm.network import MultigridNet, PaperNet, build_network
from sciml.dcdm.solver import DCDM, DCDMIteration, PreparedSystem, dcdm, default_model_path, default_threads
from sciml.dcdm.stencil import apply_stencil, coarsen, project_null, stencil_fields
from sciml.dcdm.train import TrainConfig

__all__ = [
    "DCDM",
    "DCDMIteration",
    "PreparedSystem",
    "dcdm",
    "default_model_path",
    "default_threads",
    "project_null",
    "MultigridNet",
    "PaperNet",
    "build_network",
    "scale_invariant_loss",
    "lanczos",
    "ritz_vectors",
    "lanczos_rhs",
    "training_set",
    "stencil_fields",
    "apply_stencil",
    "coarsen",
    "TrainConfig",
]
