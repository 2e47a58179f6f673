"""A migrations folder read into Migrations: pairing, checksums, duplicates and dependencies.

Every mistake in every file is collected before anything is reported, so an author fixes
all of them in one pass instead of one per run.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from pgshift.concurrency import Helper
from pgshift.errors import ConfigError, InputError, Problem
from pgshift.graph import CycleError, topological_order
from pgshift.model import Header, Migration, RollbackScript, Statement
from pgshift.source.folder_stat import migration_file_names
from pgshift.source.header import ANNOTATION_KEYS, parse_header
from pgshift.source.naming import FileName, parse_file_name
from pgshift.source.statement_cache import (
    Parsed,
    ParsedRows,
    StatementCache,
    decode_header,
    decode_statements,
    encode_header,
    encode_statements,
    entry_key,
    folder_key,
    from_rows,
    plain_maker,
    text_key,
    to_rows,
)

TRANSACTION_CONTROL_MESSAGE = (
    "BEGIN/COMMIT are not allowed in a migration file: "
    "pgshift runs each migration in its own transaction"
)


def checksum_text(text: str) -> str:
    """SHA-256 of ``text`` with line endings normalised, so a CRLF-only change is not drift."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


class ParseListener(Protocol):
    """Told of each file as the loader parses it, with the trees it does not keep.

    ``learn`` is called, in a helper process, with the forward files before its own, which
    this process parses; ``export`` is what the helper sends back, ``absorb`` takes it.
    """

    def parsed(
        self,
        text: str,
        file: str,
        header: Header,
        statements: Sequence[Statement],
        trees: Sequence[Mapping[str, Any]],
        *,
        rollback: bool,
    ) -> None: ...

    def learn(self, text: str, file: str) -> None: ...

    def export(self) -> Any: ...

    def absorb(self, exported: Any) -> None: ...


@dataclass(frozen=True)
class LoadResult:
    """Everything read from a folder: usable migrations, blocking problems, and warnings."""

    migrations: tuple[Migration, ...]  # in plan order
    problems: tuple[Problem, ...]
    warnings: tuple[Problem, ...]


@dataclass(frozen=True)
class _File:
    path: Path
    name: FileName
    text: str
    header: Header
    statements: tuple[Statement, ...]
    checksum: str  # checksum_text(text), computed once
    digest: str | None  # of the parsed statements (split_and_checksum); None: it did not parse


def _decode(path: Path, data: bytes, problems: list[Problem]) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        line = before.count(b"\n") + 1
        problems.append(
            Problem(
                str(path),
                line,
                f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x} on this line);"
                " save it as UTF-8",
                kind="read",
            )
        )
        return None
    # A BOM would reach the server as part of the first statement's first word.
    return text.removeprefix("\ufeff")


def _read_bytes(path: Path, base: str, folder_fd: int | None) -> bytes:
    """The file's bytes in three system calls (open, read to the end, close).

    ``Path.read_bytes`` builds a buffered file object and asks fstat for its size first; at
    two thousand files per command that is most of the cost of reading them. Opening by name
    relative to the folder's descriptor also spares the kernel the path walk for each file.
    """
    if folder_fd is None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    else:
        fd = os.open(base, os.O_RDONLY, dir_fd=folder_fd)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


def _read_all(directory: Path, paths: list[Path], names: list[str]) -> list[bytes | OSError]:
    """Every file's bytes, or the error that reading it raised."""
    folder_fd = _open_folder(directory)
    try:
        return [_try_read(path, name, folder_fd) for path, name in zip(paths, names, strict=True)]
    finally:
        if folder_fd is not None:
            os.close(folder_fd)


def _try_read(path: Path, base: str, folder_fd: int | None) -> bytes | OSError:
    try:
        return _read_bytes(path, base, folder_fd)
    except OSError as exc:
        return exc


