"""Evaluation: metrics, ShapeWorld benchmarks, probes and retrieval."""
