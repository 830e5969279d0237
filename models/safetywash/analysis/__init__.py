"""Analyses of fits (separability, comparisons, predictions) and refit-based studies."""