def _read_file(
    path: Path,
    data: bytes | OSError,
    problems: list[Problem],
    warnings: list[Problem],
    cache: StatementCache | None = None,
    decoded: tuple[str, str] | None = None,
    parsed: Parsed | None = None,
    named: FileName | ValueError | None = None,
) -> _File | None:
    """One file read into a _File (``data``: its bytes as read), its problems collected.

    ``decoded`` is (text, checksum) when the caller has decoded the bytes already, ``parsed``
    the file's header and statements when they were parsed already (_parse_unread), and
    ``named`` its parse_file_name (or the error it raised), when the caller has it.
    """
    file = str(path)
    base = path.name  # pathlib recomputes it on every access
    name = _file_name(base) if named is None else named
    if isinstance(name, ValueError):
        problems.append(Problem(file, 1, f"bad file name: {name}", kind="name"))
        return None
    if isinstance(data, OSError):
        problems.append(
            Problem(file, 1, f"cannot read the file: {data.strerror or data}", kind="read")
        )
        return None
    if decoded is None:
        text = _decode(path, data, problems)
        if text is None:
            return None
        checksum = checksum_text(text)
    else:
        text, checksum = decoded
    if parsed is not None:
        header, header_problems, statements, sql_problems, digest = parsed
    elif cache is not None:
        header, header_problems, statements, sql_problems, digest = cache.parse(
            text, file, rollback=name.is_rollback, checksum=checksum
        )
    else:
        from pgshift.source.sql import split_and_checksum  # pglast: only when parsing

        header, header_problems = parse_header(text, file, rollback=name.is_rollback)
        statements, sql_problems, digest = split_and_checksum(text, file)
    problems.extend(of_kind(header_problems, "header"))
    problems.extend(of_kind(sql_problems, "sql"))
    problems.extend(_statement_problems(file, header, statements, sql_problems))
    for unknown in header.unknown:
        warnings.append(
            Problem(
                file,
                unknown.line,
                f"unknown annotation @{unknown.key} is ignored"
                f" (known: {', '.join('@' + k for k in ANNOTATION_KEYS)})",
                rule="unknown-annotation",
            )
        )
    _check_header_names(file, base, name, header, problems)
    return _File(path, name, text, header, statements, checksum, digest)


def of_kind(problems: Sequence[Problem], kind: str) -> list[Problem]:
    """``problems`` marked as of ``kind`` (Problem.kind), unless they say already."""
    return [p if p.kind else replace(p, kind=kind) for p in problems]


def _file_name(base: str) -> FileName | ValueError:
    try:
        return parse_file_name(base)
    except ValueError as exc:
        return exc


def _check_header_names(
    file: str, base: str, name: FileName, header: Header, problems: list[Problem]
) -> None:
    """The header repeats the file's identity; a copy-pasted header must not go unnoticed.

    ``base`` is the file's name, which parse_file_name has checked ends in ".sql".
    """
    key = "rollback" if name.is_rollback else "migration"
    if header.migration is not None and header.migration not in (base, base[: -len(".sql")]):
        label = "Rollback" if name.is_rollback else "Migration"
        problems.append(
            Problem(
                file,
                header.line_of(key),
                f"header '-- {label}: {header.migration}' does not match the file name {base!r}",
                kind="header",
            )
        )
    if header.version is not None and header.version != name.version:
        problems.append(
            Problem(
                file,
                header.line_of("version"),
                f"header '-- Version: {header.version}' does not match the file's version"
                f" {name.version}",
                kind="header",
            )
        )


def _resolve_dependencies(
    item: _File, forward: dict[str, _File], problems: list[Problem]
) -> tuple[str, ...]:
    """Versions named by ``@dependencies``, each checked against the files that exist."""
    file = str(item.path)
    line = item.header.line_of("dependencies")
    resolved: list[str] = []
    for entry in item.header.dependencies:
        written = entry.removesuffix(".sql")
        version, _, description = written.partition("_")
        target = forward.get(version)
        if target is None:
            problems.append(
                Problem(
                    file,
                    line,
                    f"unknown dependency {entry!r}: no migration with version {version}",
                    kind="dependency",
                )
            )
            continue
        if description and description != target.name.description:
            actual = f"{version}_{target.name.description}"
            problems.append(
                Problem(
                    file,
                    line,
                    f"dependency {entry!r} does not match the migration with version"
                    f" {version}, which is {actual!r}",
                    kind="dependency",
                )
            )
            continue
        if version not in resolved:
            resolved.append(version)
    return tuple(resolved)


