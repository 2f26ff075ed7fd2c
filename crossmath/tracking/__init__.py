"""Experiment tracking: MLflow runs of evaluations and trainings (the only package importing mlflow)."""
