"""The redaction pre-test (run in DuckDB before the full pattern) never misses a secret, and the one
redaction policy (loader SQL, readers, capture) redacts headers, query strings and JSON alike."""

from __future__ import annotations

import json
import re

import duckdb
import pytest
from hypothesis import given, settings, strategies as st

from mcptrace.core.redact import (
    _rules,
    DEFAULT_REDACTION,
    DEFAULT_SECRET_KEYS,
    PREFILTER,
    REDACTED,
    RedactionPolicy,
    json_value_pattern,
    prefilter_for,
    redact_json_text,
)

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
    # plain MCP keys with the values SDKs give them do not trip the pre-test, so their messages skip
    # the rules (a string progressToken does trip it; it is then kept by NOT_SECRET_KEYS)
    for key, value in (("progressToken", 1), ("max_tokens", 100), ("keyboard", "v"), ("input_tokens", 7),
                       ("token_count", 5), ("author", "v")):
        assert not PRE.search(json.dumps({key: value})), key


def test_custom_key_patterns_widen_the_pre_test():
    assert prefilter_for(DEFAULT_SECRET_KEYS) == PREFILTER
    custom = RedactionPolicy(secret_keys="ssn|tax_id")
    assert re.search(prefilter_for("ssn|tax_id"), '{"ssn": "123"}')
    assert custom.may_hold_secret('{"ssn": "123"}') and custom.redact_text('{"ssn": "123"}') == '{"ssn": "[REDACTED]"}'


# -- RedactionPolicy ----------------------------------------------------------------------------

def test_policy_names_the_same_keys_as_the_pattern():
    p = RedactionPolicy()
    for word in SECRET_WORDS:
        assert p.is_secret_name(word) and p.is_secret_name(word.upper()), word
        assert p.is_secret_name("x-" + word) and p.is_secret_name("my_" + word), word
    for word in PLAIN + ["page", "session_id", "mcp-session-id", "accept"]:
        assert not p.is_secret_name(word), word
    assert p.is_secret_name(b"X-Goog-Api-Key") and p.is_secret_name(" Authorization ")
    # the credential header names are secret whatever the key pattern
    custom = RedactionPolicy(secret_keys="ssn")
    assert custom.is_secret_name("ssn") and custom.is_secret_name("Cookie") and not custom.is_secret_name("api_key")


def test_policy_redacts_every_header_shape():
    p = RedactionPolicy()
    pairs = [(b"Authorization", b"Bearer x"), (b"X-Goog-Api-Key", b"k"), (b"Mcp-Session-Id", b"s"),
             (b"Accept", b"a"), (b"accept", b"b")]
    want = {"authorization": REDACTED, "x-goog-api-key": REDACTED, "mcp-session-id": "s", "accept": "a, b"}
    assert p.redact_headers(pairs) == want
    har = [{"name": k.decode(), "value": v.decode()} for k, v in pairs] + [{"name": None, "value": "x"}, "junk"]
    assert p.redact_headers(har) == want
    assert p.redact_headers({"Set-Cookie": "sid=1", "X-Count": 3, "X-None": None}) == {
        "set-cookie": REDACTED, "x-count": "3", "x-none": ""}
    assert p.redact_headers([("Cookie", "a"), ("Cookie", "b")]) == {"cookie": REDACTED}
    assert p.redact_headers("not headers") == {} and p.redact_headers(None) == {}
    off = RedactionPolicy(enabled=False)
    assert off.redact_headers(pairs)["authorization"] == "Bearer x"
    assert p.redact_value("token", "t") == REDACTED and off.redact_value("token", "t") == "t"
    assert p.redact_value("page", "2") == "2"


def test_policy_redacts_only_secret_query_values():
    p = RedactionPolicy()
    assert p.redact_query("/mcp?my_secret=s1&x_token=t&page=2") == "/mcp?my_secret=[REDACTED]&x_token=[REDACTED]&page=2"
    assert p.redact_query("/sse?session_id=1&api_key=2") == "/sse?session_id=1&api_key=[REDACTED]"
    # only the secret values change: other pairs, their encoding and the fragment are kept as written
    assert p.redact_query("https://h:1/p?q=a+b%2Fc&flag&Api%5FKey=k#frag") == \
        "https://h:1/p?q=a+b%2Fc&flag&Api%5FKey=[REDACTED]#frag"
    assert p.redact_query("/mcp?page=2") == "/mcp?page=2"
    assert p.redact_query("/mcp") == "/mcp"
    assert RedactionPolicy(enabled=False).redact_query("/mcp?token=t") == "/mcp?token=t"
    assert RedactionPolicy(secret_keys="tenant_pin").redact_query("/x?tenant_pin=1&token=2") == \
        "/x?tenant_pin=[REDACTED]&token=2"


