"""``mcptrace serve``: an mcptrace database as a read-only MCP server for agents.

:mod:`mcptrace.serve.readonly` holds what does not need the MCP SDK (the agent's SQL: one checked
``SELECT`` over the contract tables on a locked read-only connection, rows capped and turned into
JSON); :mod:`mcptrace.serve.server` builds the ``MCPServer`` (tools, resources) and runs it over stdio
or Streamable HTTP. Importing the server without the ``serve`` extra raises
:class:`mcptrace.MissingDependencyError`.
"""

#: the port ``mcptrace serve --transport http`` listens on unless told otherwise
DEFAULT_PORT = 8765
