"""sciml: learning methods for differential equations, built on ``problems`` and ``solvers``."""

__version__ = "0.1.0"