def read_migrations(
    directory: Path,
    cache: StatementCache | None = None,
    helper: Helper | None = None,
    listener: ParseListener | None = None,
    *,
    known: Mapping[str, tuple[str, str]] | None = None,
    texts: dict[str, tuple[str, str]] | None = None,
) -> LoadResult:
    """Read every ``*.sql`` file of ``directory``; file mistakes become problems, never raise.

    ``cache`` spares parsing files whose text was split before (statement_cache.py); a
    ``helper`` (concurrency.py) parses half of the others on another core; a ``listener``
    is handed each file with its parse trees when every file is parsed (lint/ahead.py).
    ``known`` gives {file name: (text, checksum)} of files the caller knows unchanged since
    they were read (project_files.py: the folder's stat signature), so that they are not
    opened again; used only when it names exactly the files found. When every file was read
    and decoded, ``texts`` receives the same mapping, for the caller to keep.

    Raises ConfigError only when the folder itself is missing, since then no file can be
    blamed.
    """
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise ConfigError(
            f"migrations directory {directory} {what}",
            hint="set DB_MIGRATIONS_DIR or pass --dir",
        )
    problems: list[Problem] = []
    warnings: list[Problem] = []
    names = migration_file_names(directory)
    present = set(names)
    paths = [directory / name for name in names]  # a child path: no full path to parse again
    raw: list[bytes | OSError]
    if known is not None and len(known) == len(names) and all(n in known for n in names):
        decoded: list[tuple[str, str]] | None = [known[name] for name in names]
        raw = [b""] * len(names)
    else:
        raw = _read_all(directory, paths, names)
        decoded = _decode_all(raw)
        if decoded is not None:  # from here on only the texts are read: let the bytes go
            raw = [b""] * len(raw)
            if texts is not None:
                texts.update(zip(names, decoded, strict=True))
    key = None
    if cache is not None and decoded is not None:
        files = [(name, text_key(*pair)) for name, pair in zip(names, decoded, strict=True)]
        key = folder_key(str(directory), files)
        read = {n: (p, *pair) for n, p, pair in zip(names, paths, decoded, strict=True)}
        remembered = _from_memo(cache.folder_memo(key), read)
        if remembered is not None:
            return remembered
    named = [_file_name(name) for name in names]  # once: it is a few microseconds a file
    parsed: dict[int, Parsed] = {}
    if decoded is not None and (helper is not None or listener is not None):
        parsed = _parse_unread(paths, named, decoded, cache, helper, listener)
    items = [
        _read_file(
            path,
            data,
            problems,
            warnings,
            cache,
            decoded[i] if decoded else None,
            parsed.get(i),
            named[i],
        )
        for i, (path, data) in enumerate(zip(paths, raw, strict=True))
    ]
    result = _pair_and_order(paths, present, items, problems, warnings)
    if cache is not None and key is not None and not result.problems:
        cache.remember_folder(key, _to_memo(result, cache))
    return result


#: Below this many files to parse, a helper costs more than it saves (the fork, the rows sent).
BESIDE_MIN_FILES = 200
#: The part of those files this process parses itself: the helper also encodes and sends
#: rows, which this process decodes; measured at 10,000 migrations (bench/bench_validate.py).
_OWN_SHARE = 0.55


