"""Loading files into the tables (docs/ARCHITECTURE.md): :mod:`.loader` (hashing, sniffing, staging,
rejects, accounting), :mod:`.options` (``LoadOptions``) and :mod:`.readers` (one module per input
format, registered and sniffed). Uses only :mod:`mcptrace.core`."""
