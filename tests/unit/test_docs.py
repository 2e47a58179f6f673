"""User docs name only what a user has: no SPEC.md, DESIGN.md or their sections (issue 17, 13)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
USER_DOCS = sorted(
    [
        ROOT / "README.md",
        *(ROOT / "docs").rglob("*.md"),
        *(ROOT / "src/pgshift/rule_docs").glob("*.md"),
    ]
)
#: SPEC.md and DESIGN.md live in the team's shared folder, not in the repository a user has.
#: The word SPEC in capitals (a Kubernetes `spec:` is fine), and either file in any case.
INTERNAL = re.compile(r"\bSPEC\b|\bDESIGN principle|(?i:\b(?:spec|design)\.md\b)")


@pytest.mark.parametrize("page", USER_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_docs_do_not_cite_internal_documents(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    cited = [
        f"{page.name}:{n}: {line.strip()}"
        for n, line in enumerate(text.splitlines(), 1)
        if INTERNAL.search(line)
    ]
    assert not cited, "\n".join(cited)


def test_the_check_sees_every_page() -> None:
    assert len(USER_DOCS) > 10 and any(p.name == "README.md" for p in USER_DOCS)
    assert INTERNAL.search("see SPEC.md") and INTERNAL.search("(SPEC section 7)")
    assert INTERNAL.search("DESIGN.md principle 7") and not INTERNAL.search("INSPECT it")
    assert not INTERNAL.search("spec:") and INTERNAL.search("see design.md")


def test_readme_says_what_load_project_does_with_bad_files() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "bad files raise InputError" not in readme
    assert "`project.problems`" in readme
