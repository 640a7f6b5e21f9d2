"""The PostgreSQL backend: the same Store, its SQL passed through a thin translating connection.

The queries in storage/ are written once, for sqlite3 (`?` placeholders, `INSERT OR IGNORE`,
`cursor.lastrowid`, rows read by name or position). `PgConn` makes a psycopg connection
answer the same way, so only what must differ is written per dialect (locking clauses,
NOTIFY, DDL types: see `Store.dialect` and storage/schema.py).

Connections come from a psycopg_pool pool, in autocommit mode: a read is one statement on a
borrowed connection (its rows fetched before the connection goes back), a write is one
explicit transaction on one borrowed connection.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from storage.schema import migrate
from storage.store import Store

# Tables whose key is a generated `id`: an INSERT into them returns it (sqlite3's lastrowid).
ID_TABLES = frozenset({"messages", "delivery_events", "bulk_jobs", "conversations", "inbound_messages"})
NOTIFY_CHANNEL = "smsbot_due"
_INSERT = re.compile(r"^\s*INSERT\s+(OR\s+IGNORE\s+)?INTO\s+(\w+)", re.IGNORECASE)


@lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[tuple[Any, ...]]:
    """A tuple that also answers row["name"] and dict(row), like sqlite3.Row."""
    index = {n: i for i, n in enumerate(names)}

    class Row(tuple[Any, ...]):
        __slots__ = ()

        def __getitem__(self, key: Any) -> Any:
            return tuple.__getitem__(self, index[key] if isinstance(key, str) else key)

        def keys(self) -> list[str]:
            return list(names)

    return Row


def _row_factory(cursor: Any) -> Any:
    names = tuple(c.name for c in cursor.description or ())
    return _row_class(names)


@lru_cache(maxsize=1024)
def translate(sql: str) -> tuple[str, bool]:
    """sqlite3 SQL -> psycopg SQL; and whether it returns the new row's id (lastrowid)."""
    match = _INSERT.match(sql)
    returning = False
    if match:
        if match.group(1):
            sql = _INSERT.sub(lambda m: f"INSERT INTO {m.group(2)}", sql, count=1) + " ON CONFLICT DO NOTHING"
        if match.group(2).lower() in ID_TABLES and "RETURNING" not in sql.upper():
            sql += " RETURNING id"
            returning = True
    return sql.replace("%", "%%").replace("?", "%s"), returning


def _params(params: Sequence[Any] | None) -> tuple[Any, ...] | None:
    # SQLite stores Python bools as 0/1; the schema's flags are integers on PostgreSQL too.
    if not params:
        return None
    return tuple(int(p) if isinstance(p, bool) else p for p in params)


class Result:
    """What sqlite3's cursor offers the store: rows (already fetched), rowcount, lastrowid."""

    def __init__(self, rows: list[Any], rowcount: int, lastrowid: int | None = None) -> None:
        self._rows = rows
        self._pos = 0
        self.rowcount = rowcount
        self.lastrowid = lastrowid

    def fetchone(self) -> Any:
        if self._pos >= len(self._rows):
            return None
        self._pos += 1
        return self._rows[self._pos - 1]

    def fetchall(self) -> list[Any]:
        rest, self._pos = self._rows[self._pos:], len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConn:
    """One psycopg connection, spoken to like a sqlite3 connection."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        text, returning = translate(sql)
        cur = self.raw.execute(text, _params(params))
        rows = cur.fetchall() if cur.description is not None else []
        lastrowid = int(rows[0][0]) if returning and rows else None
        return Result([] if returning else rows, cur.rowcount, lastrowid)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Result:
        text, _ = translate(sql)
        if text.endswith(" RETURNING id"):
            text = text.removesuffix(" RETURNING id")
        with self.raw.cursor() as cur:
            cur.executemany(text, (_params(p) or () for p in seq))
            return Result([], cur.rowcount)


class _PooledReads:
    """`store.conn` on PostgreSQL: each statement on a connection borrowed from the pool."""

    def __init__(self, store: PgStore) -> None:
        self._store = store

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        with self._store.pool.connection() as raw:
            return PgConn(raw).execute(sql, params)

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> Result:
        with self._store.pool.connection() as raw:
            return PgConn(raw).executemany(sql, seq)


def pg_conninfo(url: str) -> str:
    """postgres:// (as platforms write it) is the same as postgresql:// to libpq."""
    return "postgresql://" + url.split("://", 1)[1] if url.startswith("postgres://") else url


class PgStore(Store):
    """The Store on PostgreSQL: FOR UPDATE SKIP LOCKED claims, LISTEN/NOTIFY wake-ups."""

    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int | None = None) -> None:
        self.url = pg_conninfo(url)
        self.path = url
        self._pool_size = pool_size or int(os.environ.get("SMSBOT_PG_POOL_SIZE", "10"))
        self._pool: ConnectionPool | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        self._listener: psycopg.Connection[Any] | None = None
        self._listen_lock = threading.Lock()
        self._init_common()
        with self.pool.connection() as raw:
            migrate(PgConn(raw), "postgresql")

    # -- connections

    @property
    def pool(self) -> ConnectionPool:
        # A forked child must not share the parent's sockets: it opens its own pool.
        if self._pool is None or self._pool_pid != os.getpid():
            with self._pool_lock:
                if self._pool is None or self._pool_pid != os.getpid():
                    self._pool = ConnectionPool(
                        self.url, min_size=1, max_size=self._pool_size, open=True, timeout=30.0,
                        kwargs={"autocommit": True, "row_factory": _row_factory},
                        name="smsbot",
                    )
                    self._pool_pid = os.getpid()
        return self._pool

    @property
    def conn(self) -> Any:
        return _PooledReads(self)

    @property
    def db(self) -> Any:
        raise NotImplementedError("sqlite-utils works on SQLite stores only")

    @contextmanager
    def write(self) -> Iterator[Any]:
        """One transaction on one connection; row locks, not a store-wide lock, order writers."""
        with self.pool.connection() as raw, raw.transaction():
            yield PgConn(raw)

    def close(self) -> None:
        with self._listen_lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
        if self._pool is not None and self._pool_pid == os.getpid():
            self._pool.close()
        self._pool = None

    # -- wake-ups

    def _notify(self, conn: Any) -> None:
        # Inside the writing transaction: delivered on commit, never for a rolled-back row.
        conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")

    def notify_due(self) -> None:
        with self.pool.connection() as raw:
            raw.execute(f"NOTIFY {NOTIFY_CHANNEL}")

    def listen(self) -> None:
        """Start listening now (a row enqueued after this call is never missed)."""
        with self._listen_lock:
            self._listen_locked()

    def _listen_locked(self) -> psycopg.Connection[Any]:
        if self._listener is None or self._listener.closed:
            self._listener = psycopg.connect(self.url, autocommit=True)
            self._listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return self._listener

    def wait_for_due(self, timeout: float) -> bool:
        """Block until some process wrote a due row (True) or `timeout` passed (False)."""
        with self._listen_lock:
            listener = self._listen_locked()
            try:
                waiting = listener.notifies(timeout=timeout, stop_after=1)
                woke = next(waiting, None) is not None
                waiting.close()
                if woke:
                    # Drain what else arrived meanwhile: one wake-up covers them all. (Not
                    # inside the loop above: its generator holds the connection's lock.)
                    for _ in listener.notifies(timeout=0.001):  # 0 would mean "no timeout"
                        pass
                return woke
            except psycopg.OperationalError:
                listener.close()  # reconnects (and listens again) on the next call
                self._listener = None
        return False
