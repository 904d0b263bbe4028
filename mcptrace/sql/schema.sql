-- mcptrace database schema. Tables and columns listed in the README's Tables section are the public SQL
-- interface; extra columns come after them. Times are TIMESTAMPTZ (UTC, microseconds),
-- durations DOUBLE milliseconds, JSON-RPC ids their JSON text (1 and "1" differ).

CREATE TABLE IF NOT EXISTS sources (
    source_id    INTEGER PRIMARY KEY,
    path         VARCHAR NOT NULL,
    format       VARCHAR NOT NULL,          -- the reader; 'unknown' for a failed file that never decoded far enough
    sha256       VARCHAR NOT NULL UNIQUE,
    n_records    BIGINT  NOT NULL,
    n_rejected   BIGINT  NOT NULL,
    kind         VARCHAR NOT NULL,          -- 'messages' | 'spans' ('unknown' with format 'unknown')
    size_bytes   BIGINT,
    loaded_at    TIMESTAMPTZ,
    n_skipped    BIGINT,                    -- non-record text the format allows (log noise), not counted in n_records
    compression  VARCHAR,                   -- NULL | 'gzip' | 'zstd' | 'zstd-framed'
    n_http_events BIGINT,                   -- message-less HTTP envelopes of the file (in http_events)
    n_duplicate_spans BIGINT,               -- spans already loaded with the same ids and content (stored once)
    status       VARCHAR,                   -- 'loaded' | 'failed' (nothing of the file kept; error says why)
    error        VARCHAR,                   -- why a failed file could not be loaded
    read_offset  BIGINT,                    -- a followed file (mcptrace load --follow): bytes read, up to a complete line
    read_lines   BIGINT                     -- a followed file: lines read (the next part starts at line read_lines + 1)
);
-- columns added after the first databases were written
ALTER TABLE sources ADD COLUMN IF NOT EXISTS compression VARCHAR;
ALTER TABLE sources ADD COLUMN IF NOT EXISTS n_http_events BIGINT;
ALTER TABLE sources ADD COLUMN IF NOT EXISTS n_duplicate_spans BIGINT;
ALTER TABLE sources ADD COLUMN IF NOT EXISTS status VARCHAR;
ALTER TABLE sources ADD COLUMN IF NOT EXISTS error VARCHAR;
ALTER TABLE sources ADD COLUMN IF NOT EXISTS read_offset BIGINT;
ALTER TABLE sources ADD COLUMN IF NOT EXISTS read_lines BIGINT;

CREATE TABLE IF NOT EXISTS rejects (
    source_id    INTEGER NOT NULL,
    record_no    BIGINT,
    reason       VARCHAR NOT NULL,
    raw          VARCHAR
);

-- Wire records as read, one row per JSON-RPC message (a batch line gives several rows).
CREATE TABLE IF NOT EXISTS messages (
    message_id          BIGINT PRIMARY KEY,
    source_id           INTEGER NOT NULL,
    record_no           BIGINT NOT NULL,
    ts                  TIMESTAMPTZ,
    direction           VARCHAR,            -- 'client_to_server' | 'server_to_client'
    transport           VARCHAR,            -- 'stdio' | 'streamable_http' | 'sse'
    connection_id       VARCHAR,
    mcp_session_id      VARCHAR,
    kind                VARCHAR NOT NULL,   -- 'request' | 'response' | 'error' | 'notification'
    rpc_id              VARCHAR,
    method              VARCHAR,
    tool_name           VARCHAR,
    meta                JSON,
    traceparent         VARCHAR,
    trace_id            VARCHAR,
    parent_span_id      VARCHAR,
    progress_token      VARCHAR,
    session_key         VARCHAR,
    session_key_source  VARCHAR,
    call_key            VARCHAR,
    raw                 JSON,
    -- extras
    batch_index         INTEGER,            -- position inside a JSON-RPC batch, NULL otherwise
    trace_flags         VARCHAR,
    tracestate          VARCHAR,
    traceparent_valid   BOOLEAN,            -- NULL when no traceparent in _meta
    http_traceparent    VARCHAR,
    http_method         VARCHAR,
    http_request_headers  JSON,             -- credential headers redacted on load unless told not to
    http_response_headers JSON,
    http_path           VARCHAR,
    http_status         INTEGER,
    sse_event_id        VARCHAR,
    protocol_version    VARCHAR,
    call_key_source     VARCHAR,
    cancel_request_id   VARCHAR,            -- notifications/cancelled: params.requestId as JSON text
    is_error            BOOLEAN,            -- result.isError
    error_code          BIGINT,
    error_message       VARCHAR,
    client_name         VARCHAR,            -- initialize params.clientInfo.name, or _meta io.modelcontextprotocol/clientInfo (2026-07-28)
    client_version      VARCHAR,
    server_name         VARCHAR,            -- result.serverInfo.name (initialize), or _meta io.modelcontextprotocol/serverInfo
    result_type         VARCHAR,            -- 2026-07-28 result.resultType ('complete' | 'input_required')
    request_state       VARCHAR,            -- 2026-07-28 requestState: of an input_required result, or echoed by its retry
    exchange_id         VARCHAR,            -- the recorder's HTTP exchange (a POST and its SSE stream, a GET stream)
    truncated           BOOLEAN,            -- the capture cut the message (_meta "mcptrace/truncated" of params, result or error)
    turn_key            VARCHAR,            -- the host's turn id from _meta (core.keys.TURN_META_KEYS: vscode.requestId, ...)
    turn_key_source     VARCHAR,            -- the _meta key it came from
    server_version      VARCHAR,            -- result.serverInfo.version (initialize), or _meta io.modelcontextprotocol/serverInfo
    scope_hash          UBIGINT,            -- stored_key_hash(coalesce(mcp_session_id, connection_id)): the transport scope, for lookups
    exchange_hash       UBIGINT             -- stored_key_hash(exchange_id), for lookups
);
-- added after the first databases were written
ALTER TABLE messages ADD COLUMN IF NOT EXISTS truncated BOOLEAN;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS turn_key VARCHAR;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS turn_key_source VARCHAR;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS server_version VARCHAR;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS scope_hash UBIGINT;
ALTER TABLE messages ADD COLUMN IF NOT EXISTS exchange_hash UBIGINT;

