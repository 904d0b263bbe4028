"""Credential redaction: one policy for the loader, every reader and the recorders (README: Inputs).

What counts as a credential (the documented list):

- **Secret keys.** A JSON key, HTTP header, URL query parameter, form field or ``name=value`` /
  ``name: value`` pair whose name ends in a secret word, whatever the case and separators
  (``api_key``, ``X-Api-Key``, ``OPENAI_API_KEY``, ``dbPassword``, ``githubToken``, ``slackBotToken``,
  ``apiSecret``, ``aws_secret_access_key``, ``db.connection_string``, ``http.request.header.authorization``):
  passwords (``password``, ``passwd``, ``passphrase``, ``pwd``), tokens (``token``: access, refresh,
  id, bearer, session, bot tokens...), secrets (``secret``: client and session secrets), API, access,
  secret, private, signing, encryption, master and client keys, credentials, cookies,
  ``authorization``, ``auth``, connection strings and DSNs. Not secret although they end in such a
  word: :data:`NOT_SECRET_KEYS` (``progressToken`` and pagination tokens: they are ids); plurals
  (``max_tokens``, ``input_tokens``) and other endings (``token_count``, ``tokenizer``) never match.
  The credential headers of :data:`CREDENTIAL_HEADERS` are secret whatever the key pattern.
- **Credentials by shape**, wherever they sit in text: the password of a URL's userinfo
  (``postgres://admin:PW@db``), the values of secret-named URL query parameters (and of
  :data:`CREDENTIAL_QUERY_NAMES`: OAuth ``code``/``code_verifier``, ``sig``/``signature``, ``key``,
  ``auth``), ``Authorization:``/``Cookie:`` header lines and ``Bearer`` tokens inside strings,
  PEM private keys, and tokens of well-known formats (GitHub ``ghp_``/``github_pat_``, Slack
  ``xox?-``, ``sk-`` API keys, AWS ``AKIA`` key ids, Google ``AIza`` keys, JWTs).
- **JSON inside JSON.** A JSON document held in a string (OTLP ``gen_ai.tool.call.arguments``, a
  logged request) is redacted like the outer one.

Free text (error messages, tool results, log lines) is otherwise left as it is: only the patterns
above are replaced. A redacted value becomes ``[REDACTED]``; the key, header or parameter name stays.

:class:`RedactionPolicy` carries the switch and the key pattern (``secret_keys``, matched whole and
case-insensitively; the same regular expression syntax for DuckDB's RE2 and Python's ``re``). It
redacts text in Python (:meth:`RedactionPolicy.redact_text`, used by the readers and ``mcptrace
capture``) and installs the same rules as DuckDB macros for the load's SQL
(:meth:`RedactionPolicy.sql_macros`: ``mcptrace_redact(text)``, ``mcptrace_secret_hit(text)``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import re2  # google-re2: the engine of DuckDB's regexp functions, linear in the text whatever the pattern

REDACTED = "[REDACTED]"

#: Words that make a name secret when it ends with them, glued or not (``dbPassword``, ``db_password``).
SECRET_SUFFIXES = (
    r"password|passwd|passphrase|secret|token|credentials?|cookie|authorization|"
    r"(?:api|access|secret|private|signing|encryption|master|client)[-_.]?key|connection[-_.]?string|dsn"
)
#: Words that make a name secret only as a word of their own (``auth``, ``x-auth``, ``PWD``; not ``oauth``).
SECRET_WORDS = r"auth|pwd"
#: characters of a key (``"..."``, ``\\"...\\"``): no control character, so a key marked by :data:`_MARK`
#: (:data:`NOT_SECRET_KEYS`) while the rules run
_KEY_CHAR = '[^"\\\\\x00-\x1f]'
#: characters of a name in ``name=value`` text (URL query, form field, ``password=...`` in a message)
_NAME_CHAR = '[^"\\\\\x00-\x20&=?#;:,{}\\[\\]()<>/]'


def _key_pattern(char: str, suffixes: str = SECRET_SUFFIXES) -> str:
    return rf"(?:{char}*(?:{suffixes})|(?:{char}*[-_.\s/])?(?:{SECRET_WORDS}))"


#: The default key pattern (matched whole, case-insensitively).
DEFAULT_SECRET_KEYS = _key_pattern(_KEY_CHAR)

#: Keys that end in a secret word but hold ids, never credentials: MCP's ``progressToken`` and
#: pagination tokens. Kept whatever the key pattern.
NOT_SECRET_KEYS = ("progressToken", "progress_token", "pageToken", "page_token", "nextPageToken", "next_page_token",
                   "nextToken", "next_token", "continuationToken", "continuation_token", "cancellationToken",
                   "syncToken", "resumeToken")

#: Header names (lower case) whose values are redacted whatever the key pattern says, as long as
#: redaction is on. The default pattern names all of them but ``x-mcp-remote-auth``.
CREDENTIAL_HEADERS = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "x-auth-token",
    "x-mcp-remote-auth",
})

#: URL query parameter names (lower case) whose values are redacted whatever the key pattern says, as
#: long as redaction is on: OAuth codes and verifiers, signed-URL signatures, bare ``key``/``auth``.
CREDENTIAL_QUERY_NAMES = frozenset({"key", "code", "code_verifier", "auth", "sig", "signature"})

_STRING = r'"(?:[^"\\]|\\.)*"'
#: put after the opening quote of a key of NOT_SECRET_KEYS while the rules run (no key pattern
#: matches a key holding a control character), removed after them
_MARK = "\x01"


def json_value_pattern(key_pattern: str = DEFAULT_SECRET_KEYS) -> str:
    """A regex matching ``"<key>": <string or array of strings>`` in JSON text; group 1 is ``"<key>":``."""
    return (r'(?i)("(?:' + key_pattern + r')"\s*:\s*)'
            r'(?:"(?:[^"\\]|\\.)*"|\[\s*(?:"(?:[^"\\]|\\.)*"\s*,?\s*)*\])')


#: the password of a URL's userinfo: scheme://user:PASSWORD@host (a rule of :func:`_rules`, also run alone
#: by :meth:`RedactionPolicy.redact_query`)
_USERINFO = (r'(?i)([a-z][a-z0-9+.\-]*://[^\s/?#@"\\:]*:)[^\s/?#@"\\]+@', "\\1" + REDACTED + "@")


def _rules(key_pattern: str) -> list[tuple[str, str]]:
    """The redaction rules in the order they run: ``(pattern, replacement)``, both in the syntax DuckDB's
    ``regexp_replace`` (RE2) and Python's ``re.sub`` share (``\\1`` for group 1)."""
    keys = f"(?:{key_pattern})"
    names = (_key_pattern(_NAME_CHAR) if key_pattern == DEFAULT_SECRET_KEYS else keys)
    # "name: value" in text: not the header lines, which their own rules redact keeping the scheme
    # ("Authorization: Bearer [REDACTED]")
    text_names = (_key_pattern(_NAME_CHAR, SECRET_SUFFIXES.replace("cookie|authorization|", ""))
                  if key_pattern == DEFAULT_SECRET_KEYS else keys)
    query_names = f"(?:{names}|{'|'.join(sorted(CREDENTIAL_QUERY_NAMES))})"
    headers = "|".join(re.escape(h) for h in sorted(CREDENTIAL_HEADERS))
    return [
        # PEM private keys, whole or cut (JSON text holds their newlines as \n)
        (r"-----BEGIN[A-Z ]*PRIVATE KEY-----[A-Za-z0-9+/=\s\\]*(?:-----END[A-Z ]*PRIVATE KEY-----)?", REDACTED),
        # "<secret key>": "value" | ["values"]
        (json_value_pattern(key_pattern), '\\1"' + REDACTED + '"'),
        # the same inside a JSON string: \"<secret key>\": \"value\"
        (r'(?i)(\\"' + keys + r'\\"\s*:\s*)\\"(?:[^"\\]|\\\\(?:\\.|[^\\])|\\[^"\\])*\\"',
         '\\1\\\\"' + REDACTED + '\\\\"'),
        # an OTLP KeyValue in its JSON form (a kvlistValue kept as it came): {"key": "<secret>", "value": {...}}
        (r'(?i)("key"\s*:\s*"' + keys + r'"\s*,\s*"value"\s*:\s*)\{\s*"(?:stringValue|bytesValue)"\s*:\s*'
         + _STRING + r"\s*\}", '\\1{"stringValue":"' + REDACTED + '"}'),
        # HAR-style {"name": "<secret name>", "value": "..."}
        (r'(?i)("name"\s*:\s*"(?:' + headers + "|" + key_pattern + r')"\s*,\s*"value"\s*:\s*)' + _STRING,
         '\\1"' + REDACTED + '"'),
        _USERINFO,
        # header lines in text: Authorization: Bearer X, Cookie: a=b; c=d
        (r"(?i)(\b(?:proxy-)?authorization\s*[:=]\s*(?:(?:bearer|basic|token|digest|negotiate|apikey)\s+)?)"
         r"[^\s\"'\\,;]+", "\\1" + REDACTED),
        (r'(?i)(\b(?:set-)?cookie\s*:\s*)[^\s"\\][^"\\\n\r]*', "\\1" + REDACTED),
        (r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]{8,}=*", "\\1" + REDACTED),
        # URL query parameters: secret names and the credential query names (?code=, &sig=)
        (r"(?i)([?&;]" + query_names + r"=)[^&#\s\"'\\,;]+", "\\1" + REDACTED),
        # name=value and name: value in text (form bodies, messages, status lines): secret names only
        (r"(?i)((?:^|[\"'\s,({\[])" + names + r"\s*=\s*)[^&#\s\"'\\,;]+", "\\1" + REDACTED),
        (r"(?i)(\b" + text_names + r"\s*:\s*)[^\s\"'\\,;{}\[\]]+", "\\1" + REDACTED),
        # tokens of well-known formats, wherever they are
        (r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|"
         r"sk-[A-Za-z0-9_\-]{20,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_\-]{35}|"
         r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,})", REDACTED),
    ]


