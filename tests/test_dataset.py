"""Every table as a Hive-partitioned Parquet dataset, attached again without copying."""

from __future__ import annotations

import pyarrow.dataset as ds

from mcptrace.export import TABLES, open_dataset, write_dataset


def test_dataset_round_trip(samples_ws, tmp_path):
    paths = write_dataset(samples_ws, tmp_path / "dataset")
    assert sorted(paths) == sorted(TABLES)
    # partitioned by source and day, readable by any Parquet engine
    msgs = ds.dataset(paths["messages"], format="parquet", partitioning="hive")
    assert msgs.count_rows() == len(samples_ws.sql("SELECT * FROM messages"))
    assert {f.name for f in msgs.schema} >= {"source_id", "day", "message_id", "raw"}
    attached = open_dataset(tmp_path / "dataset")
    for table, order in (("calls", "call_id"), ("sessions", "session_id"), ("gaps", "gap_id"),
                         ("spans", "trace_id, span_id")):
        cols = ", ".join(c for (c,) in samples_ws.sql(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND data_type <> 'JSON' "
            "AND column_name <> 'source_id'", [table]).rows())
        q = f'SELECT {cols} FROM "{table}" ORDER BY {order}'
        assert attached.sql(q).rows() == samples_ws.sql(q).rows(), table
    sid = samples_ws.busiest_session()
    assert attached.busiest_session() == sid
    assert list(attached.tree(sid)["node_id"]) == list(samples_ws.tree(sid)["node_id"])


def test_export_parquet_cli(tmp_path):
    import subprocess
    import sys

    import mcptrace
    from conftest import ROOT, SAMPLES

    db = tmp_path / "x.duckdb"
    run = lambda *a: subprocess.run([sys.executable, "-m", "mcptrace", *map(str, a)], capture_output=True,
                                    text=True, cwd=ROOT, timeout=300)
    assert run("load", SAMPLES, "--db", db).returncode == 0
    r = run("export", "--db", db, "--parquet", tmp_path / "ds")
    assert r.returncode == 0, r.stderr
    ws = mcptrace.open_dataset(tmp_path / "ds")
    assert len(ws.calls()) == len(mcptrace.open(str(db)).calls())
