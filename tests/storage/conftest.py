"""Store contract fixtures: every test here runs on SQLite and on PostgreSQL.

PostgreSQL is the one at SMSBOT_TEST_DATABASE_URL (default: this machine's, trust auth);
each test gets a fresh schema (search_path in the URL), dropped afterwards. Without a
reachable server the PostgreSQL cases are deselected and one summary line says so, unless
SMSBOT_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from storage import open_store
from storage.store import Store

PG_URL = os.environ.get("SMSBOT_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRED = os.environ.get("SMSBOT_REQUIRE_POSTGRES") == "1"
_state: dict[str, Any] = {"checked": False, "error": None, "deselected": 0}


def pg_unreachable() -> str | None:
    """Why PostgreSQL cannot be used (None: it can). Asked once per run."""
    if not _state["checked"]:
        _state["checked"] = True
        try:
            import psycopg

            with psycopg.connect(PG_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except Exception as exc:  # any reason at all: no driver, refused, auth
            _state["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
    return _state["error"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    pg_items = [i for i in items if i.get_closest_marker("postgres")]
    if not pg_items or REQUIRED or pg_unreachable() is None:
        return
    config.hook.pytest_deselected(items=pg_items)
    items[:] = [i for i in items if not i.get_closest_marker("postgres")]
    _state["deselected"] = len(pg_items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist (`make test`): tell the controller, which prints the summary, what was left out."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["pg_deselected"], workeroutput["pg_error"] = _state["deselected"], _state["error"]


@contextmanager
def fresh_pg_schema() -> Iterator[str]:
    """A fresh, empty schema on the test server, as a DATABASE_URL; dropped afterwards."""
    error = pg_unreachable()
    if error is not None:
        pytest.fail(f"SMSBOT_REQUIRE_POSTGRES=1 but PostgreSQL at {PG_URL} is unreachable: {error}")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty schema on the test server, as a DATABASE_URL."""
    with fresh_pg_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def open_stores(store_url: str) -> Iterator[Callable[[], Store]]:
    """Opens more stores on the same database (as other processes would); all closed after."""
    opened: list[Store] = []

    def make() -> Store:
        store = open_store(store_url)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(open_stores: Callable[[], Store]) -> Store:
    return open_stores()
