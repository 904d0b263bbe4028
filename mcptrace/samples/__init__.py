"""Sample-traffic generator: real MCP SDK client/server processes with OpenTelemetry, recorded.

Run ``python -m mcptrace.samples data/samples`` (needs ``pip install 'mcptrace[samples]'``). A
development tool (docs/ARCHITECTURE.md): it uses the runtime, and nothing in the runtime imports it.
"""
