"""Evaluation metrics for retrieval embeddings."""

from dml.evaluation.recall import map_at_r, recall_at_k, retrieval_metrics

__all__ = ["map_at_r", "recall_at_k", "retrieval_metrics"]
