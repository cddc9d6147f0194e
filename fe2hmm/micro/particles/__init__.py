"""Particle micro-models (numba): Lennard-Jones molecular dynamics in deforming periodic boxes."""
