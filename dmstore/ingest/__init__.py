"""Ingestion beyond `Store.append`, one module per source: the paper's published `.npy`
release (`release`), the reference implementation's training store (`reference`), and Parquet
or Arrow IPC files that follow `schemas/` (`parquet`); attribution scores of any method as a fit
(`scores`). Every path memory-maps or streams its
input and reads it once: each chunk is validated, then written privately; the store commits
them only when every chunk was valid."""
from .npy import load_npy
from .parquet import ingest_parquet
from .reference import ingest_reference
from .release import ingest_release
from .scores import ingest_scores, open_scores

__all__ = ["ingest_release", "ingest_reference", "ingest_parquet", "ingest_scores", "open_scores", "load_npy"]