def _unparsed(
    named: list[FileName | ValueError],
    decoded: list[tuple[str, str]],
    cache: StatementCache | None,
) -> list[tuple[int, bool]]:
    """(index, is a rollback) of each well-named file that the memo does not hold."""
    todo: list[tuple[int, bool]] = []
    for i, name in enumerate(named):
        if isinstance(name, ValueError):
            continue  # _read_file reports the name
        text, checksum = decoded[i]
        if cache is None or not cache.has(text, rollback=name.is_rollback, checksum=checksum):
            todo.append((i, name.is_rollback))
    return todo


def _parse_unread(
    paths: list[Path],
    named: list[FileName | ValueError],
    decoded: list[tuple[str, str]],
    cache: StatementCache | None,
    helper: Helper | None,
    listener: ParseListener | None,
) -> dict[int, Parsed]:
    """The files the memo lacks, parsed here (and by ``helper`` at once), by their index.

    The helper takes the later part. Neither keeps parse trees (they would be most of the
    memory of a large project): a ``listener`` (lint/ahead.py) gets each file's trees as it
    is parsed, in name order; it is told of no file unless every file is parsed here, since
    a file from the memo would be missing from what it learns. What the helper cannot do is
    left out of the result; the caller parses those files.
    """
    todo = _unparsed(named, decoded, cache)
    if listener is not None and len(todo) != sum(1 for n in named if isinstance(n, FileName)):
        listener = None
    forked = helper is not None and len(todo) >= BESIDE_MIN_FILES
    if listener is None and not forked:
        return {}  # the usual per-file path reads them
    half = int(len(todo) * _OWN_SHARE) if forked else len(todo)
    mine, theirs = todo[:half], todo[half:]
    pending = None
    if forked and helper is not None:
        pending = helper(functools.partial(_parse_theirs, paths, decoded, mine, theirs, listener))
        if pending is None:  # no helper after all: all of them here
            mine, theirs = todo, []
    try:
        done = {i: _parse_fresh(decoded[i][0], str(paths[i]), rb, listener) for i, rb in mine}
    except BaseException:
        if pending is not None:
            pending.cancel()  # nobody would read what it sends: it would wait for ever
        raise
    for i, rollback in mine:
        _remember(cache, decoded[i], rollback, done[i])
    if pending is not None:
        _take_theirs(done, pending.result(), theirs, decoded, cache, listener)
    return done


def _take_theirs(
    done: dict[int, Parsed],
    got: tuple[list[ParsedRows], object] | None,
    theirs: list[tuple[int, bool]],
    decoded: list[tuple[str, str]],
    cache: StatementCache | None,
    listener: ParseListener | None,
) -> None:
    """The helper's files into ``done``; when it failed, they are left for the caller."""
    if got is None or len(got[0]) != len(theirs):
        return
    rows, exported = got
    if listener is not None:
        listener.absorb(exported)
    for (i, rollback), row in zip(theirs, rows, strict=True):
        done[i] = from_rows(decoded[i][0], row)
        _remember(cache, decoded[i], rollback, done[i], row)


def _parse_theirs(
    paths: list[Path],
    decoded: list[tuple[str, str]],
    mine: list[tuple[int, bool]],
    theirs: list[tuple[int, bool]],
    listener: ParseListener | None,
) -> tuple[list[ParsedRows], object]:
    """A helper's share: learn what the forward files before it did, then parse its files."""
    if listener is not None:
        for i, rollback in mine:
            if not rollback:
                listener.learn(decoded[i][0], str(paths[i]))
    rows = []
    for i, rollback in theirs:
        text = decoded[i][0]
        rows.append(to_rows(text, _parse_fresh(text, str(paths[i]), rollback, listener)))
    return rows, listener.export() if listener is not None else None


def _parse_fresh(text: str, file: str, rollback: bool, listener: ParseListener | None) -> Parsed:
    """One file's header and statements, parsed now; its trees go to ``listener`` only."""
    from pgshift.source.sql import split_and_checksum  # pglast: only when parsing

    header, header_problems = parse_header(text, file, rollback=rollback)
    trees: list[Any] | None = [] if listener is not None else None
    statements, sql_problems, digest = split_and_checksum(text, file, trees=False, tree_sink=trees)
    if listener is not None and trees is not None:
        listener.parsed(text, file, header, statements, trees, rollback=rollback)
    return header, header_problems, statements, sql_problems, digest


