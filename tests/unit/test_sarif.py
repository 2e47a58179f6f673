"""The SARIF 2.1.0 log (lint/sarif.py), checked against the schema's required keys and types.

No network and no schema download: ``check_sarif`` encodes what the 2.1.0 schema requires of
the objects pgshift writes (sarifLog, run, tool, toolComponent, reportingDescriptor, result,
message, location, physicalLocation, artifactLocation, region) and the cross-references a
reader follows (ruleIndex -> rules[ruleIndex].id == ruleId).
"""

from __future__ import annotations

import json
from typing import Any

from pgshift.lint.engine import lint_text
from pgshift.lint.finding import DEFAULT_DOCS_URL, Finding
from pgshift.lint.registry import load_rules
from pgshift.lint.sarif import render_sarif

LEVELS = {"none", "note", "warning", "error"}


def _message(message: Any) -> None:
    assert isinstance(message, dict)
    assert isinstance(message.get("text"), str) and message["text"]


def _rule(rule: Any) -> None:
    assert isinstance(rule, dict)
    assert isinstance(rule["id"], str) and rule["id"]
    _message(rule["shortDescription"])
    assert isinstance(rule["helpUri"], str) and rule["helpUri"]
    assert rule["defaultConfiguration"]["level"] in LEVELS


def _location(location: Any) -> None:
    physical = location["physicalLocation"]
    uri = physical["artifactLocation"]["uri"]
    assert isinstance(uri, str) and uri
    assert not uri.startswith("/") and "://" not in uri and "\\" not in uri  # relative
    assert isinstance(physical["artifactLocation"].get("uriBaseId", ""), str)
    region = physical["region"]
    for key in ("startLine", "startColumn"):
        assert isinstance(region[key], int) and not isinstance(region[key], bool)
        assert region[key] >= 1


def _result(result: Any, rules: list[Any]) -> None:
    assert isinstance(result, dict)
    _message(result["message"])
    assert isinstance(result["ruleId"], str)
    assert result["level"] in LEVELS
    index = result["ruleIndex"]
    assert isinstance(index, int) and 0 <= index < len(rules)
    assert rules[index]["id"] == result["ruleId"]
    assert isinstance(result["locations"], list) and result["locations"]
    for location in result["locations"]:
        _location(location)


def check_sarif(log: Any) -> None:
    """Raise AssertionError unless ``log`` has the structure SARIF 2.1.0 requires."""
    json.dumps(log)  # plain JSON values only
    assert log["version"] == "2.1.0"
    assert isinstance(log.get("$schema"), str)
    assert isinstance(log["runs"], list) and log["runs"]
    for run in log["runs"]:
        driver = run["tool"]["driver"]
        assert isinstance(driver["name"], str) and driver["name"]
        rules = driver["rules"]
        assert isinstance(rules, list)
        for rule in rules:
            _rule(rule)
        assert len({r["id"] for r in rules}) == len(rules)
        assert isinstance(run["results"], list)
        for result in run["results"]:
            _result(result, rules)


def _findings() -> list[Finding]:
    text = (
        "CREATE INDEX i ON t (a);\n"
        "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);\n"
        "CREATE TABLE j (x json);\n"
        "DROP TRIGGER audit ON t;\n"
    )
    return lint_text(text, "migrations/20250101000000_x.sql")


def test_the_log_has_every_required_key_and_type() -> None:
    findings = _findings()
    summaries = {code: rule.summary for code, rule in load_rules().items()}
    log = render_sarif(findings, summaries, version="1.2.3")
    check_sarif(log)
    (run,) = log["runs"]
    assert run["tool"]["driver"]["version"] == "1.2.3"
    assert len(run["results"]) == len(findings)
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels["require-concurrent-index"] == "error"
    assert levels["prefer-jsonb"] == "warning"
    assert levels["drop-trigger"] == "note"
    rule = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == "prefer-jsonb")
    assert rule["helpUri"] == f"{DEFAULT_DOCS_URL}prefer-jsonb.md"
    assert rule["shortDescription"]["text"] == load_rules()["prefer-jsonb"].summary
    assert rule["properties"] == {"category": "style", "tags": ["style"]}
    note = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == "drop-trigger")
    assert note["defaultConfiguration"]["level"] == "note"
    categories = {r["ruleId"]: r["properties"]["category"] for r in run["results"]}
    assert categories["drop-trigger"] == "semantics"
    assert categories["require-concurrent-index"] == "locking"


def test_help_uris_follow_the_docs_url_setting() -> None:
    log = render_sarif(_findings(), {}, docs_url="https://rules.example.com/pgshift/")
    check_sarif(log)
    uris = {r["id"]: r["helpUri"] for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert uris["drop-trigger"] == "https://rules.example.com/pgshift/drop-trigger.md"


def test_paths_are_relative_uris_and_fixes_travel_as_properties() -> None:
    finding = Finding(
        "x-y", "warning", "/abs/dir with space/f.sql", 0, 0, "m", "", category="style"
    )
    log = render_sarif([finding], {})
    check_sarif(log)
    (result,) = log["runs"][0]["results"]
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "abs/dir%20with%20space/f.sql"
    assert location["region"] == {"startLine": 1, "startColumn": 1}
    assert log["runs"][0]["tool"]["driver"]["rules"][0]["shortDescription"]["text"] == "m"
    fixed = next(f for f in _findings() if f.fix is not None)
    (result,) = render_sarif([fixed], {})["runs"][0]["results"]
    assert result["properties"]["fix"] == fixed.fix_diff()


def test_no_findings_is_an_empty_run() -> None:
    log = render_sarif([], {})
    check_sarif(log)
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"] == []
