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
import socket
import subprocess
import sys
import tempfile
import threading
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

    def kill(self) -> None:
        """kill -9 the whole process group (a crash of the node), and reap it."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass

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



def _wait_port(port: int, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s.\n"
                                   f"{_tail(log)}") from None
            time.sleep(0.05)


def _installed(binary: str, package: str) -> str:
    """The path of a Debian program, installed with apt-get when missing (as scripts/test does)."""
    found = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.access(f"/usr/sbin/{binary}", os.X_OK) else "")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        print(f"==> installing {package} with apt-get", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]):
            subprocess.run(cmd, env=env, capture_output=True, timeout=600)
        found = shutil.which(binary) or (f"/usr/sbin/{binary}" if os.access(f"/usr/sbin/{binary}", os.X_OK) else "")
        if found:
            return found
    raise RuntimeError(f"{binary} is not installed: `apt-get install {package}` (scripts/test does it).")


class RedisServer:
    """Debian's redis-server on 127.0.0.1, without persistence: a restart loses what it held, the worst case."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = _installed("redis-server", "redis-server")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess("redis", [binary, "--bind", "127.0.0.1", "--port", str(self.port),
                                                "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
                                      {}, self.folder / "redis.log").start()
        _wait_port(self.port, 15, "redis-server", self.process.log)
        return self

    def restart(self) -> float:
        """kill -9 and start again on the same port; returns the seconds it was away."""
        assert self.process is not None
        start = time.monotonic()
        self.process.kill()
        self.process.start()
        _wait_port(self.port, 15, "redis-server", self.process.log)
        return time.monotonic() - start

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class Nginx:
    """Debian's nginx as the load balancer over the web nodes (reverse proxy, round robin).

    Open-source nginx has no active health check, so `Stack` plays the
    checker: it asks each node's /readyz every second and marks the nodes
    that fail `down` in the upstream, with a reload (SIGHUP). Between two
    checks nginx's passive checks apply: a node that refuses a connection is
    skipped for 2 s, and a request that never reached a node is passed to the
    next one (a POST that reached a node is never sent twice).
    """

    def __init__(self, folder: Path, backends: list[int]) -> None:
        self.folder = folder
        self.port = free_port()
        self.backends = backends
        self.up = {port: True for port in backends}
        self.conf = folder / "nginx.conf"
        self.process: ManagedProcess | None = None
        self.reloads = 0

    def _write(self) -> None:
        servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=2s{'' if up else ' down'};"
                            for port, up in self.up.items())
        tmp = self.folder / "tmp"
        self.conf.write_text(f"""# Written by bench/stack.py; the README's Deploying section has the production version.
worker_processes 1;
pid {self.folder}/nginx.pid;
error_log {self.folder}/error.log warn;
events {{ worker_connections 2048; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    upstream shop {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{self.port};
        client_max_body_size 1m;
        location / {{
            proxy_pass http://shop;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_connect_timeout 1s;
            proxy_read_timeout 60s;
            proxy_next_upstream error timeout http_502;
            proxy_next_upstream_tries 2;
        }}
    }}
}}
""")

    def start(self) -> Nginx:
        binary = _installed("nginx", "nginx")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.folder / "tmp" / sub).mkdir(parents=True, exist_ok=True)
        self._write()
        # -e: the early error log, before the config is read (else /var/log/nginx, which may not exist).
        self.process = ManagedProcess("nginx", [binary, "-p", str(self.folder), "-c", str(self.conf), "-e",
                                                str(self.folder / "error.log"), "-g", "daemon off;"],
                                      {}, self.folder / "nginx.log").start()
        _wait_port(self.port, 15, "nginx", self.folder / "error.log")
        return self

    def set_up(self, up: dict[int, bool]) -> None:
        """Mark nodes up or down and reload; if none is up, all stay in (fail open, as cloud balancers do)."""
        if not any(up.values()):
            up = {port: True for port in up}
        if up == self.up:
            return
        self.up = dict(up)
        self._write()
        assert self.process is not None and self.process.proc is not None
        self.process.proc.send_signal(signal.SIGHUP)
        self.reloads += 1

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=5)