def _remember(
    cache: StatementCache | None,
    decoded: tuple[str, str],
    rollback: bool,
    parsed: Parsed,
    row: ParsedRows | None = None,
) -> None:
    """Keep a clean file's parse in the memo, from its rows when a helper sent them."""
    text, checksum = decoded
    header, header_problems, statements, sql_problems, digest = parsed
    if cache is None or header_problems or sql_problems or digest is None:
        return
    if row is not None:
        entry = [row[0], row[2], digest]
    else:
        entry = [encode_header(header), encode_statements(text, statements), digest]
    cache.store(text, entry, rollback=rollback, checksum=checksum)


def _split_forward(
    paths: list[Path], items: list[_File | None], problems: list[Problem]
) -> tuple[dict[str, _File], list[_File]]:
    """Migrations by version (a duplicate version is a problem) and the rollback files."""
    forward: dict[str, _File] = {}
    rollbacks: list[_File] = []
    for path, item in zip(paths, items, strict=True):
        if item is None:
            continue
        if item.name.is_rollback:
            rollbacks.append(item)
            continue
        first = forward.get(item.name.version)
        if first is not None:
            problems.append(
                Problem(
                    str(path),
                    1,
                    f"duplicate version {item.name.version}: {first.path} and {path} both use"
                    " it; give one of them a new version",
                    kind="duplicate",
                )
            )
            continue
        forward[item.name.version] = item
    return forward, rollbacks


def _pair_rollbacks(
    forward: dict[str, _File], rollbacks: list[_File], present: set[str], problems: list[Problem]
) -> dict[str, _File]:
    """Each rollback file by the version of the migration it belongs to."""
    paired: dict[str, _File] = {}
    for item in rollbacks:
        owner = forward.get(item.name.version)
        expected = f"{item.name.version}_{item.name.description}.sql"
        if owner is None or owner.name.description != item.name.description:
            if expected in present:
                continue  # the forward file exists; its own problem is what to fix
            also = f" (version {item.name.version} is {owner.path.name})" if owner else ""
            problems.append(
                Problem(
                    str(item.path),
                    1,
                    f"rollback file without a migration: expected {expected} beside it{also}",
                    kind="rollback",
                )
            )
            continue
        paired[item.name.version] = item
    return paired


def _pair_and_order(
    paths: list[Path],
    present: set[str],
    items: list[_File | None],
    problems: list[Problem],
    warnings: list[Problem],
) -> LoadResult:
    """Pair rollbacks with their migrations, resolve dependencies and order the plan."""
    forward, rollbacks = _split_forward(paths, items, problems)
    paired = _pair_rollbacks(forward, rollbacks, present, problems)

    deps: dict[str, tuple[str, ...]] = {}
    for version, item in forward.items():
        deps[version] = _resolve_dependencies(item, forward, problems)
        if version not in paired:
            rollback_name = f"{item.path.stem}_rollback.sql"
            warnings.append(
                Problem(
                    str(item.path),
                    1,
                    f"no rollback file: expected {rollback_name} beside it",
                    rule="missing-rollback",
                )
            )

    try:
        order = topological_order(deps)
    except CycleError as exc:
        first_member = forward[exc.cycle[0]]
        line = first_member.header.line_of("dependencies")
        problems.append(Problem(str(first_member.path), line, str(exc), kind="dependency"))
        order = sorted(forward)

    migrations = tuple(_migration(forward[v], paired.get(v), deps[v]) for v in order)
    return LoadResult(
        migrations=migrations,
        problems=tuple(sorted(problems, key=_location)),
        warnings=tuple(sorted(warnings, key=_location)),
    )


