"""Learning to relax: bandit tuners that pick a solver parameter (the SOR/SSOR relaxation factor ω) for
each system of a sequence, from solve costs alone (Khodak et al., ICLR 2024).

``tuner.select(context) -> omega`` then ``tuner.update(cost)``; seeded and checkpointable via
``state_dict()`` / ``load_state_dict()``.
"""

from sciml.relax.bandits import TsallisINF, Tuner, default_arms, tsallis_probabilities
from sciml.relax.contextual import ChebCB, ContextualBins, chebyshev_features

__all__ = [
    "Tuner",
    "TsallisINF",
    "ChebCB",
    "ContextualBins",
    "default_arms",
    "tsallis_probabilities",
    "chebyshev_features",
]
