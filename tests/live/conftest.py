import os
import secrets
import shutil
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from bench.live_stack import ShopProcesses


def _separate_database() -> tuple[str, callable]:
    """On a PostgreSQL run, a database of its own on the same server (the test database is the tests')."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return "", lambda: None
    parts = urlsplit(url)
    name = f"reckon_live_{secrets.token_hex(4)}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")

    def drop():
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return urlunsplit(parts._replace(path=f"/{name}")), drop


@pytest.fixture(scope="session")
def shop_processes(tmp_path_factory):
    """Simulator, `manage.py runserver` (daphne) and `manage.py qcluster`, as `scripts/run` starts them."""
    database_url, drop = _separate_database()
    folder = tmp_path_factory.mktemp("live-shop")
    shop = ShopProcesses(database_url=database_url, folder=folder, env={"LIVE_TAIL_INTERVAL_MS": "200"})
    try:
        shop.start()
        yield shop
    finally:
        shop.stop()
        drop()
        shutil.rmtree(folder, ignore_errors=True)
