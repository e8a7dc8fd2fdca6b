"""The write-behind thread of streamed unit files (`storage.units.write_behind`): the same bytes
as writing each table in turn, and an error on either side stops both and is raised to the
caller, without a hang."""
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dmstore.storage import units
from dmstore.storage.parquet import parquet_writer
from dmstore.storage.schema import arrow_schema


def tables(n, rows=5000, fail_at=None):
    rng = np.random.default_rng(0)
    for i in range(n):
        if i == fail_at:
            raise ValueError(f"producer failed at table {i}")
        yield pa.table({"fit_id": np.full(rows, 3, np.int64), "target_id": np.full(rows, i, np.int32),
                        "lam": np.zeros(rows), "train_id": np.arange(rows, dtype=np.int32),
                        "weight": rng.normal(size=rows).astype(np.float32)}).cast(arrow_schema("weights"))


def test_same_bytes_as_writing_in_turn(tmp_path):
    with parquet_writer(tmp_path / "a.parquet", "weights") as w:
        for t in tables(9):
            w.write_table(t)
    with parquet_writer(tmp_path / "b.parquet", "weights") as w:
        units.write_behind(w, tables(9))
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert pq.read_table(tmp_path / "b.parquet").num_rows == 9 * 5000


def test_a_producer_error_is_raised_and_the_thread_ends(tmp_path):
    before = threading.active_count()
    with pytest.raises(ValueError, match="producer failed at table 4"):
        with parquet_writer(tmp_path / "a.parquet", "weights") as w:
            units.write_behind(w, tables(9, fail_at=4))
    assert threading.active_count() == before


class FailingWriter:
    def __init__(self, at):
        self.at, self.n = at, 0

    def write_table(self, t):
        self.n += 1
        if self.n == self.at:
            raise OSError("disk full")


def test_a_writer_error_stops_the_producer_and_is_raised():
    consumed = []

    def produce():
        for i, t in enumerate(tables(200, rows=10)):
            consumed.append(i)
            yield t

    w = FailingWriter(at=2)
    with pytest.raises(OSError, match="disk full"):
        units.write_behind(w, produce())
    assert w.n == 2                                          # nothing written after the error
    assert len(consumed) <= 2 + units.WRITE_BEHIND + 2      # the producer stopped soon after
