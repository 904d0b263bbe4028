"""Clock skew: detected beyond tolerance, adjusted only on request, raw times never replaced."""

from __future__ import annotations

import json

import mcptrace
from conftest import SAMPLES, read_lines, write_lines


def _skewed_copy(tmp_path, service: str, shift_ns: int):
    """The real spans with one service's clock running `shift_ns` ahead."""
    out = []
    for line in read_lines(SAMPLES / "traces.otlp.jsonl"):
        req = json.loads(line)
        for rs in req["resourceSpans"]:
            svc = next(a["value"]["stringValue"] for a in rs["resource"]["attributes"] if a["key"] == "service.name")
            if svc != service:
                continue
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    s["startTimeUnixNano"] = str(int(s["startTimeUnixNano"]) + shift_ns)
                    s["endTimeUnixNano"] = str(int(s["endTimeUnixNano"]) + shift_ns)
        out.append(json.dumps(req))
    return write_lines(tmp_path / "downstream_clock_ahead_by_2s.otlp.jsonl", out)


def test_no_skew_in_the_real_samples(samples_ws):
    assert len(samples_ws.gaps(code="clock_skew_suspected")) == 0


def test_skewed_service_is_flagged_and_adjusted_on_request(tmp_path):
    spans = _skewed_copy(tmp_path, "downstream-api", 2_000_000_000)
    ws = mcptrace.load([SAMPLES / "agent_stdio.jsonl", SAMPLES / "ide_http.jsonl", SAMPLES / "plain_stdio.jsonl", spans])
    flagged = ws.sql("""SELECT s.service_name, g.detail->>'$.compared'
                        FROM gaps g JOIN spans s USING (trace_id, span_id)
                        WHERE g.code = 'clock_skew_suspected'""").rows()
    # every downstream-api span that has a parent in another service (the propagated calls)
    n_children = ws.sql("""SELECT count(*) FROM spans s JOIN spans p ON p.trace_id = s.trace_id
                           AND p.span_id = s.parent_span_id WHERE s.service_name = 'downstream-api'""").rows()[0][0]
    assert n_children == 5
    assert sorted(flagged) == [("downstream-api", "span vs its parent span of another service")] * n_children
    # nothing adjusted until asked
    assert ws.sql("SELECT count(*) FROM spans WHERE adjusted_start_ts IS NOT NULL").rows() == [(0,)]
    shifted = ws.adjust_clock_skew()
    assert shifted == n_children
    rows = ws.sql("""SELECT s.start_ts, s.adjusted_start_ts, s.adjusted_end_ts, p.adjusted_start_ts, p.adjusted_end_ts,
                            s.clock_adjustment_ms
                     FROM spans s JOIN spans p ON p.trace_id = s.trace_id AND p.span_id = s.parent_span_id
                     WHERE s.service_name = 'downstream-api'""").rows()
    for raw_start, a_start, a_end, p_start, p_end, adj in rows:
        assert p_start <= a_start and a_end <= p_end      # now inside the parent
        assert raw_start != a_start and adj < -1900       # raw kept, shift ~ -2 s
    # spans of other services keep their times
    assert ws.sql("SELECT count(*) FROM spans WHERE service_name <> 'downstream-api' "
                  "AND adjusted_start_ts <> start_ts").rows() == [(0,)]
