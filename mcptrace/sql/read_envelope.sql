-- The envelope reader (and the Claude Desktop log reader): every line of _lines is one envelope.
-- Created when a file of that format starts loading, after the loader registered the relation
-- _lines(record_no, line, decode_error) and set the variable mcptrace_connection_id (the default
-- connection id from the file name). Temporary: it lives with the connection.
CREATE OR REPLACE TEMP VIEW _envelope_src AS SELECT record_no, line, decode_error FROM _lines;
