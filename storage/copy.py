"""`smsbot migrate --from sqlite:///smsbot.db`: a SQLite store's rows into PostgreSQL.

Idempotent: rows go in with ON CONFLICT DO NOTHING (by primary key and every unique key),
so a second run copies nothing new; identity sequences are moved past the copied ids.
The SQLite store is marked migrated *before* the copy, so a process still running on it
stops claiming at once and no copied row can be sent by both stores.
"""

from __future__ import annotations

import re
from typing import Any

from storage.pg import PgStore
from storage.store import Store

SKIP = {"schema_version", "meta"}  # each store keeps its own
BATCH = 1000


def redact_url(url: str) -> str:
    """The URL without its password (it lands in the SQLite store and on screen)."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def _tables(src: Store) -> list[str]:
    rows = src.conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    return [r[0] for r in rows if r[0] not in SKIP]


def _columns(dst: PgStore, table: str) -> list[str]:
    rows = dst.conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = ? ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def _copy_table(src: Store, dst: PgStore, table: str) -> int:
    dst_cols = set(_columns(dst, table))
    if not dst_cols:
        raise RuntimeError(f"table {table} is missing in the PostgreSQL store: is its smsbot older?")
    src_cols = [r[1] for r in src.conn.execute(f"PRAGMA table_info({table})")]
    cols = [c for c in src_cols if c in dst_cols]
    names = ", ".join(cols)
    insert = (f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in cols)})"
              " ON CONFLICT DO NOTHING")
    copied = 0
    cursor = src.conn.execute(f"SELECT {names} FROM {table}")
    with dst.write() as conn:
        while batch := cursor.fetchmany(BATCH):
            copied += conn.executemany(insert, [tuple(r) for r in batch]).rowcount
        if "id" in cols:
            # Sequences must continue after the copied ids, or the next insert collides.
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                " HAVING max(id) IS NOT NULL"
            )
    return copied


def copy_store(src_url: str, dst_url: str) -> dict[str, int]:
    """Copy a SQLite store into PostgreSQL; returns the rows newly inserted per table."""
    from storage import open_store

    if not src_url.startswith("sqlite:") or not dst_url.startswith(("postgresql://", "postgres://")):
        raise ValueError("copies from a sqlite:/// store to a postgresql:// one")
    src, dst = open_store(src_url), open_store(dst_url)
    assert isinstance(dst, PgStore)
    try:
        src.mark_migrated(redact_url(dst_url))
        out: dict[str, Any] = {}
        for table in _tables(src):
            out[table] = _copy_table(src, dst, table)
        return out
    finally:
        src.close()
        dst.close()
