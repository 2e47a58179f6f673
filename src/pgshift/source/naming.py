"""The file-name rules for migrations (``YYYYMMDDHHMMSS_description[_rollback].sql``) and slugs."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

EXPECTED_PATTERN = "YYYYMMDDHHMMSS_description_of_change.sql"
ROLLBACK_PATTERN = "YYYYMMDDHHMMSS_description_of_change_rollback.sql"
ROLLBACK_SUFFIX = "_rollback"
#: The longest file name most file systems take (NAME_MAX, in bytes).
NAME_MAX = 255
#: The longest description whose rollback file's name still fits NAME_MAX:
#: ``YYYYMMDDHHMMSS_<description>_rollback.sql``.
MAX_DESCRIPTION = NAME_MAX - len("YYYYMMDDHHMMSS_") - len(ROLLBACK_SUFFIX + ".sql")

# A regex is fine here: these are file names, never SQL.
_DESCRIPTION_RE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
_VERSION_RE = re.compile(r"[0-9]{14}")
# Letters that NFKD does not decompose into an ASCII base letter.
_FOLD = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "þ": "th"})


@dataclass(frozen=True)
class FileName:
    """The parts of a migration file name; the version is the identity of a migration."""

    version: str
    description: str
    is_rollback: bool


def _expected(detail: str) -> str:
    return f"{detail}; expected {EXPECTED_PATTERN} (or {ROLLBACK_PATTERN})"


def check_version(version: str) -> None:
    """Raise ValueError unless ``version`` is 14 digits forming a real UTC date-time.

    A typo such as month 13 would otherwise sort plausibly and be applied out of place.
    """
    if not _VERSION_RE.fullmatch(version):
        raise ValueError(f"version {version!r} is not 14 digits (YYYYMMDDHHMMSS)")
    parts = (
        version[0:4],
        version[4:6],
        version[6:8],
        version[8:10],
        version[10:12],
        version[12:14],
    )
    year, month, day, hour, minute, second = (int(p) for p in parts)
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise ValueError(
            f"version {version} is not a valid date-time YYYYMMDDHHMMSS ({exc})"
        ) from None


def check_description(description: str) -> None:
    """Raise ValueError unless ``description`` is lower-case words joined by single ``_``."""
    if not _DESCRIPTION_RE.fullmatch(description):
        raise ValueError(
            f"description {description!r} must be lower-case words of a-z and 0-9"
            " joined by single underscores, e.g. add_user_preferences_table"
        )


def parse_file_name(name: str) -> FileName:
    """Split a migration file name into its parts, or raise ValueError saying what is wrong."""
    if not name.endswith(".sql"):
        raise ValueError(_expected(f"{name!r} does not end in .sql"))
    stem = name[: -len(".sql")]
    version, _, description = stem.partition("_")
    try:
        check_version(version)
    except ValueError as exc:
        raise ValueError(_expected(f"{name!r}: {exc}")) from None
    if not description:
        raise ValueError(_expected(f"{name!r} has no _description after the version"))
    is_rollback = False
    if description.endswith(ROLLBACK_SUFFIX) and len(description) > len(ROLLBACK_SUFFIX):
        description = description[: -len(ROLLBACK_SUFFIX)]
        is_rollback = True
    try:
        check_description(description)
    except ValueError as exc:
        raise ValueError(_expected(f"{name!r}: {exc}")) from None
    return FileName(version=version, description=description, is_rollback=is_rollback)


def slugify(description: str) -> str:
    """Turn a human description into a file-name description ("Add prefs!" -> "add_prefs").

    Accents are folded rather than dropped so that "Créer" keeps its letters.
    """
    folded = (
        unicodedata.normalize("NFKD", description.lower().translate(_FOLD))
        .encode("ascii", "ignore")
        .decode("ascii")
    )
    words = re.split(r"[^a-z0-9]+", folded.lower())
    slug = "_".join(w for w in words if w)
    if not slug:
        raise ValueError(
            f"description {description!r} has no letters or digits to name the file with"
        )
    return slug


def migration_file_names(version: str, description: str) -> tuple[str, str]:
    """The (forward, rollback) file names of a new migration, checked against the rules."""
    check_version(version)
    check_description(description)
    if description.endswith(ROLLBACK_SUFFIX):
        raise ValueError(
            f"description {description!r} must not end in {ROLLBACK_SUFFIX!r}:"
            " that suffix marks rollback files"
        )
    return f"{version}_{description}.sql", f"{version}_{description}{ROLLBACK_SUFFIX}.sql"