class Node:
    """One web node (a gunicorn master and its workers) or worker node (a qcluster), as a supervisor runs it.

    A node that dies is restarted by the stack's supervisor like systemd
    would (Restart=always, KillMode=control-group): what is left of its
    process group is killed, and it starts again after `RESTART_DELAY`.
    """

    RESTART_DELAY = 1.0

    def __init__(self, name: str, process: ManagedProcess, port: int | None = None) -> None:
        self.name = name
        self.process = process
        self.port = port
        self.restarts = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def ready_pids(self) -> list[int]:
        """A qcluster node's worker processes: its "ready for work at <pid>" log lines, alive in its tree."""
        ready = [int(p) for p in re.findall(r"ready for work at (\d+)", self.process.log.read_text(errors="replace"))]
        tree = set(children_of(self.process.pid))
        tree |= {child for pid in list(tree) for child in children_of(pid)}
        return [pid for pid in ready if pid in tree and _alive(pid)]


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class StackConfig:
    web_workers: int = 4  # per web node
    q_workers: int = 2  # per worker node
    env: dict[str, str] = field(default_factory=dict)  # extra settings for every shop process
    baseline: bool = False
    web_nodes: int = 1
    worker_nodes: int = 1
    redis: bool = False  # a redis-server, and REDIS_URL for every shop process
    nginx: bool = False  # nginx over the web nodes; the shop's address is nginx's
    # "asgi": production's layout (HTTP and WebSocket); "wsgi": gunicorn's threaded sync workers, HTTP only,
    # to measure what the ASGI server costs (bench/README.md, "Where the web server's CPU goes").
    web_server: str = "asgi"


