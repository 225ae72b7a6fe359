"""Process faults on a running stack: kill -9 a worker mid-task, crash-restart PostgreSQL, kill a web worker;
on the multi-node stack also kill -9 a whole worker node or a web node's master, and crash-restart Redis.

Each fault waits (bounded) for the worst moment it can see from /proc: a
django-q2 worker that is not idle (it is waiting on the PSP or the database,
or running), a gunicorn worker that holds an open client connection (a sync
worker has one only while it serves a request).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.stack import Stack

# Where an idle django-q2 worker sleeps: reading its task queue (a pipe, or a socket with
# config/qcluster_safety.py) or waiting for the queue's reader lock.
_WAITING_ON_THE_QUEUE = {"anon_pipe_read", "pipe_read", "__skb_wait_for_more_packets"}
_IDLE_WCHANS = _WAITING_ON_THE_QUEUE | {"futex_do_wait", "futex_wait_queue", "futex_wait_queue_me",
                                        "locks_lock_inode_wait", "flock_lock_inode_wait"}
_TCP_ESTABLISHED = "01"


def _wchan(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        return "gone"


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _client_connections_on(port: int) -> set[str]:
    """Socket inodes of ESTABLISHED connections whose local port is `port` (accepted clients)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            if local_port == port and cols[3] == _TCP_ESTABLISHED:
                inodes.add(cols[9])
    return inodes


@dataclass
class FaultLog:
    counts: Counter = field(default_factory=Counter)
    lines: list[str] = field(default_factory=list)

    def add(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        self.lines.append(f"{time.strftime('%H:%M:%S')} {kind}: {detail}")


class ProcessFaults:
    def __init__(self, stack: Stack, seed: int, log: FaultLog) -> None:
        self.stack = stack
        self.rng = random.Random(f"victims:{seed}")
        self.log = log
        self.q_kills = 0
        self.node_kills: Counter = Counter()

    def _next_node(self, kind: str, nodes: list):
        """Each node in turn, so that two kills of a kind hit both nodes."""
        self.node_kills[kind] += 1
        return nodes[(self.node_kills[kind] - 1) % len(nodes)]

    def run(self, kind: str) -> None:
        getattr(self, kind)()

    def kill_q_worker(self, wait: float = 5.0) -> None:
        """Alternately kill a worker that is mid-task and the one waiting on the task queue.

        The waiting one holds the queue's reader lock: killing it once stopped the whole cluster
        (config/qcluster_safety.py).
        """
        self.q_kills += 1
        want = "busy" if self.q_kills % 2 else "waiting"
        deadline = time.monotonic() + wait
        while True:
            workers = self.stack.q_workers()
            states = {pid: _wchan(pid) for pid in workers}
            if want == "busy":
                chosen = [pid for pid, state in states.items() if state not in _IDLE_WCHANS]
            else:
                chosen = [pid for pid, state in states.items() if state in _WAITING_ON_THE_QUEUE]
            if chosen or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not workers:
            self.log.add("kill_q_worker_skipped", "no django-q2 worker alive")
            return
        victim = self.rng.choice(sorted(chosen or workers))
        os.kill(victim, signal.SIGKILL)
        what = ("mid-task" if want == "busy" else "waiting on the task queue") if chosen else "any"
        self.log.add("kill_q_worker", f"pid {victim} ({what}: {states.get(victim, '?')})")

    def restart_postgres(self) -> None:
        seconds = self.stack.pg.restart_immediate()
        self.log.add("restart_postgres", f"pg_ctl restart -m immediate, back in {seconds:.1f} s")

    def kill_web_worker(self, wait: float = 5.0) -> None:
        deadline = time.monotonic() + wait
        while True:
            workers = self.stack.web_workers()
            serving = [pid for node in self.stack.webs for pid in self.stack.web_workers(node)
                       if _socket_inodes(pid) & _client_connections_on(node.port)]
            if serving or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        if not workers:
            self.log.add("kill_web_worker_skipped", "no gunicorn worker alive")
            return
        victim = self.rng.choice(sorted(serving or workers))
        os.kill(victim, signal.SIGKILL)
        self.log.add("kill_web_worker", f"pid {victim} ({'mid-request' if serving else 'idle'})")

    # -- the multi-node faults (bench/chaos.py --cluster) ----------------------------
    def kill_worker_node(self, back_within: float = 90.0) -> None:
        """kill -9 a whole worker node (sentinel, pusher, monitor, workers); the supervisor restarts it."""
        node = self._next_node("worker", self.stack.workers)
        busy = [pid for pid in node.ready_pids() if _wchan(pid) not in _IDLE_WCHANS]
        started = time.monotonic()
        os.killpg(node.pid, signal.SIGKILL)
        self._wait_until_restarted(node, node.restarts)
        self.stack.wait_for_worker_node(node, back_within)
        self.log.add("kill_worker_node", f"{node.name} ({len(busy)} worker(s) mid-task), "
                                         f"working again in {time.monotonic() - started:.1f} s")

    def kill_web_master(self, back_within: float = 90.0) -> None:
        """kill -9 a web node's gunicorn master; its workers go with it when the supervisor restarts the node."""
        node = self._next_node("web", self.stack.webs)
        serving = [pid for pid in self.stack.web_workers(node) if _socket_inodes(pid) & _client_connections_on(node.port)]
        started = time.monotonic()
        os.kill(node.pid, signal.SIGKILL)
        self._wait_until_restarted(node, node.restarts)
        self.stack.wait_for_web_node(node, back_within)
        self.log.add("kill_web_master", f"{node.name} ({len(serving)} request(s) in flight), "
                                        f"ready again in {time.monotonic() - started:.1f} s")

    def restart_redis(self) -> None:
        assert self.stack.redis is not None
        seconds = self.stack.redis.restart()
        self.log.add("restart_redis", f"kill -9 and start (no persistence: its queue and cache are lost), "
                                      f"back in {seconds:.1f} s")

    @staticmethod
    def _wait_until_restarted(node, restarts_before: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while node.restarts == restarts_before:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the supervisor did not restart {node.name}")
            time.sleep(0.05)
