"""Keep the django-q2 cluster working when one of its workers is killed (kill -9, the OOM killer).

The cluster's processes talk through multiprocessing queues (one pipe shared by
all workers for tasks, one for results) guarded by POSIX semaphores. A worker
killed at the wrong moment stops the whole cluster, and nobody notices until
payments pile up: no card charge runs and no sweep settles anything until the
worker is restarted by hand. The chaos run (bench/chaos.py) found four ways:

1. the task queue's reader lock is held by the next worker in line while it
   waits for a task; killed there, the lock is never released and every
   other worker waits on it forever (django-q2 issue #23, open in 1.11);
2. each queue's size counter and each worker's timer are locked the same
   way, by the workers, the pusher and the sentinel's guard loop;
3. a worker killed between reading a message's length and its body leaves
   the rest of the message in the shared pipe, and every later read is
   garbage;
4. the task queue is bounded (workers² slots): a worker killed after taking a
   task but before giving its slot back keeps the slot forever, and once all
   are gone the pusher waits forever.

And one way to never stop: the cluster's stop and start events are
multiprocessing Events, whose set() waits for every process that waits on the
event to wake up. A SIGTERM sent to the whole process group (honcho stopping
`scripts/run`, systemd stopping a service) kills the sentinel, which waits on
the stop event in its guard loop, and the main process's set() then waits for
it forever: `qcluster` hangs in "stopping" until it is killed (5).

So, for the cluster's queues and timers: locks are flock(2) locks, which the
kernel drops when their holder dies (1, 2); each message is one record of an
AF_UNIX SOCK_SEQPACKET socket pair, which a reader takes whole or not at all
(3); and a pusher that has waited for a slot while nothing at all was queued
takes the lost slot back (4); the events are a flag in shared memory, which
set() writes without waiting for anyone (5). A task that died with its worker
is handed out again by the broker after Q_CLUSTER["retry"], as before.
`install()` makes the cluster use these; payments.apps calls it at start-up.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import multiprocessing.synchronize
import os
import select
import socket
import tempfile
import threading
import time
import weakref

from django_q.queues import Queue

logger = logging.getLogger(__name__)


def _lock_file() -> tuple[int, str]:
    """An fd for the lock, and a path for processes that cannot reopen it through /proc."""
    if hasattr(os, "memfd_create"):  # Linux: an anonymous file, nothing left behind
        return os.memfd_create("django-q-lock"), ""
    fd, path = tempfile.mkstemp(prefix="django-q-", suffix=".lock")
    return fd, path


def _close(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class ProcessDeathSafeLock:
    """A re-entrant lock between forked processes (and their threads), released when its holder dies.

    Re-entrant like the RLock that multiprocessing.Value uses by default:
    django-q2 reads a timer's value while it holds the timer's lock.
    """

    def __init__(self) -> None:
        self._origin_fd, self._path = _lock_file()
        stat = os.fstat(self._origin_fd)
        self._identity = (stat.st_dev, stat.st_ino)
        self._pid: int | None = None
        self._fd = -1
        self._threads = threading.RLock()
        self._depth = 0
        # The sentinel makes a lock for every worker it spawns: close the fds with the lock.
        self._fds = [self._origin_fd]
        weakref.finalize(self, _close, self._fds)

    def __getstate__(self) -> dict:
        # Pickled only for the "spawn" start method; django-q2 forks where it can.
        return {"_origin_fd": -1, "_path": self._path, "_identity": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _pid=None, _fd=-1, _threads=threading.RLock(), _depth=0, _fds=[])

    def _own_fd(self) -> int:
        """This process's own open file description: flock excludes per description, not per file."""
        pid = os.getpid()
        if self._pid != pid:
            self._fd = self._reopen()
            self._fds.append(self._fd)
            self._threads = threading.RLock()  # a fork may have copied it in a held state
            self._depth = 0
            self._pid = pid
        return self._fd

    def _reopen(self) -> int:
        if self._origin_fd >= 0:
            try:
                fd = os.open(f"/proc/self/fd/{self._origin_fd}", os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                pass
            else:
                stat = os.fstat(fd)
                if (stat.st_dev, stat.st_ino) == self._identity:
                    return fd
                os.close(fd)
        if not self._path:
            raise RuntimeError("the django-q2 lock cannot be reopened in this process")
        return os.open(self._path, os.O_RDWR | os.O_CLOEXEC)

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        fd = self._own_fd()
        forever = block and (timeout is None or timeout < 0)
        deadline = None if forever else time.monotonic() + (max(0.0, timeout or 0.0) if block else 0.0)
        if forever:
            self._threads.acquire()
        elif not self._threads.acquire(True, max(0.0, deadline - time.monotonic())):
            return False
        if self._depth:  # this thread holds it already
            self._depth += 1
            return True
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX if forever else fcntl.LOCK_EX | fcntl.LOCK_NB)
                    self._depth = 1
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.005)
        except BaseException:
            self._threads.release()
            raise
        self._threads.release()
        return False

    def release(self) -> None:
        fd = self._own_fd()
        if self._depth <= 0:
            raise RuntimeError("release of an unacquired django-q2 lock")
        self._depth -= 1
        if not self._depth:
            fcntl.flock(fd, fcntl.LOCK_UN)
        self._threads.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