class Stack:
    """PostgreSQL + PSP simulator + web node(s) + worker node(s), optionally Redis and nginx, on 127.0.0.1."""

    def __init__(self, config: StackConfig, folder: Path | None = None) -> None:
        self.config = config
        self.folder = folder or Path(tempfile.mkdtemp(prefix="reckon-chaos."))
        self.folder.chmod(0o755)  # the postgres user must reach its data folder inside
        self.pg = Postgres(self.folder / "pg")
        self.web_ports = [free_port() for _ in range(config.web_nodes)]
        self.redis = RedisServer(self.folder / "redis") if config.redis else None
        self.nginx = Nginx(self.folder / "nginx", self.web_ports) if config.nginx else None
        self.psp: SimulatorProcess | None = None
        self.webs: list[Node] = []
        self.workers: list[Node] = []
        self._secret = secrets.token_urlsafe(40)
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self.supervisor_log: list[str] = []

    @property
    def shop_url(self) -> str:
        return f"http://127.0.0.1:{self.nginx.port if self.nginx else self.web_ports[0]}"

    @property
    def psp_url(self) -> str:
        assert self.psp is not None
        return self.psp.url

    def env(self, role: str) -> dict[str, str]:
        """The environment of a shop process connecting as `role`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PSP_SIM", "Q_", "DJANGO_", "REDIS_URL"))}
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
        if self.redis is not None:
            env["REDIS_URL"] = self.redis.url
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
        if self.redis is not None:
            self.redis.start()
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
        for n, port in enumerate(self.web_ports, 1):
            suffix = f"-{n}" if self.config.web_nodes > 1 else ""
            # The production layout (README "Deploying"): config.asgi under gunicorn with uvicorn workers.
            app = (["config.wsgi:application", "-k", "gthread", "--threads", "4"] if self.config.web_server == "wsgi"
                   else ["config.asgi:application", "-k", "uvicorn_worker.UvicornWorker"])
            self.webs.append(Node(f"web{suffix}", ManagedProcess("gunicorn", [
                GUNICORN, *app, "--workers", str(self.config.web_workers), "--bind", f"127.0.0.1:{port}",
                "--no-control-socket", "--timeout", "60", "--graceful-timeout", "5", "--backlog", "256",
            ], self.env("reckon_web"), self.folder / f"gunicorn{suffix}.log").start(), port))
        env = self.env("reckon_worker")
        env["Q_WORKERS"] = str(self.config.q_workers)
        for n in range(1, self.config.worker_nodes + 1):
            suffix = f"-{n}" if self.config.worker_nodes > 1 else ""
            self.workers.append(Node(f"worker{suffix}", ManagedProcess(
                "qcluster", [PYTHON, "manage.py", "qcluster"], env, self.folder / f"qcluster{suffix}.log").start()))
        for node in self.webs:
            _wait_http(f"http://127.0.0.1:{node.port}/", 60, node.process.proc, node.process.log)
        for node in self.workers:
            self.wait_for_worker_node(node, 60)
        if self.nginx is not None:
            self.nginx.start()
            _wait_http(f"{self.shop_url}/readyz", 30, self.nginx.process.proc, self.nginx.folder / "error.log")
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._supervisor.start()
        return self

    def connect(self) -> psycopg.Connection:
        """A connection for the harness itself (as postgres: not counted as shop or worker queries)."""
        return psycopg.connect(self.pg.url(), autocommit=True)

    # -- the supervisor and the health checker ------------------------------------
    def _supervise(self) -> None:
        """Restart a node that died (systemd's job); mark web nodes that fail /readyz down in nginx (its checker)."""
        last_check = 0.0
        while not self._stopping.wait(0.2):
            for node in self.webs + self.workers:
                if not node.process.running() and not self._stopping.is_set():
                    node.process.kill()  # what is left of its process group
                    time.sleep(Node.RESTART_DELAY)
                    if self._stopping.is_set():
                        return
                    node.process.start()
                    node.restarts += 1
                    self.supervisor_log.append(f"{time.strftime('%H:%M:%S')} restarted {node.name}")
            if self.nginx is not None and time.monotonic() - last_check >= 1.0:
                last_check = time.monotonic()
                try:
                    self.nginx.set_up({node.port: _ready(node.port) for node in self.webs})
                except Exception as exc:  # noqa: BLE001 - the checker keeps checking
                    self.supervisor_log.append(f"health check failed: {exc}")

    def wait_for_worker_node(self, node: Node, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(node.ready_pids()) < self.config.q_workers:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the django-q2 cluster {node.name} did not start:\n{_tail(node.process.log)}")
            time.sleep(0.2)

    def wait_for_web_node(self, node: Node, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not _ready(node.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"web node {node.name} is not ready:\n{_tail(node.process.log)}")
            time.sleep(0.2)

    # -- processes the faults act on --------------------------------------------
    def web_workers(self, node: Node | None = None) -> list[int]:
        return [pid for web in ([node] if node else self.webs) if web.process.running()
                for pid in children_of(web.pid) if _alive(pid)]

    def q_workers(self) -> list[int]:
        """The django-q2 worker processes of every worker node."""
        return [pid for node in self.workers if node.process.running() for pid in node.ready_pids()]

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each part of the stack, and by this process (the customers)."""
        assert self.psp is not None
        postmaster = int((self.pg.data / "postmaster.pid").read_text().split()[0])
        own = os.times()
        cpu = {"web": sum(tree_cpu_seconds(node.pid) for node in self.webs),
               "worker": sum(tree_cpu_seconds(node.pid) for node in self.workers),
               "postgres": tree_cpu_seconds(postmaster), "psp": tree_cpu_seconds(self.psp.proc.pid)}
        if self.nginx is not None:
            cpu["nginx"] = tree_cpu_seconds(self.nginx.process.pid)
        if self.redis is not None:
            cpu["redis"] = tree_cpu_seconds(self.redis.process.pid)
        cpu["customers"] = own.user + own.system
        return cpu

    def stop(self) -> None:
        """Stop everything that was started, in reverse order; never raises."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=10)
        steps = [node.process.stop for node in self.workers] + [node.process.stop for node in self.webs]
        steps += [lambda: self.nginx and self.nginx.stop(), lambda: self.psp and self.psp.stop(),
                  lambda: self.redis and self.redis.stop(), self.pg.stop]
        for step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                print(f"warning: could not stop a process cleanly: {exc}", file=sys.stderr)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
