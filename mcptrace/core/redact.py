"""Credential redaction: one policy for the loader, every reader and the recorders (README: Inputs).

One pattern names secret-looking keys: credential HTTP headers (``Authorization``,
``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``, ``X-Api-Key`` ...) and ``_meta`` /
argument / attribute keys such as ``api_key``, ``access-token``, ``client_secret`` or
``password``, with any prefix joined by ``-``, ``_`` or ``.`` (so ``x-api-key`` and
``http.request.header.authorization`` match, ``progressToken`` and ``max_tokens`` do not).
The value of a matching key, a string or an array of strings, becomes ``"[REDACTED]"``,
wherever the key sits in a JSON document; so does the value of a matching HTTP header or URL
query parameter. Pass your own pattern (matched against the whole key, case-insensitively, by
DuckDB's RE2 and by Python's ``re``, so use the syntax both share) to widen or narrow it.

:class:`RedactionPolicy` carries the switch and the pattern: ``mcptrace.load(..., redact=,
secret_keys=)`` builds one and hands it to the SQL of the load (:meth:`RedactionPolicy.sql_params`)
and to the readers that see HTTP headers and URLs (HAR, MCP Inspector exports);
``mcptrace capture`` builds one from ``--no-redact``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

REDACTED = "[REDACTED]"

DEFAULT_SECRET_KEYS = (
    r"(?:[a-z0-9]+[-_.])*(?:"
    r"authorization|proxy[-_]?authorization|cookie|set[-_]?cookie|"
    r"api[-_]?key|apikey|x[-_]?api[-_]?key|auth[-_]?token|access[-_]?token|refresh[-_]?token|id[-_]?token|"
    r"bearer[-_]?token|session[-_]?token|token|secret|client[-_]?secret|secret[-_]?key|private[-_]?key|"
    r"password|passwd|pwd|credentials?)"
)

#: Header names (lower case) whose values are redacted whatever the key pattern says, as long as
#: redaction is on. The default pattern names all of them but ``x-mcp-remote-auth``.
CREDENTIAL_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "x-auth-token",
    "x-mcp-remote-auth",
})

#: URL query parameter names (lower case) whose values are redacted whatever the key pattern says, as
#: long as redaction is on: OAuth codes and verifiers, signed-URL signatures, bare ``key``/``auth``.
CREDENTIAL_QUERY_NAMES = frozenset({"key", "code", "code_verifier", "auth", "sig", "signature"})


def json_value_pattern(key_pattern: str = DEFAULT_SECRET_KEYS) -> str:
    """A regex matching ``"<key>": <string or array of strings>`` in JSON text; group 1 is ``"<key>":``."""
    return (r'(?i)("' + key_pattern + r'"\s*:\s*)'
            r'(?:"(?:[^"\\]|\\.)*"|\[\s*(?:"(?:[^"\\]|\\.)*"\s*,?\s*)*\])')


_compiled: dict[str, re.Pattern] = {}


def _json_value_re(key_pattern: str) -> re.Pattern:
    pat = _compiled.get(key_pattern)
    if pat is None:
        pat = _compiled[key_pattern] = re.compile(json_value_pattern(key_pattern).replace("(?i)", ""), re.IGNORECASE)
    return pat


def redact_json_text(text: str, key_pattern: str = DEFAULT_SECRET_KEYS) -> str:
    """Redact secret-looking keys in JSON (or JSON-like, possibly broken) text."""
    return _json_value_re(key_pattern).sub(lambda m: m.group(1) + '"' + REDACTED + '"', text)


#: A cheap test run before the full pattern with the default keys: does the text hold a key
#: ending in one of the default secret words, right after a quote, a separator or one of the
#: words the default pattern glues on without a separator (``apikey``, ``accesstoken``...)?
#: Every match of the default pattern matches this (tests/test_redact.py checks it).
PREFILTER = (r'(?i)(?:["\-_.]|proxy|set|api|auth|access|refresh|id|bearer|session|client|secret|private)'
             r'(?:authorization|cookie|key|token|secret|passwd|password|pwd|credentials?)"\s*:\s*[\["]')


def prefilter_for(key_pattern: str) -> str:
    """The cheap pre-test for ``key_pattern``: :data:`PREFILTER` for the default keys, else the full pattern."""
    return PREFILTER if key_pattern == DEFAULT_SECRET_KEYS else json_value_pattern(key_pattern)


_STRING = r'"(?:[^"\\]|\\.)*"'


@dataclass(frozen=True)
class RedactionPolicy:
    """What is redacted, configured once and applied everywhere credentials can appear.

    ``enabled``: redact at all (``False`` keeps every value: ``redact=False``, ``--no-redact``).
    ``secret_keys``: the key pattern (default :data:`DEFAULT_SECRET_KEYS`), matched whole and
    case-insensitively against JSON keys, HTTP header names and URL query parameter names; the
    header names in :data:`CREDENTIAL_HEADERS` are secret whatever the pattern. A redacted value
    becomes :data:`REDACTED`.

    Raises ``ValueError`` when redaction is enabled and ``secret_keys`` is not a regular expression
    Python can compile.
    """

    enabled: bool = True
    secret_keys: str = DEFAULT_SECRET_KEYS

    def __post_init__(self) -> None:
        if not isinstance(self.secret_keys, str):
            raise TypeError(f"secret_keys must be a regular expression string, not {type(self.secret_keys).__name__}")
        if self.enabled:
            try:
                self._name_re  # noqa: B018 - compiled now so that a bad pattern fails here
            except re.error as e:
                raise ValueError(f"secret_keys is not a valid regular expression: {e}") from None

    @cached_property
    def _name_re(self) -> re.Pattern:
        return re.compile(self.secret_keys, re.IGNORECASE)

    @cached_property
    def _pair_re(self) -> re.Pattern:
        # ``"name": "<secret name>", "value": "..."``: HAR header and query-string lists
        names = "|".join(re.escape(h) for h in sorted(CREDENTIAL_HEADERS))
        return re.compile(r'("name"\s*:\s*"(?:' + names + "|" + self.secret_keys + r')"\s*,\s*"value"\s*:\s*)'
                          + _STRING, re.IGNORECASE)

    # -- names ---------------------------------------------------------------------------------
    def is_secret_name(self, name: str | bytes) -> bool:
        """Whether a header, query-parameter or JSON key name looks like it carries a credential.

        The answer does not depend on ``enabled`` (see :meth:`redact_value`).
        """
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        name = name.strip()
        return name.lower() in CREDENTIAL_HEADERS or self._name_re.fullmatch(name) is not None

    def redact_value(self, name: str | bytes, value: Any) -> Any:
        """``value``, or :data:`REDACTED` when redaction is on and ``name`` is secret."""
        return REDACTED if self.enabled and self.is_secret_name(name) else value

    # -- HTTP ----------------------------------------------------------------------------------
    def redact_headers(self, items: Any) -> dict[str, str]:
        """Headers as ``{lower-cased name: value}`` with credential values redacted (when enabled).

        ``items``: a mapping ``{name: value}``, HAR's ``[{"name", "value"}]`` list, or an iterable of
        ``(name, value)`` pairs; names and values may be ``str`` or ``bytes`` (decoded as Latin-1), a
        ``None`` value is ``""``, other values are ``str()``-ed. Entries whose name is not a non-empty
        string are dropped; anything else than the three shapes gives ``{}``. Repeated headers are
        joined with ``", "`` (a redacted one stays :data:`REDACTED`).
        """
        if isinstance(items, Mapping):
            pairs: Iterable = items.items()
        elif isinstance(items, Iterable) and not isinstance(items, str | bytes):
            pairs = items
        else:
            return {}
        out: dict[str, str] = {}
        for item in pairs:
            if isinstance(item, Mapping):
                name, value = item.get("name"), item.get("value")
            elif isinstance(item, tuple | list) and len(item) == 2:
                name, value = item
            else:
                continue
            if isinstance(name, bytes):
                name = name.decode("latin-1")
            if not isinstance(name, str) or not name.strip():
                continue
            key = name.strip().lower()
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            value = "" if value is None else str(value)
            secret = self.enabled and self.is_secret_name(key)
            if secret:
                out[key] = REDACTED
            else:
                out[key] = f"{out[key]}, {value}" if key in out else value
        return out

    def redact_query(self, url: str) -> str:
        """A URL (or ``path?query``) with the values of secret-named query parameters redacted.

        A name is secret by :meth:`is_secret_name` or by :data:`CREDENTIAL_QUERY_NAMES`. Only those
        values change (``?api_key=k&page=2`` becomes ``?api_key=[REDACTED]&page=2``);
        every other character, the fragment included, is kept as it was. Names are compared
        percent- and ``+``-decoded. Disabled, or without a query: ``url`` unchanged.
        """
        if not self.enabled or "?" not in url:
            return url
        from urllib.parse import unquote_plus

        head, _, rest = url.partition("?")
        query, hash_, fragment = rest.partition("#")
        parts = query.split("&")
        changed = False
        for i, part in enumerate(parts):
            name, eq, _value = part.partition("=")
            if eq and (self.is_secret_name(unquote_plus(name))
                       or unquote_plus(name).lower() in CREDENTIAL_QUERY_NAMES):
                parts[i] = f"{name}={REDACTED}"
                changed = True
        if not changed:
            return url
        return f"{head}?{'&'.join(parts)}{hash_}{fragment}"

    # -- JSON text -----------------------------------------------------------------------------
    def redact_json_text(self, text: str) -> str:
        """JSON (or JSON-like, possibly broken) text with secret-keyed values redacted.

        Covers ``"<secret key>": <string or array of strings>`` anywhere (as the load does in
        SQL) and HAR-style ``{"name": "<secret name>", "value": "..."}`` pairs. Disabled: ``text``.
        """
        if not self.enabled:
            return text
        text = _json_value_re(self.secret_keys).sub(lambda m: m.group(1) + '"' + REDACTED + '"', text)
        return self._pair_re.sub(lambda m: m.group(1) + '"' + REDACTED + '"', text)

    # -- SQL -----------------------------------------------------------------------------------
    def sql_params(self) -> dict[str, Any]:
        """The DuckDB named parameters of the load's redaction SQL.

        ``{"redact": bool, "secret_re": json_value_pattern(secret_keys), "redacted": the replacement
        (``\\1"[REDACTED]"``), "prefilter": prefilter_for(secret_keys)}``.
        """
        return {"redact": self.enabled, "secret_re": json_value_pattern(self.secret_keys),
                "redacted": '\\1"' + REDACTED + '"', "prefilter": prefilter_for(self.secret_keys)}


#: The default policy: redaction on, :data:`DEFAULT_SECRET_KEYS`.
DEFAULT_REDACTION = RedactionPolicy()

__all__ = [
    "CREDENTIAL_HEADERS",
    "CREDENTIAL_QUERY_NAMES",
    "DEFAULT_REDACTION",
    "DEFAULT_SECRET_KEYS",
    "PREFILTER",
    "REDACTED",
    "RedactionPolicy",
    "json_value_pattern",
    "prefilter_for",
    "redact_json_text",
]
