"""The Python API: results as pandas, polars and Arrow with the documented dtypes and units."""

from __future__ import annotations

import json

import pandas as pd
import polars as pl
import pyarrow as pa

import mcptrace
from conftest import SAMPLES, read_lines, write_lines


def test_results_convert_with_utc_timestamps_and_ms_durations(samples_ws):
    res = samples_ws.calls()
    t = res.arrow()
    assert isinstance(t, pa.Table)
    assert t.schema.field("start_ts").type == pa.timestamp("us", tz="UTC")
    assert t.schema.field("duration_ms").type == pa.float64()
    assert t.schema.field("rpc_id").type == pa.string()
    df = res.df()
    assert isinstance(df, pd.DataFrame) and len(df) == len(res) == 28
    assert str(df["start_ts"].dt.tz) == "UTC"
    # duration_ms is the difference of the timestamps in milliseconds
    done = df.dropna(subset=["end_ts"])
    delta = (done["end_ts"] - done["start_ts"]).dt.total_seconds() * 1000
    assert (abs(delta - done["duration_ms"]) < 0.002).all()
    p = res.pl()
    assert isinstance(p, pl.DataFrame)
    assert p.schema["start_ts"] == pl.Datetime("us", "UTC")
    assert p.height == 28


def test_verbs(samples_ws):
    sid = samples_ws.busiest_session()
    assert samples_ws.sessions().rows()[0][0] == sid
    assert {r[1] for r in samples_ws.calls(sid).rows()} == {sid}
    assert len(samples_ws.gaps(code="cancelled")) == 1
    assert len(samples_ws.gaps(session_id="s_nope")) == 0
    spans = samples_ws.spans().df()
    one_trace = spans["trace_id"].iloc[0]
    assert set(samples_ws.spans(one_trace).df()["trace_id"]) == {one_trace}
    # parameters are values, never SQL
    hostile = "x' OR '1'='1"
    assert len(samples_ws.sql("SELECT * FROM calls WHERE tool_name = ?", [hostile])) == 0
    assert "28 calls" in repr(samples_ws)


def test_session_from_mcp_client_session_id_header(tmp_path):
    # SEP-2822 style: a client-generated session id in an HTTP header on every request
    lines = []
    for x in read_lines(SAMPLES / "ide_http.jsonl"):
        e = json.loads(x)
        e["http"]["request_headers"]["mcp-client-session-id"] = "conv-42"
        lines.append(json.dumps(e))
    ws = mcptrace.load(write_lines(tmp_path / "client_session_header.jsonl", lines))
    assert ws.sql("SELECT session_key_source, session_key, n_calls FROM sessions").rows() == \
        [("Mcp-Client-Session-Id", "conv-42", 9)]


def test_context_manager_closes(tmp_path):
    db = str(tmp_path / "x.duckdb")
    with mcptrace.load(SAMPLES, db=db) as ws:
        n = len(ws.calls())
    with mcptrace.open(db) as ws:
        assert len(ws.calls()) == n