#: What a text must contain for any rule to apply with the default keys: a cheap test run first, so
#: that the rules run only on text that may hold a credential (tests/test_redact.py checks that
#: every text a rule changes passes it).
PREFILTER = (r"(?i)(?:passw|passphrase|secret|credential|cookie|authoriz|api.?key|access.?key|private.?key|"
             r"signing.?key|encryption.?key|master.?key|client.?key|connection.?string|dsn|PRIVATE KEY|"
             # token, auth, pwd: only before a string value, in a HAR name/value pair or as name=value
             r'(?:token|auth|pwd)(?:"\s*:\s*[\["]|"\s*,\s*"value"|\\"\s*:|\s*[=:]\s*[^\s"\\])|'
             r"://[^\s/?#@\"\\]*@|[?&;](?:code|sig|key|auth)|bearer|gh[pousr]_|github_pat_|xox[abprs]-|\bsk-|"
             r"AKIA|AIza|eyJ[A-Za-z0-9_\-]{8,}\.eyJ)")


def prefilter_for(key_pattern: str) -> str:
    """The cheap pre-test for ``key_pattern``: :data:`PREFILTER`, widened by a custom key pattern."""
    return PREFILTER if key_pattern == DEFAULT_SECRET_KEYS else f"{PREFILTER[:-1]}|{key_pattern})"


