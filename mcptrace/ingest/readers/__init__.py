"""Input readers, one module per format, chosen by sniffing file content.

A reader declares the ``kind`` of rows it produces (``"messages"`` or ``"spans"``), a
``sniff(head)`` test on the first bytes of a file, how it splits the file into records
(``batches``), and the SQL that turns one batch of records into rows (run by the loader,
which owns the DuckDB connection). New formats register with :func:`register` and plug in
without changes to the loader.
"""

from __future__ import annotations

from mcptrace.core.errors import NotFoundError
from mcptrace.ingest.readers.base import HEAD_BYTES, Reader, read_head
from mcptrace.ingest.readers.claude_log import ClaudeLogReader
from mcptrace.ingest.readers.envelope import EnvelopeReader
from mcptrace.ingest.readers.har import HarReader
from mcptrace.ingest.readers.inputs import Input
from mcptrace.ingest.readers.inspector import InspectorExportReader
from mcptrace.ingest.readers.jsonrpc_ndjson import JsonRpcNdjsonReader
from mcptrace.ingest.readers.otlp_doc import OtlpJsonDocumentReader
from mcptrace.ingest.readers.otlp_json import OtlpJsonReader
from mcptrace.ingest.readers.otlp_proto import OtlpProtoReader

_REGISTRY: list[Reader] = []


def register(reader: Reader, *, first: bool = False) -> None:
    """Add a reader to the registry; ``first=True`` makes it win ties in sniffing."""
    if first:
        _REGISTRY.insert(0, reader)
    else:
        _REGISTRY.append(reader)


def readers() -> tuple[Reader, ...]:
    return tuple(_REGISTRY)


def by_name(name: str) -> Reader:
    for r in _REGISTRY:
        if r.name == name:
            return r
    raise NotFoundError("format", name, known=", ".join(r.name for r in _REGISTRY))


def sniff(head: bytes) -> Reader | None:
    """The first registered reader whose ``sniff`` accepts ``head``, else ``None``."""
    for r in _REGISTRY:
        if r.sniff(head):
            return r
    return None


def sniff_input(inp: Input) -> tuple[Reader | None, bytes]:
    """The reader of ``inp`` and the head it was chosen on: :data:`HEAD_BYTES` first, then, when no
    reader accepts them, as many bytes as a reader asks for (:meth:`Reader.head_wanted`, such as an
    OTLP/protobuf request whose resource alone is larger than the head)."""
    head = inp.head()
    reader = sniff(head)
    if reader is None and len(head) >= HEAD_BYTES:
        wanted = max(r.head_wanted(head) for r in _REGISTRY)
        if wanted > len(head):
            head = inp.head(wanted)
            reader = sniff(head)
    return reader, head


# Sniffing order: whole-document and log formats, whose sniffs are specific, before the
# line formats, so a one-line HAR, inspector export or OTLP document is never taken for
# JSON lines; OTLP/protobuf last (binary).
for _r in (HarReader(), InspectorExportReader(), ClaudeLogReader(), OtlpJsonDocumentReader(),
           EnvelopeReader(), OtlpJsonReader(), JsonRpcNdjsonReader(), OtlpProtoReader()):
    register(_r)

__all__ = ["Reader", "register", "readers", "by_name", "sniff", "sniff_input", "read_head"]
