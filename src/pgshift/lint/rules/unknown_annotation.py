"""Rule unknown-annotation: an ``@key`` in the header that pgshift does not know."""

from __future__ import annotations

from collections.abc import Iterator

from pgshift.lint.context import FileFacts
from pgshift.lint.registry import Hit, Rule, register
from pgshift.source.header import ANNOTATION_KEYS


@register
class UnknownAnnotation(Rule):
    code = "unknown-annotation"
    severity = "warning"
    category = "file"
    summary = "an @annotation pgshift does not know is ignored (a typo?)"
    help = "known annotations: " + ", ".join("@" + key for key in ANNOTATION_KEYS)
    scope = "file"

    def check_file(self, facts: FileFacts) -> Iterator[Hit]:
        for item in facts.header.unknown:
            if item.is_annotation:
                yield Hit(f"unknown annotation @{item.key} is ignored", line=item.line)