_NOT_SECRET_RE = "(?i)(\"|\\\\\")(" + "|".join(sorted({k.lower() for k in NOT_SECRET_KEYS}, key=len, reverse=True)) \
    + ")(\"|\\\\\")"


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_compiled: dict[str, list[tuple[Any, str]]] = {}



def _compiled_rules(key_pattern: str) -> list[tuple[Any, str]]:
    """The rules compiled with RE2 (as DuckDB runs them: the same matches, time linear in the text;
    Python's ``re`` backtracks on a long run of key characters)."""
    rules = _compiled.get(key_pattern)
    if rules is None:
        try:
            rules = [(re2.compile(p), r) for p, r in _rules(key_pattern)]
        except re2.error as e:
            raise re.error(str(e)) from None
        _compiled[key_pattern] = rules
    return rules


_NOT_SECRET = re2.compile(_NOT_SECRET_RE)
_USERINFO_RE = re2.compile(_USERINFO[0])
#: the replacement that marks a key of NOT_SECRET_KEYS (_MARK after its opening quote) while the rules run
_MASK = "\\1" + _MARK + "\\2\\3"
_MARKED = '"' + _MARK
_PREFILTERS: dict[str, Any] = {}


def _encodable(text: str) -> str:
    """``text`` as RE2 can take it: lone surrogates (bytes a reader kept from invalid UTF-8) as U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")


def redact_json_text(text: str, key_pattern: str = DEFAULT_SECRET_KEYS) -> str:
    """Redact credentials in text (JSON, JSON-like, broken, or free): :meth:`RedactionPolicy.redact_text`."""
    return RedactionPolicy(secret_keys=key_pattern).redact_text(text)


@dataclass(frozen=True)
class RedactionPolicy:
    """What is redacted, configured once and applied everywhere credentials can appear.

    ``enabled``: redact at all (``False`` keeps every value: ``redact=False``, ``--no-redact``).
    ``secret_keys``: the key pattern (default :data:`DEFAULT_SECRET_KEYS`), matched whole and
    case-insensitively against JSON keys, HTTP header names, URL query and form field names; the
    header names in :data:`CREDENTIAL_HEADERS` are secret whatever the pattern, the keys of
    :data:`NOT_SECRET_KEYS` never are. The credential shapes of the module docstring are redacted
    with any key pattern. A redacted value becomes :data:`REDACTED`.

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
                _compiled_rules(self.secret_keys)
            except re.error as e:
                raise ValueError(f"secret_keys is not a valid regular expression: {e}") from None

    @cached_property
    def _name_re(self) -> re.Pattern:
        return re.compile(self.secret_keys, re.IGNORECASE)

    # -- names ---------------------------------------------------------------------------------
    def is_secret_name(self, name: str | bytes) -> bool:
        """Whether a header, query-parameter or JSON key name looks like it carries a credential.

        The answer does not depend on ``enabled`` (see :meth:`redact_value`).
        """
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        name = name.strip()
        if name.lower() in _NOT_SECRET_LOWER:
            return False
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
        joined with ``", "`` (a redacted one stays :data:`REDACTED`). The values of other headers go
        through :meth:`redact_text` (a URL with a password in a ``Referer``).
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
                value = self.redact_text(value)
                out[key] = f"{out[key]}, {value}" if key in out else value
        return out

    def redact_query(self, url: str) -> str:
        """A URL (or ``path?query``) with the values of secret-named query parameters redacted.

        A name is secret by :meth:`is_secret_name` or by :data:`CREDENTIAL_QUERY_NAMES`. Only those
        values change (``?api_key=k&page=2`` becomes ``?api_key=[REDACTED]&page=2``), and a password
        in the URL's userinfo; every other character, the fragment included, is kept as it was.
        Names are compared percent- and ``+``-decoded. Disabled: ``url`` unchanged.
        """
        if not self.enabled:
            return url
        url = self._apply(url, only_userinfo=True)
        if "?" not in url:
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

    # -- text ----------------------------------------------------------------------------------
    def may_hold_secret(self, text: str) -> bool:
        """The cheap pre-test: ``False`` means :meth:`redact_text` would return ``text`` unchanged."""
        pre = _PREFILTERS.get(self.secret_keys)
        if pre is None:
            pre = _PREFILTERS[self.secret_keys] = re2.compile(prefilter_for(self.secret_keys))
        return pre.search(_encodable(text)) is not None

    def redact_text(self, text: str) -> str:
        """``text`` (JSON, JSON-like, broken, or free text) with every credential of the module
        docstring replaced by :data:`REDACTED`; the same rules as the load's SQL
        (:meth:`sql_macros`). Lone surrogates (bytes that were not UTF-8) come back as U+FFFD.
        Disabled: ``text``."""
        if not self.enabled:
            return text
        text = _encodable(text)
        if not self.may_hold_secret(text):
            return text
        return self._apply(text)

    def _apply(self, text: str, only_userinfo: bool = False) -> str:
        text = _encodable(text)
        rules = _compiled_rules(self.secret_keys)
        if only_userinfo:
            return _USERINFO_RE.sub(_USERINFO[1], text)
        masked = _NOT_SECRET.search(text) is not None
        if masked:
            text = _NOT_SECRET.sub(_MASK, text)
        for pattern, replacement in rules:
            text = pattern.sub(replacement, text)
        return text.replace(_MARKED, '"') if masked else text

    def redact_json_text(self, text: str) -> str:
        """:meth:`redact_text` (the name of the JSON-only redaction it grew from)."""
        return self.redact_text(text)

    # -- SQL -----------------------------------------------------------------------------------
    def sql_macros(self) -> list[str]:
        """DuckDB statements creating the temporary macros ``mcptrace_redact(text)`` (:meth:`redact_text`
        in SQL) and ``mcptrace_secret_hit(text)`` (:meth:`may_hold_secret`) for this policy; disabled,
        the first returns its argument and the second false."""
        if not self.enabled:
            return ["CREATE OR REPLACE TEMP MACRO mcptrace_redact(t) AS t",
                    "CREATE OR REPLACE TEMP MACRO mcptrace_secret_hit(t) AS false"]
        mask = _sql_literal(_MASK)
        expr = f"regexp_replace(t, {_sql_literal(_NOT_SECRET_RE)}, {mask}, 'g')"
        for pattern, replacement in _rules(self.secret_keys):
            expr = f"regexp_replace({expr}, {_sql_literal(pattern)}, {_sql_literal(replacement)}, 'g')"
        hit = f"regexp_matches(t, {_sql_literal(prefilter_for(self.secret_keys))})"
        return [f"CREATE OR REPLACE TEMP MACRO mcptrace_secret_hit(t) AS {hit}",
                f"CREATE OR REPLACE TEMP MACRO mcptrace_redact(t) AS "
                f"CASE WHEN {hit} THEN replace({expr}, {_sql_literal(_MARKED)}, '\"') ELSE t END"]


_NOT_SECRET_LOWER = frozenset(k.lower() for k in NOT_SECRET_KEYS)

#: The default policy: redaction on, :data:`DEFAULT_SECRET_KEYS`.
DEFAULT_REDACTION = RedactionPolicy()

__all__ = [
    "CREDENTIAL_HEADERS",
    "CREDENTIAL_QUERY_NAMES",
    "DEFAULT_REDACTION",
    "DEFAULT_SECRET_KEYS",
    "NOT_SECRET_KEYS",
    "PREFILTER",
    "REDACTED",
    "RedactionPolicy",
    "json_value_pattern",
    "prefilter_for",
    "redact_json_text",
]