def test_policy_redacts_json_text_like_the_module_function_and_har_pairs():
    text = '{"params": {"api_key": "k", "scopes": ["a", "b"], "access_token": ["t1", "t2"], "page": "2"}}'
    assert DEFAULT_REDACTION.redact_json_text(text) == redact_json_text(text) == (
        '{"params": {"api_key": "[REDACTED]", "scopes": ["a", "b"], "access_token": "[REDACTED]", "page": "2"}}')
    har = '[{"name": "Authorization", "value": "Bearer x"}, {"name": "Accept", "value": "*/*"}, ' \
          '{"name": "x-mcp-remote-auth", "value": "y"}'
    assert DEFAULT_REDACTION.redact_json_text(har) == (
        '[{"name": "Authorization", "value": "[REDACTED]"}, {"name": "Accept", "value": "*/*"}, '
        '{"name": "x-mcp-remote-auth", "value": "[REDACTED]"}')
    custom = RedactionPolicy(secret_keys="ssn")
    assert custom.redact_json_text('{"ssn": "1", "api_key": "k"}') == '{"ssn": "[REDACTED]", "api_key": "k"}'
    assert RedactionPolicy(enabled=False).redact_json_text(text) == text


def test_policy_sql_macros_redact_in_duckdb_as_in_python():
    con = duckdb.connect()
    for policy in (RedactionPolicy(), RedactionPolicy(secret_keys="ssn|tax_id"), RedactionPolicy(enabled=False)):
        for stmt in policy.sql_macros():
            con.execute(stmt)
        for text in ['{"api_key": "k", "ssn": "1", "x": {"client-secret": ["a"]}}', '{"tax_id": "9", "page": 2}',
                     *PLANTED_TEXTS]:
            out, hit = con.execute("SELECT mcptrace_redact($t), mcptrace_secret_hit($t)", {"t": text}).fetchone()
            assert out == policy.redact_text(text), (policy, text)
            assert hit == (policy.enabled and policy.may_hold_secret(text)), (policy, text)


def test_policy_is_one_immutable_value():
    assert RedactionPolicy() == DEFAULT_REDACTION and hash(RedactionPolicy()) == hash(DEFAULT_REDACTION)
    with pytest.raises(AttributeError):
        DEFAULT_REDACTION.enabled = False  # type: ignore[misc]
    with pytest.raises(ValueError, match="secret_keys"):
        RedactionPolicy(secret_keys="(unclosed")
    RedactionPolicy(enabled=False, secret_keys="(unclosed")  # not used when off
    with pytest.raises(TypeError):
        RedactionPolicy(secret_keys=None)  # type: ignore[arg-type]


def test_oauth_codes_and_url_signatures_are_redacted_in_query_strings():
    from mcptrace.core.redact import RedactionPolicy

    url = "/callback?code=abc&code_verifier=v&state=s1&sig=zz&signature=yy&auth=a&key=k&page=2#top"
    assert RedactionPolicy().redact_query(url) == (
        "/callback?code=[REDACTED]&code_verifier=[REDACTED]&state=s1&sig=[REDACTED]&signature=[REDACTED]"
        "&auth=[REDACTED]&key=[REDACTED]&page=2#top")
    assert RedactionPolicy(enabled=False).redact_query(url) == url


# -- the whole rule set: every credential shape, with its non-secret neighbours kept ------------

