"""Pseudo-labels: k-means, assignment to centers, smooth center updates."""

from progreid.cluster.kmeans import KMeansResult, assign, kmeans, kmeans_plusplus

__all__ = ["KMeansResult", "assign", "kmeans", "kmeans_plusplus"]
