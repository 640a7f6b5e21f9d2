"""The store: `open_store(DATABASE_URL)` gives a Store on SQLite or PostgreSQL, same interface."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.schema import SchemaTooNew

if TYPE_CHECKING:
    from storage.store import Store

__all__ = ["SchemaTooNew", "copy_store", "open_store", "sqlite_path"]


def sqlite_path(url: str) -> str:
    """sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db, sqlite:// or sqlite:///:memory: -> :memory:"""
    path = url.removeprefix("sqlite://").removeprefix("/")
    return path or ":memory:"


def open_store(url: str) -> Store:
    """The store at `url`: sqlite:///path, sqlite:///:memory:, postgresql://... or postgres://..."""
    if url.startswith("sqlite:"):
        from storage.store import Store

        return Store(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        from storage.pg import PgStore

        return PgStore(url)
    raise ValueError("DATABASE_URL needs sqlite:///path or postgresql://user@host/db")


def copy_store(src_url: str, dst_url: str) -> dict[str, int]:
    """Copy every table of a SQLite store into a PostgreSQL one; see storage/copy.py."""
    from storage.copy import copy_store as run

    return run(src_url, dst_url)
