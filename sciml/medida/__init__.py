"""MEDIDA: model-error discovery with interpretability and data assimilation (Mojgani et al., Chaos 2022).

Given an imperfect semilinear model and observations of the true system, estimate the model error from
one-step integrations, regress it on a library of candidate terms with sparse Bayesian regression (ARD),
and return an interpretable correction; noisy observations go through an ensemble Kalman filter first.
"""

from sciml.medida.cases import CASES, MedidaCase, ks_lyapunov_exponent, ks_observations, ks_truth
from sciml.medida.discovery import Discovery, discover, regression_band
from sciml.medida.enkf import EnsembleKalmanFilter, FilterResult, gaspari_cohn, periodic_distances
from sciml.medida.library import Library, Term
from sciml.medida.regression import Correction, sparse_bayesian_regression
from sciml.medida.samples import (
    Observations,
    band_coefficients,
    band_limit,
    corrected_problem,
    estimate_noise_std,
    library_features,
    one_step,
    one_step_features,
    one_step_targets,
)
from sciml.medida.valid_time import ValidTime, valid_times

__all__ = [
    "CASES",
    "MedidaCase",
    "ks_truth",
    "ks_observations",
    "ks_lyapunov_exponent",
    "Discovery",
    "discover",
    "regression_band",
    "EnsembleKalmanFilter",
    "FilterResult",
    "gaspari_cohn",
    "periodic_distances",
    "Library",
    "Term",
    "Correction",
    "sparse_bayesian_regression",
    "Observations",
    "band_coefficients",
    "band_limit",
    "corrected_problem",
    "estimate_noise_std",
    "library_features",
    "one_step",
    "one_step_features",
    "one_step_targets",
    "ValidTime",
    "valid_times",
]
