"""Datamodel embeddings (paper section 4.3): each target's selected weight vector θ ∈ R^d,
L2-normalized, as a feature vector; PCA and spectral clustering with scikit-learn, stored as the
`embedding_pca`, `embedding_variance` and `clusters` relations."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..engine.weights import weight_matrix
from ..errors import InputError
from ..store.commit import commit_analysis


def embed(store, fit_id: int, pca: int = 50, clusters: int = 20, seed: int = 0) -> dict:
    """PCA (`pca` components) and spectral clustering (`clusters`) of the normalized weights."""
    from sklearn.cluster import SpectralClustering
    from sklearn.decomposition import PCA
    store.require_writable()
    tids, theta = weight_matrix(store, fit_id)
    norms = np.linalg.norm(theta, axis=1, keepdims=True)
    keep = norms[:, 0] > 0
    if keep.sum() < 3:
        raise InputError(f"fit {fit_id}: fewer than 3 targets have a non-zero datamodel; nothing to embed")
    Z = theta[keep] / norms[keep]
    tk = tids[keep]
    k = min(pca, Z.shape[0], Z.shape[1])
    p = PCA(n_components=k, random_state=seed)
    coords = p.fit_transform(Z).astype(np.float32)
    c = min(clusters, Z.shape[0] - 1)
    labels = SpectralClustering(n_clusters=c, affinity="rbf", random_state=seed).fit_predict(Z)
    n = tk.size
    f = np.int64(fit_id)
    commit_analysis(store, {
        "embedding_pca": pa.table({"fit_id": np.full(n * k, f), "target_id": np.repeat(tk, k),
                                   "component": np.tile(np.arange(k, dtype=np.int32), n), "value": coords.ravel()}),
        "embedding_variance": pa.table({"fit_id": np.full(k, f), "component": np.arange(k, dtype=np.int32),
                                        "explained_variance_ratio": p.explained_variance_ratio_.astype(np.float64)}),
        "clusters": pa.table({"fit_id": np.full(n, f), "target_id": tk, "cluster": labels.astype(np.int32),
                              "n_clusters": np.full(n, c, np.int32)}),
    })
    return {"targets": int(n), "skipped_zero": int((~keep).sum()), "components": k, "clusters": c,
            "variance_top": float(p.explained_variance_ratio_[: min(5, k)].sum())}
