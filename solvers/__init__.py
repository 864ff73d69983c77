"""Numerical methods: ODE/SDE integrators, linear and spectral solvers. May import problems, never sciml."""
