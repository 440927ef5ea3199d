"""Experiment tracking: loggers, evaluation results to W&B, and reading offline W&B runs."""
