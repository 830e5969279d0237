"""Sampling, convergence diagnostics and the self-describing fit file."""
