"""The redaction pre-test (run in DuckDB before the full pattern) never misses a secret."""

from __future__ import annotations

import json
import re

import duckdb
from hypothesis import given, settings, strategies as st

from mcptrace.core.redact import DEFAULT_SECRET_KEYS, PREFILTER, json_value_pattern, prefilter_for

SECRET_WORDS = ["authorization", "proxy-authorization", "proxyauthorization", "cookie", "set-cookie", "setcookie",
                "api_key", "apikey", "x-api-key", "xapikey", "auth-token", "authtoken", "access_token", "accesstoken",
                "refresh-token", "idtoken", "bearer_token", "sessiontoken", "token", "secret", "client_secret",
                "clientsecret", "secretkey", "private-key", "privatekey", "password", "passwd", "pwd", "credential",
                "credentials"]
PLAIN = ["progressToken", "max_tokens", "keyboard", "name", "tokenizer", "secretary", "pwdx"]

FULL = re.compile(json_value_pattern().replace("(?i)", ""), re.I)
PRE = re.compile(PREFILTER.replace("(?i)", ""), re.I)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(prefix=st.lists(st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True), max_size=3),
       sep=st.sampled_from(["-", "_", "."]), word=st.sampled_from(SECRET_WORDS + PLAIN),
       upper=st.booleans(), value=st.one_of(st.text(max_size=20), st.lists(st.text(max_size=5), max_size=3)),
       spaced=st.booleans())
def test_prefilter_is_a_superset_of_the_full_pattern(prefix, sep, word, upper, value, spaced):
    key = "".join(p + sep for p in prefix) + word
    key = key.upper() if upper else key
    text = json.dumps({"params": {key: value, "other": 1}}, separators=None if spaced else (",", ":"))
    if FULL.search(text):
        assert PRE.search(text), text


def test_duckdb_agrees_with_python_on_the_prefilter_and_pattern():
    con = duckdb.connect()
    samples = [json.dumps({w: "v"}) for w in SECRET_WORDS + PLAIN] + [json.dumps({"X-Api-Key": ["a", "b"]})]
    for text in samples:
        pre, full = con.execute("SELECT regexp_matches(?, ?), regexp_matches(?, ?)",
                                [text, PREFILTER, text, json_value_pattern()]).fetchone()
        assert pre == bool(PRE.search(text)), text
        assert full == bool(FULL.search(text)), text
        if full:
            assert pre
    # plain MCP keys do not trip the pre-test, so their messages skip the full pattern
    for w in ("progressToken", "max_tokens", "keyboard"):
        assert not PRE.search(json.dumps({w: "v"}))


def test_custom_key_patterns_use_their_own_pattern_as_the_pre_test():
    assert prefilter_for(DEFAULT_SECRET_KEYS) == PREFILTER
    custom = prefilter_for("ssn|tax_id")
    assert re.search(custom.replace("(?i)", ""), '{"ssn": "123"}', re.I)
