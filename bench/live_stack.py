"""The shop as `scripts/run` starts it, as separate processes, for the live-status test and benchmark.

PSP simulator, web server and django-q2 worker, each its own process, on
127.0.0.1 and free ports, on a SQLite file (the embedded default) or on a
PostgreSQL database. The web server is `manage.py runserver` (daphne, as in
the Procfile) or the production layout: gunicorn with uvicorn workers
serving config.asgi. `stop()` ends every process it started.
"""

from __future__ import annotations

import html
import os
import re
import secrets
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from bench.stack import GUNICORN, PYTHON, REPO_ROOT, ManagedProcess, _tail, _wait_http, children_of
from psp_simulator.process import SimulatorProcess, free_port


class ShopProcesses:
    def __init__(self, *, database_url: str = "", folder: Path | None = None, web: str = "runserver",
                 web_workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.folder = folder or Path(tempfile.mkdtemp(prefix="reckon-live."))
        self.database_url = database_url or f"sqlite:///{self.folder / 'db.sqlite3'}"
        self.web_kind = web
        self.web_workers = web_workers
        self.extra_env = dict(env or {})
        self.web_port = free_port()
        self.psp: SimulatorProcess | None = None
        self.web: ManagedProcess | None = None
        self.worker: ManagedProcess | None = None
        self._secret = secrets.token_urlsafe(40)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def web_log(self) -> Path:
        return self.folder / "web.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PSP_SIM", "Q_", "DJANGO_", "DATABASE_URL", "LIVE_"))}
        env.update({
            "DEBUG": "1" if self.web_kind == "runserver" else "0",
            "SECRET_KEY": self._secret,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": self.database_url,
            "RECKON_VAR_DIR": str(self.folder / "var"),
            "SHOP_BASE_URL": self.url,
            "PSP_SIMULATOR_URL": self.psp.url if self.psp else "",
            "PSP_SIMULATOR_PUBLIC_URL": self.psp.url if self.psp else "",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            # Every simulated customer comes from 127.0.0.1: the per-client limits would stop the load.
            "RATELIMIT_ENABLE": "0",
            "PYTHONUNBUFFERED": "1",
            "Q_SYNC": "0",
        })
        env.update(self.extra_env)
        return env

    def manage(self, *args: str, timeout: float = 300) -> None:
        done = subprocess.run([PYTHON, "manage.py", *args], cwd=REPO_ROOT, env=self.env(), capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}{done.stderr}")

    def start(self, *, worker: bool = True) -> ShopProcesses:
        (self.folder / "var").mkdir(parents=True, exist_ok=True)
        try:
            self.psp = SimulatorProcess(self.folder / "psp.sqlite3", self.folder / "psp.log",
                                        webhook_url=f"{self.url}/payments/webhooks/simulator/").start()
            self.manage("migrate", "--noinput", "-v0")
            self.manage("seed_demo")
            self.manage("setup_schedules")
            if self.web_kind == "runserver":
                cmd = [PYTHON, "manage.py", "runserver", f"127.0.0.1:{self.web_port}", "--noreload"]
            else:
                cmd = [GUNICORN, "config.asgi:application", "-k", "uvicorn_worker.UvicornWorker",
                       "--workers", str(self.web_workers), "--bind", f"127.0.0.1:{self.web_port}",
                       "--no-control-socket", "--timeout", "60", "--graceful-timeout", "5"]
            self.web = ManagedProcess("web", cmd, self.env(), self.web_log).start()
            if worker:
                self.start_worker()
            _wait_http(f"{self.url}/", 60, self.web.proc, self.web_log)
        except Exception:
            self.stop()
            raise
        return self

    def start_worker(self) -> None:
        self.worker = ManagedProcess("worker", [PYTHON, "manage.py", "qcluster"], self.env(),
                                     self.folder / "worker.log").start()

    def web_pids(self) -> list[int]:
        """The processes that hold sockets: gunicorn's workers, or runserver itself."""
        assert self.web is not None
        return children_of(self.web.pid) if self.web_kind == "gunicorn" else [self.web.pid]

    def log_tail(self) -> str:
        return "\n".join(f"--- {name}\n{_tail(self.folder / name)}" for name in ("web.log", "worker.log", "psp.log"))

    def stop(self) -> None:
        for part in (self.worker, self.web):
            if part is not None:
                part.stop(grace=5)
        if self.psp is not None:
            self.psp.stop()


# -- a customer over HTTP, as a browser would (CSRF, one-time checkout token) ---------
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_CHECKOUT_TOKEN = re.compile(r'name="checkout_token" value="([^"]+)"')
_PRODUCT = re.compile(r'href="(/products/[^"/]+/)"')
_ADD = re.compile(r'action="(/cart/add/\d+/)"')
_LIVE_PATH = re.compile(r'data-live-path="([^"]+)"')


def card_token(psp_url: str, card: str) -> str:
    response = requests.post(f"{psp_url}/v1/tokens", json={"number": card, "exp_month": 12, "exp_year": 2034,
                                                           "cvc": "123"},
                             headers={"Authorization": "Bearer pk_sim_test"}, timeout=10)
    response.raise_for_status()
    return response.json()["id"]


def check_out(session: requests.Session, shop_url: str, index: int = 0) -> str:
    """Buy the first product; returns the order page's path."""
    home = session.get(f"{shop_url}/", timeout=30)
    product = session.get(shop_url + _PRODUCT.search(home.text).group(1), timeout=30)
    add = session.post(shop_url + _ADD.search(product.text).group(1), timeout=30, allow_redirects=False,
                       data={"quantity": 1, "csrfmiddlewaretoken": _CSRF.search(product.text).group(1)})
    assert add.status_code == 302, add.status_code
    form = session.get(f"{shop_url}/checkout/", timeout=30)
    done = session.post(f"{shop_url}/checkout/", allow_redirects=False, timeout=30, data={
        "csrfmiddlewaretoken": _CSRF.search(form.text).group(1),
        "checkout_token": _CHECKOUT_TOKEN.search(form.text).group(1),
        "email": f"live{index}@example.com", "full_name": f"Live Customer {index}",
        "address_line1": "1 Ledger Lane", "address_line2": "", "city": "Berlin", "postal_code": "10115",
        "country": "DE"})
    assert done.status_code == 302, (done.status_code, done.text[:300])
    return urlsplit(urljoin(shop_url, done.headers["Location"])).path


def pay_by_card(session: requests.Session, shop_url: str, order_path: str, token: str) -> str:
    """Submit the card form with a PSP token; returns the status page's path."""
    number, access = order_path.strip("/").split("/")[1:3]
    page = session.get(shop_url + order_path, timeout=30)
    paid = session.post(f"{shop_url}/payments/orders/{number}/{access}/pay/card/", allow_redirects=False,
                        timeout=30, data={"csrfmiddlewaretoken": _CSRF.search(page.text).group(1),
                                          "card_token": token})
    assert paid.status_code == 302, paid.status_code
    return urlsplit(urljoin(shop_url, paid.headers["Location"])).path


def live_path(status_html: str) -> str:
    return html.unescape(_LIVE_PATH.search(status_html).group(1))
