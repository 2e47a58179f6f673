"""Read-only text sessions: libpq through ctypes for a command with nothing to do, or psycopg.

Why it exists: a no-op `up` or a `status` sends two read-only queries, and importing psycopg
costs far more than connecting and both queries together (bench/RESULTS.md, "no-op up and status
latency"). libpq itself is already on the machine, inside psycopg_binary's wheel; loaded through
ctypes it costs a few milliseconds and keeps all of libpq's behaviour (PG* variables, .pgpass,
service files, SSL, GSS, unix sockets, several hosts), because it *is* the library psycopg drives.

The history store reads through the small `TextSession` interface, which both a
`LibpqSession` and a psycopg connection (`PsycopgText`) provide, so its SQL is written once.
Everything that writes or runs migrations still goes through psycopg; a missing or unusable
libpq (another platform's wheel layout, psycopg installed without the binary package) simply
means psycopg reads too. ``PGSHIFT_LIBPQ=off`` forces that fallback.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any, Protocol

from pgshift.errors import CheckFailed, DatabaseUnavailable

if TYPE_CHECKING:
    import psycopg

#: libpq's enum values (libpq-fe.h); they have not changed since PostgreSQL 7.4.
_CONNECTION_OK = 0
_PGRES_COMMAND_OK = 1
_PGRES_TUPLES_OK = 2
_PG_DIAG_SQLSTATE = ord("C")


class TextSession(Protocol):
    """A session that runs one query at a time and returns every value as text (or None).

    ``query`` uses psycopg's placeholders (``%s``, and ``%%`` for a literal ``%``), whichever
    side runs it; ``timezone`` is the session's TimeZone, as psycopg would apply it to a
    timestamptz.
    """

    @property
    def timezone(self) -> tzinfo: ...

    def identifier(self, name: str) -> str:
        """``name`` quoted as an SQL identifier by the driver."""
        ...

    def rows(self, query: str, params: Sequence[str] = ()) -> list[tuple[str | None, ...]]: ...


class PsycopgText:
    """A psycopg connection seen as a TextSession (for the runner, which re-reads under lock)."""

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        self.conn = conn

    @property
    def timezone(self) -> tzinfo:
        return self.conn.info.timezone

    def identifier(self, name: str) -> str:
        from psycopg import sql

        return sql.Identifier(name).as_string(self.conn)

    def rows(self, query: str, params: Sequence[str] = ()) -> list[tuple[str | None, ...]]:
        cursor = self.conn.execute(query, tuple(params))  # () too: "%%" means "%" in both
        if cursor.description is None:  # a command (BEGIN, COMMIT): no rows, as libpq's
            return []
        return [tuple(None if v is None else str(v) for v in r) for r in cursor]


def text_session(session: Any) -> TextSession:
    """``session`` as a TextSession: a LibpqSession as it is, a psycopg connection wrapped."""
    if isinstance(session, (LibpqSession, PsycopgText)):
        return session
    return PsycopgText(session)


# -- libpq through ctypes ---------------------------------------------------------------------


def find_libpq() -> str | None:
    """The libpq shared library psycopg_binary ships, found without importing psycopg.

    Linux wheels keep it in ``psycopg_binary.libs/``, macOS wheels in ``psycopg_binary/.dylibs``.
    """
    from pgshift.config import libpq_disabled

    if libpq_disabled():
        return None
    import importlib.util

    try:
        spec = importlib.util.find_spec("psycopg_binary")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    package = next(iter(spec.submodule_search_locations))
    for folder in (package + ".libs", os.path.join(package, ".dylibs")):
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            if name.startswith("libpq") and (".so" in name or name.endswith(".dylib")):
                return os.path.join(folder, name)
    return None


_Ptr = ctypes.c_void_p
_CharPP = ctypes.POINTER(ctypes.c_char_p)


_Int = ctypes.c_int

#: attribute -> (libpq function, argument types, result type): the few a read needs.
_SIGNATURES: dict[str, tuple[str, list[Any], Any]] = {
    "connect": ("PQconnectdbParams", [_CharPP, _CharPP, _Int], _Ptr),
    "status": ("PQstatus", [_Ptr], _Int),
    "error_message": ("PQerrorMessage", [_Ptr], ctypes.c_char_p),
    "finish": ("PQfinish", [_Ptr], None),
    "parameter_status": ("PQparameterStatus", [_Ptr, ctypes.c_char_p], ctypes.c_char_p),
    # Freed with PQfreemem, so a pointer rather than c_char_p.
    "escape_identifier": ("PQescapeIdentifier", [_Ptr, ctypes.c_char_p, ctypes.c_size_t], _Ptr),
    "freemem": ("PQfreemem", [_Ptr], None),
    # paramTypes, paramLengths, paramFormats are NULL: the server infers types, all text.
    "exec_params": (
        "PQexecParams",
        [_Ptr, ctypes.c_char_p, _Int, _Ptr, _CharPP, _Ptr, _Ptr, _Int],
        _Ptr,
    ),
    "result_status": ("PQresultStatus", [_Ptr], _Int),
    "result_error_message": ("PQresultErrorMessage", [_Ptr], ctypes.c_char_p),
    "result_error_field": ("PQresultErrorField", [_Ptr, _Int], ctypes.c_char_p),
    "ntuples": ("PQntuples", [_Ptr], _Int),
    "nfields": ("PQnfields", [_Ptr], _Int),
    "getisnull": ("PQgetisnull", [_Ptr, _Int, _Int], _Int),
    "getvalue": ("PQgetvalue", [_Ptr, _Int, _Int], ctypes.c_char_p),
    "clear": ("PQclear", [_Ptr], None),
}


class _Libpq:
    """The few libpq functions a read needs, with their C signatures declared (_SIGNATURES)."""

    connect: Any
    status: Any
    error_message: Any
    finish: Any
    parameter_status: Any
    escape_identifier: Any
    freemem: Any
    exec_params: Any
    result_status: Any
    result_error_message: Any
    result_error_field: Any
    ntuples: Any
    nfields: Any
    getisnull: Any
    getvalue: Any
    clear: Any

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)
        for attribute, (name, argtypes, restype) in _SIGNATURES.items():
            function = getattr(lib, name)
            function.argtypes = argtypes
            function.restype = restype
            setattr(self, attribute, function)


def _strings(values: Sequence[bytes | None]) -> ctypes.Array[ctypes.c_char_p]:
    array = (ctypes.c_char_p * (len(values) + 1))()
    for i, value in enumerate(values):
        array[i] = value
    array[len(values)] = None
    return array


def _placeholders(query: str) -> str:
    """psycopg's ``%s`` placeholders as libpq's ``$1``, ``$2``...; ``%%`` as ``%``."""
    out: list[str] = []
    number = 0
    i = 0
    while True:
        j = query.find("%", i)
        if j < 0 or j + 1 >= len(query):
            out.append(query[i:])
            return "".join(out)
        out.append(query[i:j])
        mark = query[j + 1]
        if mark == "s":
            number += 1
            out.append(f"${number}")
        elif mark == "%":
            out.append("%")
        else:
            raise ValueError(f"unsupported placeholder %{mark} in a read-only query")
        i = j + 2


def _zone(name: str | None) -> tzinfo:
    """The Python tzinfo of a server TimeZone, exactly as psycopg chooses it (psycopg/_tz.py)."""
    if name is None or name == "UTC":
        return UTC
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except Exception:  # unknown or unreadable zone: psycopg falls back to UTC too
        return UTC


class LibpqSession:
    """One libpq connection, used for read-only queries only and closed by its owner."""

    def __init__(self, lib: _Libpq, conn: int, url: str | None) -> None:
        self._lib = lib
        self._conn: int | None = conn
        self._url = url
        self._timezone: tzinfo | None = None

    @property
    def timezone(self) -> tzinfo:
        """The session's TimeZone as psycopg would give it; found when first asked (zoneinfo
        is a cost a question that reads no timestamp need not pay)."""
        if self._timezone is None:
            self._timezone = _zone(self._parameter("TimeZone"))
        return self._timezone

    @classmethod
    def open(
        cls, url: str | None, *, purpose: str, connect_timeout_s: int = 10
    ) -> LibpqSession | None:
        """A connection named like psycopg's would be; None when libpq cannot be loaded here.

        A connection libpq refuses raises DatabaseUnavailable, its message redacted.
        """
        path = find_libpq()
        if path is None:
            return None
        try:
            lib = _Libpq(path)
        except (OSError, AttributeError):
            return None
        from pgshift.db.connect import APPLICATION_NAME

        # dbname first: with expand_dbname the URL's own keys land there, and the keys after
        # it override them, as psycopg's keyword arguments override the URL's.
        keys = [b"dbname", b"application_name", b"connect_timeout", b"client_encoding"]
        values = [
            (url or "").encode(),
            f"{APPLICATION_NAME} {purpose}".encode(),
            str(connect_timeout_s).encode(),
            b"UTF8",
        ]
        conn = lib.connect(_strings(keys), _strings(values), 1)
        if not conn:
            raise DatabaseUnavailable("cannot connect to the database: out of memory")
        if lib.status(conn) != _CONNECTION_OK:
            message = _text(lib.error_message(conn))
            lib.finish(conn)
            raise DatabaseUnavailable(
                "cannot connect to the database: " + _redact(message.strip(), url)
            )
        return cls(lib, conn, url)

    def _parameter(self, name: str) -> str | None:
        value = self._lib.parameter_status(self._handle, name.encode())
        return None if value is None else value.decode()

    @property
    def closed(self) -> bool:
        return self._conn is None

    @property
    def _handle(self) -> int:
        if self._conn is None:
            raise DatabaseUnavailable("the read-only session is closed")
        return self._conn

    def identifier(self, name: str) -> str:
        raw = name.encode()
        quoted = self._lib.escape_identifier(self._handle, raw, len(raw))
        if not quoted:
            reason = _text(self._lib.error_message(self._handle)).strip()
            raise CheckFailed(f"cannot quote {name!r} as an identifier: {reason}")
        try:
            return ctypes.string_at(quoted).decode()
        finally:
            self._lib.freemem(quoted)

    def rows(self, query: str, params: Sequence[str] = ()) -> list[tuple[str | None, ...]]:
        lib, conn = self._lib, self._handle
        values = _strings([p.encode() for p in params])
        result = lib.exec_params(
            conn, _placeholders(query).encode(), len(params), None, values, None, None, 0
        )
        if not result:
            raise DatabaseUnavailable(
                "database error: " + _redact(_text(lib.error_message(conn)).strip(), self._url)
            )
        try:
            status = lib.result_status(result)
            if status not in (_PGRES_TUPLES_OK, _PGRES_COMMAND_OK):
                message = _redact(_text(lib.result_error_message(result)).strip(), self._url)
                if lib.status(conn) != _CONNECTION_OK:
                    raise DatabaseUnavailable(f"database error: {message}")
                sqlstate = lib.result_error_field(result, _PG_DIAG_SQLSTATE)
                where = f" (SQLSTATE {sqlstate.decode()})" if sqlstate else ""
                raise CheckFailed(f"the database refused: {message}{where}")
            width = lib.nfields(result)
            out: list[tuple[str | None, ...]] = []
            for r in range(lib.ntuples(result)):
                out.append(
                    tuple(
                        None if lib.getisnull(result, r, c) else _text(lib.getvalue(result, r, c))
                        for c in range(width)
                    )
                )
            return out
        finally:
            lib.clear(result)

    def close(self) -> None:
        if self._conn is not None:
            self._lib.finish(self._conn)
            self._conn = None

    def __enter__(self) -> LibpqSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


def _redact(text: str, url: str | None) -> str:
    from pgshift.db.connect import redact

    return redact(text, url)


def timestamp(text: str, zone: tzinfo) -> datetime:
    """A timestamptz the store's SQL rendered as UTC text, in the session's zone (like psycopg)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).astimezone(zone)