def _decode_all(raw: list[bytes | OSError]) -> list[tuple[str, str]] | None:
    """(text, checksum) of every file, or None when one cannot be read or decoded (then the
    per-file path reports it)."""
    out = []
    sha256 = hashlib.sha256
    for data in raw:
        if isinstance(data, OSError):
            return None
        try:
            text = data.decode("utf-8").removeprefix("\ufeff")  # as _decode does
        except UnicodeDecodeError:
            return None
        if b"\r" in data or data.startswith(b"\xef\xbb\xbf"):
            out.append((text, checksum_text(text)))
        else:  # the bytes are exactly the normalised text's UTF-8: spare encoding it again
            out.append((text, sha256(data).hexdigest()))
    return out


def _to_memo(result: LoadResult, cache: StatementCache) -> dict[str, Any]:
    """A problem-free LoadResult as the folder memo's JSON values, texts left out.

    Each file's rows are its per-file entry, shared rather than encoded again; the entry's
    key goes with it, so that the next read can take the entries of unchanged files from here.
    """

    def script(m: Migration | RollbackScript, rollback: bool) -> Any:
        key = entry_key(m.text, rollback=rollback, checksum=m.text_checksum or None)
        stored = cache.row(m.text, rollback=rollback, checksum=m.text_checksum or None)
        if stored is not None:
            header_row, rows = stored[0], stored[1]
        else:  # cannot happen for a clean file; encode it rather than lose it
            header_row, rows = encode_header(m.header), encode_statements(m.text, m.statements)
        return [m.path.name, header_row, rows, m.checksum, key]

    migrations = []
    for m in result.migrations:
        r = m.rollback
        migrations.append(
            [
                m.version,
                m.description,
                list(m.dependencies),
                script(m, False),
                script(r, True) if r is not None else None,
            ]
        )
    warnings = [[w.file, w.line, w.message, w.column, w.rule] for w in result.warnings]
    return {"migrations": migrations, "warnings": warnings}


_make_migration = plain_maker(Migration)
_make_rollback = plain_maker(RollbackScript)


def _from_memo(memo: Any, read: dict[str, tuple[Path, str, str]]) -> LoadResult | None:
    """The LoadResult _to_memo stored, over the files just read; None when absent or damaged.

    ``read`` maps each file name to its path, text and checksum.

    The memo's key covers every file's name and text, so a hit stands for exactly this folder.
    """
    if memo is None:
        return None
    try:
        migrations = []
        for version, description, dependencies, forward, rollback in memo["migrations"]:
            base, header_row, rows, digest, _ = forward
            path, text, checksum = read[base]
            script = None
            if rollback is not None:
                r_base, r_header, r_rows, r_digest, _ = rollback
                r_path, r_text, r_checksum = read[r_base]
                script = _make_rollback(
                    {
                        "path": r_path,
                        "text": r_text,
                        "checksum": str(r_digest),
                        "header": decode_header(r_header),
                        "statements": decode_statements(r_text, r_rows),
                        "text_checksum": r_checksum,
                    }
                )
            migrations.append(
                _make_migration(
                    {
                        "version": version,
                        "description": description,
                        "path": path,
                        "text": text,
                        "checksum": str(digest),
                        "header": decode_header(header_row),
                        "statements": decode_statements(text, rows),
                        "rollback": script,
                        "dependencies": tuple(dependencies),
                        "text_checksum": checksum,
                    }
                )
            )
        warnings = tuple(Problem(f, line, m, c, rule) for f, line, m, c, rule in memo["warnings"])
    except (ValueError, TypeError, IndexError, KeyError, AttributeError):
        return None
    return LoadResult(tuple(migrations), (), warnings)


def _open_folder(directory: Path) -> int | None:
    """A descriptor of the folder to open its files by name, where the platform has them."""
    if os.open not in os.supports_dir_fd:
        return None
    try:
        return os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None  # each file's own open then says what is wrong


def _location(problem: Problem) -> tuple[str, int, int, str]:
    return problem.file, problem.line, problem.column, problem.message


