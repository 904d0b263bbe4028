-- Turns and parallel groups (DESIGN §4). A call's turn is the parent of its client span
-- when the client spans are loaded (the span named by the traceparent's parent-id), else
-- its trace. Within a session and turn, calls whose request/response intervals overlap
-- (in message order, so bare captures without times work too) form one parallel_group.

CREATE OR REPLACE TEMP TABLE _turn AS
WITH cs AS (
    SELECT trace_id, span_id, any_value(parent_span_id) AS parent_span_id FROM spans GROUP BY ALL
)
SELECT c.call_id,
       CASE WHEN c.trace_id IS NULL THEN NULL
            WHEN cs.parent_span_id IS NOT NULL THEN c.trace_id || '/' || cs.parent_span_id
            ELSE c.trace_id END AS turn_id
FROM calls c LEFT JOIN cs ON cs.trace_id = c.trace_id AND cs.span_id = c.parent_span_id;

CREATE OR REPLACE TEMP TABLE _pgroup AS
WITH t AS (
    SELECT c.call_id, c.session_id, tu.turn_id, c.start_ord,
           coalesce(c.end_ord, 9223372036854775807) AS end_ord
    FROM calls c JOIN _turn tu USING (call_id) WHERE tu.turn_id IS NOT NULL
), g AS (
    SELECT *, max(end_ord) OVER (PARTITION BY session_id, turn_id ORDER BY start_ord
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
    FROM t
), h AS (
    SELECT *, sum(CASE WHEN prev_end IS NULL OR start_ord > prev_end THEN 1 ELSE 0 END)
                  OVER (PARTITION BY session_id, turn_id ORDER BY start_ord) AS gno
    FROM g
), k AS (
    SELECT *, min(start_ord) OVER (PARTITION BY session_id, turn_id, gno) AS gfirst FROM h
)
SELECT call_id, turn_id, dense_rank() OVER (ORDER BY gfirst) AS parallel_group FROM k;

-- one rewrite of calls rather than two UPDATEs (updating every row of a wide table is slower)
CREATE OR REPLACE TABLE calls AS
SELECT c.* REPLACE (t.turn_id AS turn_id, p.parallel_group::BIGINT AS parallel_group)
FROM calls c LEFT JOIN _turn t USING (call_id) LEFT JOIN _pgroup p USING (call_id)
ORDER BY c.call_id;
