"""Evaluation: rollouts against ground truth, metrics, reports, benchmarks."""
