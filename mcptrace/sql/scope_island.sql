-- An append's scope, the split sessions it reaches (mcptrace.analysis.incremental runs this before each round of
-- scope_grow.sql). Parameters: $reconnect_s (DOUBLE).
--
-- split sessions (gaps.sql) pair sessions of one client at most $reconnect_s apart: sessions of a client
-- whose [first, last + $reconnect_s] intervals overlap, in a chain, form an island; the new records' time is
-- in the islands of the clients they name and of the sessions they reach. Only the islands of the
-- clients of sessions in scope matter.
CREATE OR REPLACE TEMP TABLE _client_island AS
WITH cl AS (
    SELECT client_name FROM _seed_client
    UNION SELECT client_name FROM sessions WHERE session_id IN (SELECT session_id FROM _aff) AND client_name IS NOT NULL
), iv AS (
    SELECT session_id, client_name, first_ts AS lo,
           last_ts + to_microseconds(CAST($reconnect_s * 1e6 AS BIGINT)) AS hi
    FROM sessions WHERE client_name IN (SELECT client_name FROM cl) AND first_ts IS NOT NULL
    UNION ALL
    SELECT NULL, n.client_name, t.lo - to_microseconds(CAST($reconnect_s * 1e6 AS BIGINT)),
           t.hi + to_microseconds(CAST($reconnect_s * 1e6 AS BIGINT))
    FROM _seed_time t, _seed_client n
    WHERE t.lo IS NOT NULL
), o AS (
    SELECT *, max(hi) OVER (PARTITION BY client_name ORDER BY lo, hi
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_hi FROM iv
)
SELECT session_id, client_name,
       sum(CASE WHEN prev_hi IS NULL OR lo > prev_hi THEN 1 ELSE 0 END)
           OVER (PARTITION BY client_name ORDER BY lo, hi ROWS UNBOUNDED PRECEDING) AS island
FROM o;

-- the sessions of those islands join the scope. Their clients are those of the scope already, so a second run
-- adds nothing: when scope_grow.sql then adds nothing either, the scope is complete.
CREATE OR REPLACE TEMP TABLE _aff AS
WITH isl AS (
    SELECT DISTINCT client_name, island FROM _client_island
    WHERE session_id IS NULL OR session_id IN (SELECT session_id FROM _aff)
)
SELECT session_id FROM _aff
UNION SELECT i.session_id FROM _client_island i JOIN isl USING (client_name, island) WHERE i.session_id IS NOT NULL;
