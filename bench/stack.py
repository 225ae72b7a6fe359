"""The real stack on 127.0.0.1, for the chaos run and the throughput benchmark.

A throwaway PostgreSQL (with pg_stat_statements), the PSP simulator, gunicorn
with several uvicorn workers (config.asgi, as in production) and the django-q2
cluster. Every process is started in a
folder of its own under /tmp and stopped by `Stack.stop()`, also after a
failure or Ctrl-C. Each kind of process connects to PostgreSQL as its own role
(reckon_web, reckon_worker, reckon_ops) so that pg_stat_statements can say who
ran which query.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from psp_simulator.process import SimulatorProcess, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python") if (REPO_ROOT / ".venv").exists() else sys.executable
GUNICORN = str(Path(PYTHON).parent / "gunicorn")
ROLES = ("reckon_web", "reckon_worker", "reckon_ops")
BASELINE_TABLE = "bench_baseline_hit"


def _pg_bin() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(f"{folder}/initdb", os.X_OK):
            return Path(folder)
    raise RuntimeError("PostgreSQL is not installed: `apt-get install postgresql` (scripts/test does it).")


def _wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url} did not come up: the process exited ({proc.returncode}).\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f} s.\n{_tail(log)}")
        time.sleep(0.1)


def _tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def children_of(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc)."""
    found: list[int] = []
    for task in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            found += [int(p) for p in Path(task).read_text().split()]
        except OSError:
            pass
    return found


_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used by a process and its descendants, the exited ones included (Linux /proc)."""
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of stat(5), after pid and comm.
        total += sum(int(v) for v in fields[11:15]) / _TICKS
        todo += children_of(pid)
    return total


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Postgres:
    """A throwaway PostgreSQL cluster; as root it runs as the `postgres` user."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "server.log"
        self.port = free_port()
        self.bin = _pg_bin()
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root.
            self.run_as = ["runuser", "-u", "postgres", "--"]

    def url(self, role: str = "postgres", database: str = "reckon") -> str:
        return f"postgres://{role}@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
                              capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)} failed:\n{done.stdout}{done.stderr}\n{_tail(self.log)}")
        return done

    def start(self) -> Postgres:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            shutil.chown(self.folder, "postgres")
        done = subprocess.run([*self.run_as, str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                               "--auth=trust", "-E", "UTF8"], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}{done.stderr}")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c max_connections=200 "
                   "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.max=10000 "
                   "-c shared_buffers=256MB")
        self._pg_ctl("-l", str(self.log), "-w", "-o", options, "start")
        with psycopg.connect(self.url(database="postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE reckon")
            for role in ROLES:
                # Superusers so that each process kind can do what the shop does;
                # separate roles only so pg_stat_statements can tell them apart.
                conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER")
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        return self

    def restart_immediate(self) -> float:
        """`pg_ctl restart -m immediate`: every backend dies at once, as in a crash; returns the seconds it took."""
        start = time.monotonic()
        self._pg_ctl("-m", "immediate", "-w", "restart", "-l", str(self.log))
        return time.monotonic() - start

    def stop(self) -> None:
        if not (self.data / "postmaster.pid").exists():
            return
        done = self._pg_ctl("-m", "fast", "-w", "stop", check=False)
        if done.returncode != 0 and (self.data / "postmaster.pid").exists():
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)


class ManagedProcess:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, cmd: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name = name
        self.cmd = cmd
        self.env = dict(env)
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> ManagedProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # Our own process group only: leftovers of this process (workers) go too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None


@dataclass
class StackConfig:
    web_workers: int = 4
    q_workers: int = 2
    env: dict[str, str] = field(default_factory=dict)  # extra settings for every shop process
    baseline: bool = False