-- HTTP transport events: envelopes that carry no JSON-RPC message (SSE priming events, GET
-- streams, DELETE, stream resets, Last-Event-ID resumptions, recorder notes). One row per envelope.
CREATE TABLE IF NOT EXISTS http_events (
    source_id       INTEGER NOT NULL,
    record_no       BIGINT NOT NULL,
    ts              TIMESTAMPTZ,
    event           VARCHAR NOT NULL,   -- 'sse_priming' | 'get_stream' | 'resumption' | 'resumption_failed' | 'delete'
                                        -- | 'reset' | 'client_disconnected' | 'capture_stopped' | 'upstream_error'
                                        -- | 'error' | 'http_error' | 'other'
    direction       VARCHAR,
    transport       VARCHAR,
    connection_id   VARCHAR,
    mcp_session_id  VARCHAR,
    exchange_id     VARCHAR,
    http_method     VARCHAR,
    http_path       VARCHAR,
    http_status     INTEGER,
    sse_event_id    VARCHAR,
    sse_retry_ms    BIGINT,
    last_event_id   VARCHAR,            -- Last-Event-ID request header (a resumption)
    error           VARCHAR,            -- the recorder's http.error (upstream_reset: ..., client_disconnected: ...)
    http_request_headers  JSON,
    http_response_headers JSON,
    scope_hash      UBIGINT,            -- stored_key_hash(coalesce(mcp_session_id, connection_id)), for lookups
    exchange_hash   UBIGINT             -- stored_key_hash(exchange_id), for lookups
);
-- added after the first databases were written
ALTER TABLE http_events ADD COLUMN IF NOT EXISTS scope_hash UBIGINT;
ALTER TABLE http_events ADD COLUMN IF NOT EXISTS exchange_hash UBIGINT;

-- Copies of spans already loaded with the same trace-id, span-id and content (an exporter's retry,
-- overlapping dumps): one row per copy, naming where the stored span was read.
CREATE TABLE IF NOT EXISTS span_duplicates (
    source_id        INTEGER NOT NULL,
    record_no        BIGINT NOT NULL,
    trace_id         VARCHAR NOT NULL,
    span_id          VARCHAR NOT NULL,
    first_source_id  INTEGER NOT NULL,
    first_record_no  BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS spans (
    source_id            INTEGER NOT NULL,
    trace_id             VARCHAR NOT NULL,
    span_id              VARCHAR NOT NULL,
    parent_span_id       VARCHAR,
    name                 VARCHAR,
    kind                 VARCHAR,           -- 'internal' | 'server' | 'client' | 'producer' | 'consumer' | 'unspecified'
    service_name         VARCHAR,
    start_ts             TIMESTAMPTZ,
    end_ts               TIMESTAMPTZ,
    duration_ms          DOUBLE,
    status_code          VARCHAR,           -- 'unset' | 'ok' | 'error'
    status_message       VARCHAR,
    attributes           JSON,
    resource_attributes  JSON,
    events               JSON,
    links                JSON,
    mcp_method_name      VARCHAR,
    jsonrpc_request_id   VARCHAR,
    gen_ai_tool_name     VARCHAR,
    mcp_session_id       VARCHAR,
    -- extras
    scope_name           VARCHAR,
    start_unix_nano      BIGINT,
    end_unix_nano        BIGINT,
    record_no            BIGINT,
    adjusted_start_ts    TIMESTAMPTZ,       -- opt-in clock-skew adjustment (Workspace.adjust_clock_skew)
    adjusted_end_ts      TIMESTAMPTZ,
    clock_adjustment_ms  DOUBLE,
    mcp_side             VARCHAR,           -- 'server' | 'client' | 'host' | NULL: the side of an MCP call the span joins as
                                            -- ('host': the agent's tool-execution span that caused a call; core/conventions.py)
    conversation_id      VARCHAR,           -- the host's conversation (gen_ai.conversation.id, session.id, ...; core/conventions.py)
    turn_id              VARCHAR,           -- the host's turn (turn.id, gen_ai.agent.call.id)
    tool_call_id         VARCHAR,           -- the LLM's tool-call id (gen_ai.tool.call.id, tool_use_id, tool.call_id)
    mcp_server_name      VARCHAR,           -- the MCP server (mcp.server.name, mcp.target, fastmcp.server.name, ...)
    trace_hash           UBIGINT            -- stored_key_hash(trace_id), for lookups
);
-- added after the first databases were written
ALTER TABLE spans ADD COLUMN IF NOT EXISTS mcp_side VARCHAR;
ALTER TABLE spans ADD COLUMN IF NOT EXISTS conversation_id VARCHAR;
ALTER TABLE spans ADD COLUMN IF NOT EXISTS turn_id VARCHAR;
ALTER TABLE spans ADD COLUMN IF NOT EXISTS tool_call_id VARCHAR;
ALTER TABLE spans ADD COLUMN IF NOT EXISTS mcp_server_name VARCHAR;
ALTER TABLE spans ADD COLUMN IF NOT EXISTS trace_hash UBIGINT;