#: (text with a credential, the credential, what must stay)
PLANTED = [
    ('{"arguments": {"dbPassword": "pw-1a", "query": "weather"}}', "pw-1a", "weather"),
    ('{"arguments": {"githubToken": "gt-2b", "slackBotToken": "sb-3c", "apiSecret": "as-4d"}}', "gt-2b", "arguments"),
    ('{"env": {"aws_secret_access_key": "aw-5e", "OPENAI_API_KEY": "oa-6f", "HOME": "/home/u"}}', "oa-6f", "/home/u"),
    ('{"deep": {"a": [{"b": {"refresh_token": "rt-7g"}}], "progressToken": "pt-keep"}}', "rt-7g", "pt-keep"),
    ('{"url": "https://h/cb?access_token=at-8h&page=2"}', "at-8h", "page=2"),
    ('{"dsn": "postgres://admin:pg-9i@db:5432/app", "host": "db"}', "pg-9i", '"host": "db"'),
    ('{"database_url": "postgres://admin:pg-9k@db:5432/app"}', "pg-9k", "admin:[REDACTED]@db:5432"),
    ('{"note": "call with postgres://admin:pg-9j@db/app please"}', "pg-9j", "admin"),
    ('[{"name": "Authorization", "value": "Bearer hv-10k"}, {"name": "Accept", "value": "*/*"}]', "hv-10k", "*/*"),
    ('{"text": "curl -H \'Authorization: Bearer hl-11l0123\' https://x"}', "hl-11l0123", "curl"),
    ('{"error": {"code": -32603, "message": "bad", "data": {"api_key": "ed-12m"}}}', "ed-12m", "-32603"),
    ("client_secret=fs-13n&grant_type=client_credentials", "fs-13n", "client_credentials"),
    ('{"gen_ai.tool.call.arguments": "{\\"api_key\\": \\"js-14o\\", \\"city\\": \\"Paris\\"}"}', "js-14o", "Paris"),
    ('{"status": "login failed: password=sm-15p for bob", "code": "exit code=1"}', "sm-15p", "exit code=1"),
    ('{"url.query": "api_key=uq-16q&x=1"}', "uq-16q", "x=1"),
    ('{"http.request.header.authorization": ["Basic hh-17r"]}', "hh-17r", "http.request.header.authorization"),
    ('{"db.connection_string": "Server=s;Password=cs-18s"}', "cs-18s", "db.connection_string"),
    ('{"k": "-----BEGIN RSA PRIVATE KEY-----\\nMIIEpk19t+/=\\n-----END RSA PRIVATE KEY-----"}', "MIIEpk19t", '"k"'),
    ("token in text ghp_0123456789abcdefghijklmnopqrstuvwx20 ok", "ghp_0123456789abcdefghijklmnopqrstuvwx20", "ok"),
    ("aws AKIAABCDEFGHIJKLMN21 and sk-abcdefghijklmnopqrstuv22", "AKIAABCDEFGHIJKLMN21", "aws"),
    ("Cookie: sid=ck-23w; theme=dark", "ck-23w", "Cookie"),
    ('{"password": ["pa-24x", "pa-24y"], "token_count": 5, "max_tokens": 9}', "pa-24y", '"token_count": 5'),
]
PLANTED_TEXTS = [t for t, _, _ in PLANTED]


@pytest.mark.parametrize("text,secret,kept", PLANTED)
def test_every_credential_shape_is_redacted_and_its_neighbours_kept(text, secret, kept):
    out = DEFAULT_REDACTION.redact_text(text)
    assert secret not in out and REDACTED in out, out
    assert kept in out, out
    assert RedactionPolicy(enabled=False).redact_text(text) == text
    if text.startswith(("{", "[")):
        assert json.loads(out) is not None  # still JSON


@settings(max_examples=500, derandomize=True, deadline=None)
@given(key=st.one_of(st.sampled_from(SECRET_WORDS + PLAIN + ["progressToken", "pageToken", "auth", "PWD", "dsn"]),
                     st.from_regex(r"[A-Za-z][A-Za-z0-9_.\-]{0,12}", fullmatch=True)),
       value=st.one_of(st.text(max_size=12), st.integers(), st.lists(st.text(max_size=4), max_size=2)),
       form=st.sampled_from(["json", "escaped", "query", "text", "pair"]))
def test_the_pre_test_passes_every_text_a_rule_changes(key, value, form):
    inner = json.dumps({key: value})
    text = {"json": inner, "escaped": json.dumps({"s": inner}),
            "query": f"/p?{key}={value}&x=1", "text": f"oops {key}: {value} and {key}={value}",
            "pair": json.dumps([{"name": key, "value": str(value)}])}[form]
    if DEFAULT_REDACTION._apply(text) != text:
        assert DEFAULT_REDACTION.may_hold_secret(text), text


def test_rules_share_one_syntax_for_duckdb_and_python():
    con = duckdb.connect()
    for pattern, replacement in _rules(DEFAULT_SECRET_KEYS):
        for text in PLANTED_TEXTS:
            (out,) = con.execute("SELECT regexp_replace(?, ?, ?, 'g')", [text, pattern, replacement]).fetchone()
            assert out == re.sub(pattern, replacement, text), (pattern, text)
