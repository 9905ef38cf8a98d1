"""Ranking metrics (CMC, mAP, mINP) under the Market-1501 protocol, and re-ranking."""

from progreid.evaluation.distance import pairwise_distance
from progreid.evaluation.metrics import RankingMetrics, evaluate_features, evaluate_ranking

__all__ = ["RankingMetrics", "evaluate_features", "evaluate_ranking", "pairwise_distance"]
