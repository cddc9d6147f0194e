"""Stochastic micro-models (numba): lattice kinetic Monte Carlo of ionic hopping."""