def _migration(item: _File, rollback: _File | None, dependencies: tuple[str, ...]) -> Migration:
    script = None
    if rollback is not None:
        script = RollbackScript(
            path=rollback.path,
            text=rollback.text,
            checksum=rollback.digest or rollback.checksum,
            header=rollback.header,
            statements=rollback.statements,
            text_checksum=rollback.checksum,
        )
    return Migration(
        version=item.name.version,
        description=item.name.description,
        path=item.path,
        text=item.text,
        checksum=item.digest or item.checksum,
        header=item.header,
        statements=item.statements,
        rollback=script,
        dependencies=dependencies,
        text_checksum=item.checksum,
    )


def parse_rollback(path: Path, text: str) -> tuple[RollbackScript, list[Problem]]:
    """A rollback script from its text alone: the header, statements and checksum of a file.

    For the rollback text stored in history when the migration was applied (its file may be
    gone), parsed exactly like the file was, so it yields the same statements and checksum.
    ``path`` is where the file was, for messages.
    """
    from pgshift.source.sql import split_and_checksum  # pglast: only when parsing

    file = str(path)
    header, header_problems = parse_header(text, file, rollback=True)
    statements, sql_problems, digest = split_and_checksum(text, file)
    problems = of_kind(header_problems, "header") + of_kind(sql_problems, "sql")
    problems.extend(_statement_problems(file, header, statements, sql_problems))
    legacy = checksum_text(text)
    script = RollbackScript(path, text, digest or legacy, header, statements, legacy)
    return script, problems


def _statement_problems(
    file: str, header: Header, statements: Sequence[Statement], sql_problems: Sequence[Problem]
) -> list[Problem]:
    """What a file's parsed statements may not do: control the transaction, or (in a backfill)
    be anything but its one data statement. Nothing to say of a file that did not parse."""
    found = [
        Problem(file, s.line, TRANSACTION_CONTROL_MESSAGE, s.column, kind="transaction")
        for s in statements
        if s.transaction_control
    ]
    if not sql_problems:
        found += of_kind(backfill_problems(file, header, statements), "backfill")
        found += of_kind(expand_problems(file, header, statements), "expand")
    return found


def expand_problems(file: str, header: Header, statements: Sequence[Statement]) -> list[Problem]:
    """What an `@expand-contract` migration asks that cannot be served in two shapes, found
    from its statements alone (SPEC 15; rewrite/expand.py says why), so `validate` reports it
    before a deploy; what needs the target's catalog is refused when `up` plans."""
    if not header.expand_contract:
        return []
    from pgshift.rewrite.expand import NotExpandable, changes_of  # pglast: only for these

    try:
        changes_of(statements)
    except NotExpandable as exc:
        return [Problem(file, exc.line, f"@expand-contract: {exc.message}")]
    return []


def backfill_problems(file: str, header: Header, statements: Sequence[Statement]) -> list[Problem]:
    """Why a `@kind: backfill` file cannot run as one (SPEC 14), located; empty when it can.

    It must hold exactly one UPDATE, DELETE or INSERT ... SELECT that batching along a key
    leaves meaning the same thing (rewrite/backfill.py says what is refused, and why).
    """
    if header.kind != "backfill":
        return []
    if len(statements) != 1:
        line = statements[1].line if len(statements) > 1 else header.line_of("kind")
        return [
            Problem(
                file,
                line,
                "a backfill (@kind: backfill) holds exactly one data statement;"
                f" this file has {len(statements)}",
            )
        ]
    from pgshift.rewrite.backfill import NotABackfill, shape_of  # pglast: only for backfills

    statement = statements[0]
    try:
        shape_of(statement.sql)
    except NotABackfill as exc:
        return [Problem(file, statement.line, str(exc), statement.column)]
    return []


def load_migrations(directory: Path, cache: StatementCache | None = None) -> tuple[Migration, ...]:
    """The folder's migrations in plan order, or InputError listing every problem at once."""
    result = read_migrations(directory, cache)
    if result.problems:
        raise InputError(result.problems)
    return result.migrations
