"""Evaluation: predictive summaries, metrics, OOD detection, plots and reports."""
