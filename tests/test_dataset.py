"""Every table as a Hive-partitioned Parquet dataset, attached again without copying."""

from __future__ import annotations

import os

import pyarrow.dataset as ds

from conftest import SAMPLES
from mcptrace import open_dataset
from mcptrace.core.db import TABLES
from mcptrace.render.export import write_dataset


def test_dataset_round_trip(samples_ws, tmp_path):
    paths = write_dataset(samples_ws.con, tmp_path / "dataset")
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


def test_open_and_load_attach_a_dataset_read_only(samples_ws, tmp_path):
    import pytest

    import mcptrace
    from mcptrace.core.errors import MCPTraceError

    write_dataset(samples_ws.con, tmp_path / "ds")
    assert (tmp_path / "ds" / "mcptrace-dataset.json").exists()
    for ws in (mcptrace.open(tmp_path / "ds"), mcptrace.load(str(tmp_path / "ds"))):
        assert ws.read_only
        assert len(ws.calls()) == len(samples_ws.calls())
        # views over the files, not tables copied into the in-memory database
        kinds = dict(ws.sql("SELECT table_name, table_type FROM information_schema.tables").rows())
        assert kinds["messages"] == "VIEW" and kinds["gaps"] == "VIEW"
        with pytest.raises(MCPTraceError, match="read-only"):
            ws.load(SAMPLES)
    with pytest.raises(MCPTraceError, match="attached on its own"):
        mcptrace.load([str(tmp_path / "ds"), SAMPLES])
    with pytest.raises(MCPTraceError, match="cannot be loaded into"):
        mcptrace.load(SAMPLES, db=str(tmp_path / "ds"))


def test_dataset_in_an_s3_object_store(samples_ws, tmp_path, monkeypatch):
    """A real S3 API (moto's server over HTTP) holding the exported dataset, read through s3fs."""
    import subprocess
    import sys

    import s3fs
    from moto.server import ThreadedMotoServer

    import mcptrace
    from conftest import ROOT

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        fs = s3fs.S3FileSystem(endpoint_url=endpoint)
        fs.mkdir("incidents")
        write_dataset(samples_ws.con, tmp_path / "ds")
        fs.put(str(tmp_path / "ds"), "incidents/2026-11/ds", recursive=True)

        ws = mcptrace.open("s3://incidents/2026-11/ds", storage_options={"endpoint_url": endpoint})
        assert ws.read_only
        q = "SELECT call_id, session_id, status, tool_name FROM calls ORDER BY call_id"
        assert ws.sql(q).rows() == samples_ws.sql(q).rows()
        sid = samples_ws.busiest_session()
        assert list(ws.tree(sid)["node_id"]) == list(samples_ws.tree(sid)["node_id"])

        # the CLI reads the same URL (the endpoint from the environment, as botocore reads it)
        env = {**os.environ, "AWS_ENDPOINT_URL": endpoint}
        r = subprocess.run([sys.executable, "-m", "mcptrace", "open", "s3://incidents/2026-11/ds", "--sql",
                            "SELECT count(*) AS n FROM calls"], capture_output=True, text=True, cwd=ROOT,
                           env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        assert str(len(samples_ws.calls())) in r.stdout.splitlines()[-1]
        r = subprocess.run([sys.executable, "-m", "mcptrace", "gaps", "--db", "s3://incidents/2026-11/ds"],
                           capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "missing_session_key" in r.stdout
    finally:
        server.stop()