class DeathSafeCounter:
    """django-q2's SharedCounter (a queue's size), locked with a ProcessDeathSafeLock."""

    def __init__(self, n: int = 0) -> None:
        self.count = multiprocessing.Value("i", n, lock=ProcessDeathSafeLock())

    def increment(self, n: int = 1) -> None:
        with self.count.get_lock():
            self.count.value += n

    @property
    def value(self) -> int:
        return self.count.value


class RecordConnection:
    """One end of an AF_UNIX SOCK_SEQPACKET socket pair, in place of a queue's pipe end.

    Each message is one record: a reader takes a whole record or nothing, so a
    reader killed mid-read cannot leave half a message for the next one.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._probe = bytearray(1)

    @classmethod
    def pair(cls) -> tuple[RecordConnection, RecordConnection]:
        reader, writer = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Room for one large message (a result with a long traceback); the kernel caps it at wmem_max.
        writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
        return cls(reader), cls(writer)

    def send_bytes(self, buf) -> None:
        self._sock.sendall(buf)  # SOCK_SEQPACKET: one record, sent whole or not at all

    def recv_bytes(self, maxlength: int | None = None) -> bytes:
        # Peek at the next record's length (MSG_TRUNC makes Linux return it whole), then take it.
        # The queue's reader lock keeps another reader from taking it in between.
        size = self._sock.recv_into(self._probe, 1, socket.MSG_PEEK | socket.MSG_TRUNC)
        if size == 0:
            raise EOFError
        return self._sock.recv(size)

    def poll(self, timeout: float | None = 0.0) -> bool:
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        return bool(poller.poll(None if timeout is None else max(0.0, timeout) * 1000))

    def close(self) -> None:
        self._sock.close()


class SlotSemaphore:
    """A bounded queue's free slots; a slot kept by a reader that died is taken back.

    A live reader gives its slot back microseconds after taking a message. So
    when the pusher has waited HEAL_AFTER seconds for a slot while nothing at
    all was queued, the missing slots died with their readers: it takes one.
    A plain Semaphore (not Bounded): if ever wrong, the bound loosens by one.
    """

    CHECK_EVERY = 0.5
    HEAL_AFTER = 5.0

    def __init__(self, slots: int, nothing_queued) -> None:
        self._sem = multiprocessing.get_context().Semaphore(slots)
        self._semlock = self._sem._semlock  # Queue.full() reads it
        self._nothing_queued = nothing_queued

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        if not block:
            return self._sem.acquire(False)
        deadline = None if timeout is None else time.monotonic() + timeout
        empty_for = 0.0
        while True:
            step = self.CHECK_EVERY if deadline is None else max(0.0, min(self.CHECK_EVERY,
                                                                         deadline - time.monotonic()))
            if self._sem.acquire(True, step):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            empty_for = empty_for + step if self._nothing_queued() else 0.0
            if empty_for >= self.HEAL_AFTER:
                logger.warning("a django-q2 queue slot was lost with a killed worker; taking it back")
                return True

    def release(self) -> None:
        self._sem.release()


class DeathSafeQueue(Queue):
    """django-q2's Queue that a killed reader or writer cannot jam (see the module docstring)."""

    def __init__(self, maxsize: int = 0, **kwargs) -> None:
        super().__init__(maxsize, **kwargs)
        self._rlock = ProcessDeathSafeLock()
        if self._wlock is not None:  # None on Windows
            self._wlock = ProcessDeathSafeLock()
        self.size = DeathSafeCounter(0)
        try:
            reader, writer = RecordConnection.pair()
        except (AttributeError, OSError):  # no SOCK_SEQPACKET for AF_UNIX here (macOS): keep the pipe
            pass
        else:
            self._reader.close()
            self._writer.close()
            self._reader, self._writer = reader, writer
            self._reset()
        if 0 < maxsize < multiprocessing.synchronize.SEM_VALUE_MAX:
            self._sem = SlotSemaphore(maxsize, self._nothing_queued)

    def _nothing_queued(self) -> bool:
        """Nothing waits in this process's send buffer nor in the socket (for the process that puts)."""
        return not self._buffer and not self._reader.poll(0)


class DeathSafeEvent:
    """multiprocessing.Event without its lock: a byte of shared memory, polled by wait().

    set() never waits for another process, so a waiter that died cannot block
    it; wait() notices a set() within POLL seconds (the guard loop waits up to
    half a second between its rounds anyway).
    """

    POLL = 0.05

    def __init__(self) -> None:
        self._flag = multiprocessing.RawValue("b", 0)

    def is_set(self) -> bool:
        return bool(self._flag.value)

    def set(self) -> None:
        self._flag.value = 1

    def clear(self) -> None:
        self._flag.value = 0

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while not self._flag.value:
            left = self.POLL if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(self.POLL, left))
        return True


def death_safe_value(typecode, *args):
    """multiprocessing.Value with a ProcessDeathSafeLock (django-q2's worker timers)."""
    return multiprocessing.Value(typecode, *args, lock=ProcessDeathSafeLock())


def install() -> None:
    """Make the django-q2 cluster (`manage.py qcluster`) build its queues and worker timers with these locks."""
    import django_q.cluster

    django_q.cluster.Queue = DeathSafeQueue
    django_q.cluster.Value = death_safe_value
    django_q.cluster.Event = DeathSafeEvent
