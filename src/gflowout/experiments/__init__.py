"""Experiment protocols of the paper (robustness, OOD, ...)."""
