"""The settings contract: environment-driven, safe by default, clear errors."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=60)


def test_missing_secret_key_with_debug_off_is_a_clear_one_line_error():
    result = manage("check", DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["makemigrations", "migrate", "check", "stuck_payments"])
def test_missing_secret_key_is_a_clear_error_for_every_command_in_a_bare_environment(command):
    # Django sets a settings error aside and runs the command without its apps; which check then fails
    # first depends on the process's memory layout (a bare environment showed "Models aren't loaded yet").
    bare = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    result = subprocess.run([sys.executable, "manage.py", command], cwd=ROOT, env=bare, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "SECRET_KEY is not set" in result.stderr and "Traceback" not in result.stderr


def test_bad_boolean_is_a_clear_error():
    result = manage("check", DEBUG="maybe")
    assert result.returncode != 0 and "DEBUG must be one of" in result.stderr


def test_deploy_check_is_clean_with_the_documented_variables():
    result = manage("check", "--deploy", "--fail-level", "WARNING", DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50),
                    ALLOWED_HOSTS="shop.example.com", SECURE_SSL_REDIRECT="1", SECURE_HSTS_SECONDS="31536000")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_the_documented_support_user_command_works_in_a_bare_shell(tmp_path):
    # README: `scripts/manage create_support_user alice --email ...`, typed in a shell that has none of
    # scripts/run's environment (no DEBUG, no SECRET_KEY). It used to fail with "SECRET_KEY is not set".
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "ALICE_PASSWORD": "a-long-support-password-1"}
    script = str(ROOT / "scripts" / "manage")
    migrated = subprocess.run([script, "migrate", "-v0"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=180)
    assert migrated.returncode == 0, migrated.stderr
    created = subprocess.run([script, "create_support_user", "alice", "--email", "alice@example.com",
                              "--password-from-env", "ALICE_PASSWORD"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    assert "Created staff user 'alice'" in created.stdout


def _settings_as_json(**env: str) -> dict:
    code = ("import json; from django.conf import settings as s; print(json.dumps({'q': s.Q_CLUSTER, "
            "'cache': s.CACHES['default']['BACKEND'], 'session': s.SESSION_ENGINE, "
            "'layer': s.CHANNEL_LAYERS['default']['BACKEND']}))")
    result = manage("shell", "-c", code, DEBUG="1", **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_redis_url_switches_broker_cache_sessions_and_channel_layer_without_code():
    embedded = _settings_as_json()
    assert embedded["q"]["orm"] == "default" and "redis" not in embedded["q"]
    assert embedded["cache"].endswith("LocMemCache") and embedded["session"].endswith("backends.db")
    scaled = _settings_as_json(REDIS_URL="redis://127.0.0.1:6399/0")
    assert scaled["q"]["redis"] == "redis://127.0.0.1:6399/0" and "orm" not in scaled["q"]
    assert scaled["cache"].endswith("RedisCache") and scaled["session"].endswith("cached_db")
    assert scaled["layer"] == "channels_redis.core.RedisChannelLayer"


def test_the_asgi_web_server_takes_its_postgres_connections_from_a_pool_and_the_rest_do_not():
    """config.asgi asks for the pool (DB_POOL_MAX_SIZE 10); manage.py (the workers, the commands) does not.

    And the processes the web server starts do not inherit its default.
    """
    code = ("import json, os, sys; {imp}from django.conf import settings as s; d = s.DATABASES['default']; "
            "pool = d.get('OPTIONS', {{}}).get('pool'); "
            "print(json.dumps({{'age': d['CONN_MAX_AGE'], 'max': pool and pool['max_size'], "
            "'env': os.environ.get('DB_POOL_MAX_SIZE')}}))")
    url = {"DATABASE_URL": "postgres://reckon@127.0.0.1:5999/reckon", "CONN_MAX_AGE": "60"}
    env = {**{k: v for k, v in os.environ.items() if k not in {"DB_POOL_MAX_SIZE", "DJANGO_SETTINGS_MODULE"}},
           "DEBUG": "1", **url}
    web = subprocess.run([sys.executable, "-c", code.format(imp="import config.asgi; ")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert web.returncode == 0, web.stderr
    assert json.loads(web.stdout.strip().splitlines()[-1]) == {"age": 0, "max": 10, "env": None}
    result = manage("shell", "-c", code.format(imp=""), DEBUG="1", **url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"age": 60, "max": None, "env": None}


def test_the_web_servers_http_threads_are_as_many_as_its_pooled_connections():
    """config.asgi runs HTTP in WEB_THREADS threads (a2wsgi): by default two fewer than pooled connections."""
    code = ("import config.asgi as a; from django.conf import settings as s; "
            "print(s.WEB_THREADS, a.application.application_mapping['http'].app.executor._max_workers)")
    env = {**{k: v for k, v in os.environ.items() if k not in {"DB_POOL_MAX_SIZE", "DJANGO_SETTINGS_MODULE"}},
           "DEBUG": "1", "DATABASE_URL": "postgres://reckon@127.0.0.1:5999/reckon"}

    def run(**extra):
        return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, **extra}, capture_output=True,
                              text=True, timeout=60)

    assert run().stdout.split()[-2:] == ["8", "8"]
    assert run(DB_POOL_MAX_SIZE="4").stdout.split()[-2:] == ["2", "2"]
    assert run(DB_POOL_MAX_SIZE="2").stdout.split()[-2:] == ["1", "1"]
    assert run(WEB_THREADS="6").stdout.split()[-2:] == ["6", "6"]
    refused = run(WEB_THREADS="0")
    assert refused.returncode != 0 and "WEB_THREADS must be at least 1; got 0." in refused.stderr


def test_the_worker_cluster_never_uses_a_pool_even_when_the_environment_asks():
    """django-q2 forks its workers; a pool does not survive the fork, so qcluster ignores DB_POOL_MAX_SIZE."""
    code = ("import sys; sys.argv = ['manage.py', {command!r}]; import django; django.setup(); "
            "from django.conf import settings as s; print(s.DATABASES['default'].get('OPTIONS', {{}}).get('pool'))")
    env = {**{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
           "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "1",
           "DATABASE_URL": "postgres://reckon@127.0.0.1:5999/reckon", "DB_POOL_MAX_SIZE": "10"}
    runs = {command: subprocess.run([sys.executable, "-c", code.format(command=command)], cwd=ROOT, env=env,
                                    capture_output=True, text=True, timeout=60) for command in ("qcluster", "shell")}
    assert all(run.returncode == 0 for run in runs.values()), {c: r.stderr for c, r in runs.items()}
    assert runs["qcluster"].stdout.split()[-1] == "None"
    assert "'max_size': 10" in runs["shell"].stdout  # elsewhere the operator's setting stands


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="needs PostgreSQL")
def test_with_the_pool_many_request_threads_share_a_few_connections():
    """Many threads (under Django's ASGI handler, a thread per request): without the pool, one connection each."""
    code = ("import threading; from django.db import connection\n"
            "pids = set()\n"
            "def request():\n"
            "    with connection.cursor() as cursor:\n"
            "        cursor.execute('SELECT pg_backend_pid()'); pids.add(cursor.fetchone()[0])\n"
            "    connection.close()\n"
            "threads = [threading.Thread(target=request) for _ in range(30)]\n"
            "[t.start() for t in threads]; [t.join() for t in threads]\n"
            "print(len(pids))")
    server = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"  # a database that exists outside the test run
    pooled = manage("shell", "-c", code, DEBUG="1", DB_POOL_MAX_SIZE="3", DATABASE_URL=server)
    assert pooled.returncode == 0, pooled.stderr
    assert 1 <= int(pooled.stdout.split()[-1]) <= 3
    unpooled = manage("shell", "-c", code, DEBUG="1", DB_POOL_MAX_SIZE="0", DATABASE_URL=server)
    assert unpooled.returncode == 0, unpooled.stderr
    assert int(unpooled.stdout.split()[-1]) > 3
