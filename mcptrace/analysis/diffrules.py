"""Rules a :class:`mcptrace.analysis.compare.CaptureDiff` can break (``mcptrace diff --fail-on RULES``).

``RULES`` is comma-separated; each rule is one of

- ``new-error-finding``: a finding of severity error in B that A lacks (same code and party, the party
  compared without its version);
- ``removed-tool``: a tool A's server listed that B's no longer lists (only where both captures hold an
  answered ``tools/list`` of that server);
- ``changed-tool``: a tool whose definition changed in any member (description, inputSchema,
  outputSchema, annotations, ...);
- ``p95-regression=N``: a tool whose p95 duration is up more than N % of A's; only tools with at least
  :data:`MIN_ANSWERED` answered calls in both captures count (fewer make a p95 of noise);
- ``error-rate=N``: a tool whose error + tool-error rate (JSON-RPC errors and ``isError`` results, out of
  its calls) is up more than N percentage points; only tools called in both captures count.

:func:`parse_rules` raises ``ValueError`` with a message naming the bad rule; :func:`violations` lists
what tripped, one sentence each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mcptrace.analysis.compare import CaptureDiff

#: answered calls a tool needs in both captures before ``p95-regression`` looks at it
MIN_ANSWERED = 5
#: rule name -> whether it takes ``=N``
RULE_NAMES = {"new-error-finding": False, "removed-tool": False, "changed-tool": False,
              "p95-regression": True, "error-rate": True}


@dataclass(frozen=True)
class Rule:
    """One parsed rule: its ``name`` and threshold ``value`` (None for the rules that take none)."""

    name: str
    value: float | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}={self.value:g}"


def parse_rules(spec: str) -> list[Rule]:
    """``'removed-tool,p95-regression=20'`` -> rules. Raises ``ValueError`` for an empty list, an unknown
    rule, a threshold missing, given where none is taken, not a number, negative or not finite."""
    rules = []
    items = [s.strip() for s in spec.split(",")]
    if not any(items):
        raise ValueError(f"no rule given; rules: {', '.join(_names())}")
    for item in items:
        if not item:
            raise ValueError(f"an empty rule in {spec!r}")
        name, eq, value = (s.strip() for s in item.partition("="))
        if name not in RULE_NAMES:
            raise ValueError(f"unknown rule {name!r}; rules: {', '.join(_names())}")
        if not RULE_NAMES[name]:
            if eq:
                raise ValueError(f"{name} takes no value (got {item!r})")
            rules.append(Rule(name))
            continue
        if not eq or not value:
            raise ValueError(f"{name} needs a threshold: {name}=N")
        try:
            n = float(value)
        except ValueError:
            raise ValueError(f"{name}={value}: the threshold is not a number") from None
        if not math.isfinite(n) or n < 0:
            raise ValueError(f"{name}={value}: the threshold must be a number ≥ 0")
        rules.append(Rule(name, n))
    return rules


def _names() -> list[str]:
    return [f"{n}=N" if v else n for n, v in RULE_NAMES.items()]


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 100:.0f}%"


def violations(diff: CaptureDiff, rules: list[Rule]) -> list[str]:
    """One sentence per thing in ``diff`` that breaks one of ``rules``, each starting with the rule."""
    hits: list[str] = []
    for rule in rules:
        if rule.name == "new-error-finding":
            hits += [f"{rule}: new error finding {f.key['code']} of {f.key['party_kind']} {f.key['party']} "
                     f"({f.count.b} gaps)" for f in diff.findings if f.severity == "error" and f.status == "appeared"]
        elif rule.name == "removed-tool":
            hits += [f"{rule}: server {d.server} no longer lists tool {d.name}"
                     for d in diff.definitions_of("removed")]
        elif rule.name == "changed-tool":
            hits += [f"{rule}: server {d.server} changed tool {d.name} ({', '.join(m or '(whole)' for m in d.members)})"
                     for d in diff.definitions_of("changed")]
        elif rule.name == "p95-regression":
            for t in diff.tools:
                answered, p95 = t.metrics["answered"], t.metrics["p95_ms"]
                if (answered.a or 0) < MIN_ANSWERED or (answered.b or 0) < MIN_ANSWERED:
                    continue
                if p95.change_pct is not None and p95.change_pct > rule.value:
                    hits.append(f"{rule}: {t.server} tool {t.tool} p95 {p95.a:.1f} ms -> {p95.b:.1f} ms "
                                f"(+{p95.change_pct:.0f}%)")
        elif rule.name == "error-rate":
            for t in diff.tools:
                rate = t.metrics["failure_rate"]
                if rate.change is not None and rate.change * 100 > rule.value:
                    hits.append(f"{rule}: {t.server} tool {t.tool} error + tool-error rate {_pct(rate.a)} -> "
                                f"{_pct(rate.b)} (+{rate.change * 100:.0f} points)")
    return hits
