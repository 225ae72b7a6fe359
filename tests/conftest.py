import shutil
import socket
import subprocess
import time

import pytest
from django.db import connection

from psp_simulator.process import SimulatorProcess, free_port
from tests.psp import Simulator
from tests.staff import login_verified


@pytest.fixture
def postgres_only(db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: run with DATABASE_URL=postgres://...")


@pytest.fixture(scope="session")
def psp_process(tmp_path_factory):
    folder = tmp_path_factory.mktemp("psp")
    process = SimulatorProcess(folder / "psp.sqlite3", folder / "psp.log").start()
    yield process
    process.stop()


@pytest.fixture
def psp(psp_process, settings) -> Simulator:
    """A freshly reset simulator that the shop's settings point at."""
    settings.PSP_SIMULATOR_URL = psp_process.url
    settings.PSP_SIMULATOR_PUBLIC_URL = psp_process.url
    settings.PSP_READ_TIMEOUT = 2
    settings.PAYMENT_GATEWAY = "simulator"
    simulator = Simulator(psp_process.url)
    simulator.reset()
    return simulator


@pytest.fixture
def admin_client(client, admin_user):
    """pytest-django's admin_client, verified by a second factor as the console requires."""
    return login_verified(client, admin_user)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The cache holds rate-limit counters: each test starts with none (the test client is always 127.0.0.1)."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def redis_url(tmp_path):
    """A throwaway redis-server on 127.0.0.1 (Debian's; scripts/test installs it), stopped after the test."""
    binary = shutil.which("redis-server")
    if not binary:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
