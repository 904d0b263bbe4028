-- Redact the credentials of one batch of staged spans (_all) with the load's macro mcptrace_redact
-- (RedactionPolicy.sql_macros) in every text a span carries: its name, status message, attributes,
-- resource attributes, events and links, at any depth (kvlists, JSON held in strings); only the
-- spans whose text the cheap test hit (secret_hit, spans_stage.sql). The loader runs it only for a
-- batch with such spans: its rules' regular expressions are compiled for each text it redacts.

UPDATE _all SET
    name = mcptrace_redact(name),
    status_message = mcptrace_redact(status_message),
    attributes = mcptrace_redact(attributes::VARCHAR)::JSON,
    resource_attributes = mcptrace_redact(resource_attributes::VARCHAR)::JSON,
    events = mcptrace_redact(events::VARCHAR)::JSON,
    links = mcptrace_redact(links::VARCHAR)::JSON
WHERE secret_hit;
