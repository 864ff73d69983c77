"""Learning to relax: tuners that pick a solver parameter (the SOR/SSOR relaxation factor ω) for each
system of a sequence.

* the paper's bandits (Khodak et al., ICLR 2024), from solve costs alone: ``tuner.select(context) ->
  omega`` then ``tuner.update(cost)``;
* :class:`PriorTuner`, safe from the first system: a spectral prior from each system (Young's ω for
  consistently ordered matrices) refined by capped exploration: ``tuner.solve(A, b, x0, rtol=...)``.

All seeded and checkpointable via ``state_dict()`` / ``load_state_dict()``.
"""

from sciml.relax.bandits import TsallisINF, Tuner, default_arms, tsallis_probabilities
from sciml.relax.contextual import ChebCB, ContextualBins, chebyshev_features
from sciml.relax.prior import PriorTuner, SpectralPrior, TunedSolve, default_offsets

__all__ = [
    "Tuner",
    "TsallisINF",
    "ChebCB",
    "ContextualBins",
    "default_arms",
    "tsallis_probabilities",
    "chebyshev_features",
    "PriorTuner",
    "SpectralPrior",
    "TunedSolve",
    "default_offsets",
]
