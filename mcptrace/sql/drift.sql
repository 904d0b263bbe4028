-- Definition drift (README: gap codes tool_definition_changed, prompt_definition_changed,
-- resource_definition_changed), over the whole database: over the internal tables listing_items (every
-- definition of every answered list result, its text's digest only: mcptrace.analysis.drift.store) and
-- definition_texts (each digest's definition), with _drift_kinds(kind, code, notification) from
-- mcptrace.analysis.drift; the JSON differences are Python's.
--
-- A listing's definition of a name is its first item with that name (by position). Per server name,
-- kind and name, the listings in event order (the result's place in message_order, then the call): each
-- whose definition's digest differs from the previous listing's is one change. A later item of the same
-- name in the same result with another definition is a change too, against that first item
-- (duplicate_in_listing): a client keeps one or the other, so what the user approved may not be what is
-- called. Definitions of a server nobody names ('unidentified server') are compared within one session
-- only: two unnamed servers are not one.

CREATE OR REPLACE TEMP TABLE _drift_items AS
SELECT l.*, c.response_message_id AS message_id, c.trace_id, c.end_ord AS ord,
       CASE WHEN l.server_name = 'unidentified server' THEN l.session_id END AS unnamed_session,
       row_number() OVER (PARTITION BY l.call_id, l.kind, l.name ORDER BY l.position) AS nth
FROM listing_items l JOIN calls c USING (call_id);

CREATE OR REPLACE TEMP TABLE _drift_pairs AS
WITH seq AS (
    SELECT call_id, kind, name, position, digest,
           lag(call_id) OVER w AS before_call_id, lag(position) OVER w AS before_position,
           lag(digest) OVER w AS before_digest
    FROM _drift_items WHERE nth = 1
    WINDOW w AS (PARTITION BY server_name, unnamed_session, kind, name ORDER BY ord, call_id)
), dup AS (
    SELECT d.call_id, d.kind, d.name, d.position, d.call_id AS before_call_id, f.position AS before_position
    FROM _drift_items d JOIN _drift_items f ON f.call_id = d.call_id AND f.kind = d.kind AND f.name = d.name
                                           AND f.nth = 1
    WHERE d.nth > 1 AND d.digest <> f.digest
    -- the same other definition twice in one result is one change
    QUALIFY row_number() OVER (PARTITION BY d.call_id, d.kind, d.name, d.digest ORDER BY d.position) = 1
)
SELECT call_id, kind, name, position, before_call_id, before_position, false AS duplicate_in_listing
FROM seq WHERE before_digest <> digest
UNION ALL
SELECT *, true FROM dup;

-- each change with both listings and whether the server announced it: a notifications/<list>/list_changed
-- it sent on a transport of the session (Mcp-Session-Id, else the connection) after the earlier result
-- and before the later one; never when the two listings are in different sessions
CREATE OR REPLACE TEMP TABLE _drift_changes AS
WITH p AS (
    SELECT k.code, k.notification, a.session_id, a.call_id, a.message_id, a.trace_id, a.ts, a.ord, a.server_name,
           a.server_version, a.kind, a.name, a.position, ta.definition, a.digest, x.duplicate_in_listing,
           b.ts AS before_ts, b.session_id AS before_session_id, b.call_id AS before_call_id, b.ord AS before_ord,
           b.server_version AS before_server_version, b.position AS before_position,
           tb.definition AS before_definition, b.digest AS before_digest
    FROM _drift_pairs x
    JOIN _drift_items a ON a.call_id = x.call_id AND a.kind = x.kind AND a.name = x.name AND a.position = x.position
    JOIN _drift_items b ON b.call_id = x.before_call_id AND b.kind = x.kind AND b.name = x.name
                       AND b.position = x.before_position
    JOIN _drift_kinds k ON k.kind = x.kind
    JOIN definition_texts ta ON ta.digest = a.digest
    JOIN definition_texts tb ON tb.digest = b.digest
), transports AS (
    SELECT DISTINCT c.session_id, coalesce(c.mcp_session_id, c.connection_id) AS transport
    FROM calls c SEMI JOIN p ON p.session_id = c.session_id
), notified AS (
    SELECT DISTINCT p.call_id, p.kind, p.name, p.position
    FROM p JOIN transports t ON t.session_id = p.session_id
    JOIN messages n ON coalesce(n.mcp_session_id, n.connection_id) = t.transport AND n.method = p.notification
                   AND n.kind = 'notification' AND n.direction = 'server_to_client'
    JOIN message_order o ON o.message_id = n.message_id
    WHERE p.session_id = p.before_session_id AND o.ord > p.before_ord AND o.ord < p.ord
)
SELECT p.*, n.call_id IS NOT NULL AS list_changed_notified,
       strftime(p.ts AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') AS after_ts_text,
       strftime(p.before_ts AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') AS before_ts_text,
       row_number() OVER (ORDER BY p.ts NULLS LAST, p.ord, p.code, p.call_id, p.kind, p.name, p.position) AS seq
FROM p LEFT JOIN notified n USING (call_id, kind, name, position);
