"""Hybrid Semantic Fusion: the image score (spec §3.7, Q10).

The live code of the authors (not the paper's variant) clusters only the top-5K most anomalous
patches, on the concatenation of the four taps' normalised tokens, and averages the cluster
centroids (each over all 4 taps' tokens of its members) with equal weight.

Small grids (tiny test models): with N patches, ``min(5K, N)`` patches are kept and
``min(K, kept)`` clusters are formed, so every cluster can be non-empty; real models
(1369 patches) are unaffected.  A cluster sklearn leaves empty is skipped rather than
contributing NaN.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from adaptclip_med.methods.adaclip.constants import HSF_ALPHA, K_CLUSTERS, KMEANS_SEED, TEMPERATURE, TOPK_FACTOR


def top_patches(patch_logits: list[torch.Tensor], count: int) -> torch.Tensor:
    """Indices of the ``count`` most anomalous patches of one image, in descending order.

    patch_logits: per tap (N, 2); the probability is softmax of the tap-mean logits."""
    probability = torch.stack(patch_logits, dim=0).mean(dim=0).softmax(dim=-1)[:, 1]
    return torch.topk(probability, k=min(count, probability.shape[0]), sorted=True).indices


def kmeans_labels(rows: np.ndarray, clusters: int, seed: int = KMEANS_SEED) -> np.ndarray:
    """sklearn KMeans(k-means++, n_init='auto', Lloyd) labels of float32 ``rows`` in the given order."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=clusters, n_init="auto", random_state=seed).fit_predict(rows)


def cluster_feature(patch_tokens: list[torch.Tensor], patch_logits: list[torch.Tensor], k: int = K_CLUSTERS,
                    labels: np.ndarray | None = None, seed: int = KMEANS_SEED) -> tuple[torch.Tensor, np.ndarray]:
    """h (D,) for one image, and the labels used (per kept patch, in top-k order).

    patch_tokens: per tap (N, D) L2-normalised; ``labels`` injects a partition (parity tests,
    Q10) instead of running KMeans."""
    index = top_patches([l.detach() for l in patch_logits], TOPK_FACTOR * k)
    picked = torch.stack([t[index] for t in patch_tokens], dim=0)  # (taps, n, D)
    if labels is None:
        rows = torch.cat(list(picked.detach()), dim=-1).float().cpu().numpy()
        labels = kmeans_labels(rows, min(k, rows.shape[0]), seed)
    labels = np.asarray(labels)
    members = torch.as_tensor(labels, device=picked.device)
    centroids = [picked[:, members == c].reshape(-1, picked.shape[-1]).mean(dim=0)
                 for c in np.unique(labels)]
    return F.normalize(torch.stack(centroids, dim=0).mean(dim=0), dim=-1), labels


def fused_score(cluster: torch.Tensor, image_feature: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """softmax(100 * L2norm(0.2 h + 0.8 v) @ T) -> (2,) [normal, abnormal] probabilities."""
    fused = F.normalize(HSF_ALPHA * cluster + (1.0 - HSF_ALPHA) * image_feature, dim=-1)
    return (TEMPERATURE * fused @ text).softmax(dim=-1)