class Stack:
    """PostgreSQL + PSP simulator + gunicorn + qcluster, all on 127.0.0.1."""

    def __init__(self, config: StackConfig, folder: Path | None = None) -> None:
        self.config = config
        self.folder = folder or Path(tempfile.mkdtemp(prefix="reckon-chaos."))
        self.folder.chmod(0o755)  # the postgres user must reach its data folder inside
        self.pg = Postgres(self.folder / "pg")
        self.web_port = free_port()
        self.psp: SimulatorProcess | None = None
        self.web: ManagedProcess | None = None
        self.worker: ManagedProcess | None = None
        self._secret = secrets.token_urlsafe(40)

    @property
    def shop_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def psp_url(self) -> str:
        assert self.psp is not None
        return self.psp.url

    def env(self, role: str) -> dict[str, str]:
        """The environment of a shop process connecting as `role`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PSP_SIM", "Q_", "DJANGO_"))}
        env.update({
            "DEBUG": "0",
            "SECRET_KEY": self._secret,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": self.pg.url(role),
            "RECKON_VAR_DIR": str(self.folder / "var"),
            "SHOP_BASE_URL": self.shop_url,
            "PSP_SIMULATOR_URL": self.psp_url,
            "PSP_SIMULATOR_PUBLIC_URL": self.psp_url,
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            # Every simulated customer comes from 127.0.0.1: the per-client limits would stop the load.
            "RATELIMIT_ENABLE": "0",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.config.env)
        if self.config.baseline:
            env["BENCH_BASELINE"] = "1"
        return env

    def manage(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """Run `manage.py <args>` against the stack's database, as an operator would."""
        done = subprocess.run([PYTHON, "manage.py", *args], cwd=REPO_ROOT, env=self.env("reckon_ops"),
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def has_command(self, name: str) -> bool:
        return any(Path(p).exists() for p in glob.glob(str(REPO_ROOT / f"*/management/commands/{name}.py")))

    def start(self) -> Stack:
        (self.folder / "var").mkdir(parents=True, exist_ok=True)
        self.pg.start()
        self.psp = SimulatorProcess(self.folder / "psp.sqlite3", self.folder / "psp.log",
                                    webhook_url=f"{self.shop_url}/payments/webhooks/simulator/").start()
        self.manage("migrate", "--noinput", "-v0", timeout=300)
        self.manage("seed_demo")
        with self.connect() as conn:
            # Enough stock that no checkout of the run is refused for stock.
            conn.execute("UPDATE shop_product SET stock = 10000000 WHERE is_active")
            conn.execute(f"CREATE TABLE {BASELINE_TABLE} (id bigserial PRIMARY KEY, "
                         "created_at timestamptz NOT NULL DEFAULT now())")
        if self.has_command("setup_schedules"):
            self.manage("setup_schedules")
        self.web = ManagedProcess("gunicorn", [
            # The production layout (README "Deploying"): config.asgi under gunicorn with uvicorn workers.
            GUNICORN, "config.asgi:application", "-k", "uvicorn_worker.UvicornWorker",
            "--workers", str(self.config.web_workers), "--bind", f"127.0.0.1:{self.web_port}",
            "--no-control-socket", "--timeout", "60", "--graceful-timeout", "5", "--backlog", "256",
        ], self.env("reckon_web"), self.folder / "gunicorn.log").start()
        env = self.env("reckon_worker")
        env["Q_WORKERS"] = str(self.config.q_workers)
        self.worker = ManagedProcess("qcluster", [PYTHON, "manage.py", "qcluster"], env,
                                     self.folder / "qcluster.log").start()
        _wait_http(f"{self.shop_url}/", 60, self.web.proc, self.web.log)
        self._wait_for_q_workers(60)
        return self

    def connect(self) -> psycopg.Connection:
        """A connection for the harness itself (as postgres: not counted as shop or worker queries)."""
        return psycopg.connect(self.pg.url(), autocommit=True)

    # -- processes the faults act on --------------------------------------------
    def web_workers(self) -> list[int]:
        assert self.web is not None
        return [pid for pid in children_of(self.web.pid) if _alive(pid)]

    def q_workers(self) -> list[int]:
        """The django-q2 worker processes: from the cluster's own "ready for work at <pid>" log lines."""
        assert self.worker is not None
        ready = [int(p) for p in re.findall(r"ready for work at (\d+)", self.worker.log.read_text(errors="replace"))]
        tree = set(children_of(self.worker.pid))
        tree |= {child for pid in list(tree) for child in children_of(pid)}
        return [pid for pid in ready if pid in tree and _alive(pid)]

    def _wait_for_q_workers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.q_workers()) < self.config.q_workers:
            assert self.worker is not None
            if not self.worker.running() or time.monotonic() > deadline:
                raise RuntimeError(f"the django-q2 cluster did not start:\n{_tail(self.worker.log)}")
            time.sleep(0.2)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each part of the stack, and by this process (the customers)."""
        assert self.web is not None and self.worker is not None and self.psp is not None
        postmaster = int((self.pg.data / "postmaster.pid").read_text().split()[0])
        own = os.times()
        return {"web": tree_cpu_seconds(self.web.pid), "worker": tree_cpu_seconds(self.worker.pid),
                "postgres": tree_cpu_seconds(postmaster), "psp": tree_cpu_seconds(self.psp.proc.pid),
                "customers": own.user + own.system}

    def stop(self) -> None:
        """Stop everything that was started, in reverse order; never raises."""
        for step in (lambda: self.worker and self.worker.stop(), lambda: self.web and self.web.stop(),
                     lambda: self.psp and self.psp.stop(), self.pg.stop):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"warning: could not stop a process cleanly: {exc}", file=sys.stderr)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
