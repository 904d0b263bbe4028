"""Credential redaction applied on load (README: Inputs, credential redaction).

One pattern names secret-looking keys: credential HTTP headers (``Authorization``,
``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``, ``X-Api-Key`` ...) and ``_meta`` /
argument / attribute keys such as ``api_key``, ``access-token``, ``client_secret`` or
``password``, with any prefix joined by ``-``, ``_`` or ``.`` (so ``x-api-key`` and
``http.request.header.authorization`` match, ``progressToken`` and ``max_tokens`` do not).
The value of a matching key, a string or an array of strings, becomes ``"[REDACTED]"``,
wherever the key sits in a JSON document. Pass your own pattern (RE2 syntax, matched against
the whole key, case-insensitively) to widen or narrow it.
"""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

DEFAULT_SECRET_KEYS = (
    r"(?:[a-z0-9]+[-_.])*(?:"
    r"authorization|proxy[-_]?authorization|cookie|set[-_]?cookie|"
    r"api[-_]?key|apikey|x[-_]?api[-_]?key|auth[-_]?token|access[-_]?token|refresh[-_]?token|id[-_]?token|"
    r"bearer[-_]?token|session[-_]?token|token|secret|client[-_]?secret|secret[-_]?key|private[-_]?key|"
    r"password|passwd|pwd|credentials?)"
)


def json_value_pattern(key_pattern: str = DEFAULT_SECRET_KEYS) -> str:
    """A regex matching ``"<key>": <string or array of strings>`` in JSON text; group 1 is ``"<key>":``."""
    return (r'(?i)("' + key_pattern + r'"\s*:\s*)'
            r'(?:"(?:[^"\\]|\\.)*"|\[\s*(?:"(?:[^"\\]|\\.)*"\s*,?\s*)*\])')


_compiled: dict[str, re.Pattern] = {}


def redact_json_text(text: str, key_pattern: str = DEFAULT_SECRET_KEYS) -> str:
    """Redact secret-looking keys in JSON (or JSON-like, possibly broken) text."""
    pat = _compiled.get(key_pattern)
    if pat is None:
        pat = _compiled[key_pattern] = re.compile(json_value_pattern(key_pattern).replace("(?i)", ""), re.I)
    return pat.sub(lambda m: m.group(1) + '"' + REDACTED + '"', text)


#: A cheap test run before the full pattern with the default keys: does the text hold a key
#: ending in one of the default secret words, right after a quote, a separator or one of the
#: words the default pattern glues on without a separator (``apikey``, ``accesstoken``...)?
#: Every match of the default pattern matches this (tests/test_redact.py checks it).
PREFILTER = (r'(?i)(?:["\-_.]|proxy|set|api|auth|access|refresh|id|bearer|session|client|secret|private)'
             r'(?:authorization|cookie|key|token|secret|passwd|password|pwd|credentials?)"\s*:\s*[\["]')


def prefilter_for(key_pattern: str) -> str:
    """The cheap pre-test for ``key_pattern``: :data:`PREFILTER` for the default keys, else the full pattern."""
    return PREFILTER if key_pattern == DEFAULT_SECRET_KEYS else json_value_pattern(key_pattern)
