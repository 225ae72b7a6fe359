"""A killed django-q2 worker must not stop the rest of the cluster (found by bench/chaos.py).

Each case kills a process while it holds one of the cluster's shared locks,
then checks that another process still gets through. The control cases run
the same scenario on django-q2's own objects, where it stalls.
"""

import multiprocessing
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from queue import Full

import pytest
from django_q.queues import Queue

from config.qcluster_safety import (
    DeathSafeEvent,
    DeathSafeQueue,
    ProcessDeathSafeLock,
    SlotSemaphore,
    death_safe_value,
)

fork = multiprocessing.get_context("fork")
linux_only = pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux /proc")


def _wait_for_a_task(queue) -> None:
    queue.get()  # holds the queue's reader lock while it waits, as a django-q2 worker does


def _take_a_task(queue, answer) -> None:
    try:
        answer.send(queue.get(timeout=1.5))
    except Exception as exc:  # noqa: BLE001 - reported to the test
        answer.send(f"no task: {type(exc).__name__}")


def _hold(lock, ready) -> None:
    lock.acquire()
    ready.set()
    time.sleep(60)


def _waiting_on_a_pipe(pid: int) -> bool:
    """Blocked reading the task queue (a pipe, or a socket with the safe queue)."""
    try:
        wchan = Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return False
    return "pipe_read" in wchan or "wait_for_more_packets" in wchan


def _killed_while_holding(lock) -> None:
    ready = fork.Event()
    holder = fork.Process(target=_hold, args=(lock, ready))
    holder.start()
    assert ready.wait(5)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(5)


def _in_another_process(work, seconds: float = 1.5) -> str:
    """Run work() in a child; "stalled" when it does not finish in time."""
    mine, theirs = fork.Pipe(duplex=False)
    child = fork.Process(target=lambda: theirs.send(work()))
    child.start()
    got = mine.recv() if mine.poll(seconds) else "stalled"
    child.kill()
    child.join(5)
    return got


def _next_in_line_worker_dies_then_another_takes_a_task(queue) -> object:
    first = fork.Process(target=_wait_for_a_task, args=(queue,))
    first.start()
    deadline = time.monotonic() + 5
    while not _waiting_on_a_pipe(first.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.join(5)
    queue.put("charge payment 42")
    mine, theirs = fork.Pipe(duplex=False)
    second = fork.Process(target=_take_a_task, args=(queue, theirs))
    second.start()
    got = mine.recv() if mine.poll(10) else "no answer"
    second.join(5)
    return got


@linux_only
def test_a_killed_waiting_worker_no_longer_blocks_the_others():
    assert _next_in_line_worker_dies_then_another_takes_a_task(DeathSafeQueue()) == "charge payment 42"


@linux_only
def test_control_django_q2s_own_queue_stalls_in_the_same_case():
    assert _next_in_line_worker_dies_then_another_takes_a_task(Queue()) == "no task: Empty"


def _put_and_count(queue) -> str:
    queue.put("sync due payments")
    return f"queued {queue.qsize()}"


@pytest.mark.parametrize(("queue_class", "expected"), [(DeathSafeQueue, "queued 1"), (Queue, "stalled")])
def test_a_process_killed_while_counting_a_queue_does_not_block_the_pusher(queue_class, expected):
    queue = queue_class()
    _killed_while_holding(queue.size.count.get_lock())  # as in get()'s size.increment(-1)
    assert _in_another_process(lambda: _put_and_count(queue)) == expected


def _guard_reads(timer) -> str:
    with timer.get_lock():  # django-q2's guard loop, every pass, for every worker
        return f"timer {timer.value}"


@pytest.mark.parametrize(("make_timer", "expected"), [(death_safe_value, "timer -1.0"), (fork.Value, "stalled")])
def test_a_worker_killed_while_handing_in_a_result_does_not_block_the_sentinel(make_timer, expected):
    timer = make_timer("f", -1)
    _killed_while_holding(timer.get_lock())  # the worker holds it while it puts its result
    assert _in_another_process(lambda: _guard_reads(timer)) == expected


def test_the_lock_is_reentrant_and_exclusive_between_processes():
    lock = ProcessDeathSafeLock()
    with lock, lock:  # django-q2 reads a timer's value while holding its lock
        assert _in_another_process(lambda: lock.acquire(timeout=0.2)) is False
    assert _in_another_process(lambda: lock.acquire(timeout=0.2)) is True


def test_the_cluster_builds_its_queues_and_worker_timers_with_these_locks():
    import django_q.cluster

    assert django_q.cluster.Queue is DeathSafeQueue and django_q.cluster.Value is death_safe_value
    assert django_q.cluster.Event is DeathSafeEvent


def _wait_on(event) -> None:
    event.wait(60)  # the sentinel's guard loop, between its rounds


def _set_after_the_waiter_died(event) -> str:
    waiter = fork.Process(target=_wait_on, args=(event,))
    waiter.start()
    time.sleep(0.3)  # in wait() by now
    os.kill(waiter.pid, signal.SIGKILL)  # as a SIGTERM to the process group kills the sentinel
    waiter.join(5)

    def set_it():
        event.set()
        return "set"
    return _in_another_process(set_it)


@pytest.mark.parametrize(("make_event", "expected"), [(DeathSafeEvent, "set"), (fork.Event, "stalled")])
def test_a_waiter_killed_in_wait_does_not_block_set(make_event, expected):
    assert _set_after_the_waiter_died(make_event()) == expected


def test_the_safe_event_wakes_its_waiter_and_times_out_unset():
    event = DeathSafeEvent()
    assert event.wait(0.1) is False and not event.is_set()
    mine, theirs = fork.Pipe(duplex=False)
    waiter = fork.Process(target=lambda: theirs.send(event.wait(30)))
    waiter.start()
    event.set()
    assert mine.poll(10) and mine.recv() is True
    waiter.join(5)
    event.clear()
    assert not event.is_set()


ROOT = Path(__file__).resolve().parent.parent


def _cluster_env(tmp_path: Path, redis_url: str = "") -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in {"DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE", "REDIS_URL", "Q_SYNC"}}
    env.update(DEBUG="1", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", Q_WORKERS="2")
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def _start_qcluster(tmp_path: Path, redis_url: str = "") -> subprocess.Popen:
    env = _cluster_env(tmp_path, redis_url)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env,
                   check=True, timeout=120)
    log = (tmp_path / "qcluster.log").open("w")
    return subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def _kill_group(cluster: subprocess.Popen) -> None:
    try:
        os.killpg(cluster.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    cluster.wait(5)


def _wait_running(cluster: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while "running." not in log.read_text() and time.monotonic() < deadline:
        assert cluster.poll() is None, log.read_text()
        time.sleep(0.1)
    assert "running." in log.read_text()


def _django(tmp_path: Path, redis_url: str, code: str) -> str:
    return subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT,
                          env=_cluster_env(tmp_path, redis_url), check=True, timeout=60, capture_output=True,
                          text=True).stdout.strip().splitlines()[-1]  # after shell's "N objects imported"


def _live_worker_pids(log: Path) -> list[int]:
    """The pool's workers as the cluster logs them ("ready for work at PID"), those still alive."""
    pids = [int(pid) for pid in re.findall(r"ready for work at (\d+)", log.read_text())]
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@linux_only
def test_qcluster_stops_when_its_whole_process_group_gets_sigterm(tmp_path):
    """honcho (scripts/run) and systemd signal every process of the worker, not only the main one."""
    cluster = _start_qcluster(tmp_path)
    log = tmp_path / "qcluster.log"
    try:
        _wait_running(cluster, log)
        os.killpg(cluster.pid, signal.SIGTERM)
        try:
            cluster.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail("qcluster did not stop after SIGTERM to its process group:\n" + log.read_text())
        # Whether the sentinel died of the signal or stopped its pool in order, nothing of the cluster is left.
        deadline = time.monotonic() + 10
        while _group_alive(cluster.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_alive(cluster.pid), "qcluster's children outlived it"
    finally:
        _kill_group(cluster)


def test_the_safe_queue_still_passes_tasks_between_processes():
    queue = DeathSafeQueue()
    for n in range(3):
        queue.put(n)
    mine, theirs = fork.Pipe(duplex=False)
    readers = [fork.Process(target=_take_a_task, args=(queue, theirs)) for _ in range(3)]
    for reader in readers:
        reader.start()
    got = sorted(mine.recv() for _ in range(3))
    for reader in readers:
        reader.join(5)
    assert got == [0, 1, 2] and queue.empty()


def _read_a_length_then_die(queue) -> None:
    queue._reader._recv(4)  # a pipe reader killed between a message's length and its body
    os._exit(0)


def _peek_then_die(queue) -> None:
    queue._reader._sock.recv_into(bytearray(1), 1, socket.MSG_PEEK | socket.MSG_TRUNC)  # as far as a record read gets
    os._exit(0)


def _next_message_after_a_torn_read(queue, tear) -> str:
    queue.put({"task": "charge payment 42"})
    time.sleep(0.2)  # let the feeder thread send it
    torn = fork.Process(target=tear, args=(queue,))
    torn.start()
    torn.join(5)
    queue.put({"task": "sync due payments"})
    return _in_another_process(lambda: repr(queue.get(timeout=1)))


def test_a_reader_killed_mid_message_leaves_whole_messages_for_the_next():
    assert _next_message_after_a_torn_read(DeathSafeQueue(), _peek_then_die) == "{'task': 'charge payment 42'}"


def test_control_with_django_q2s_pipe_the_next_reader_gets_garbage():
    got = _next_message_after_a_torn_read(Queue(), _read_a_length_then_die)
    assert got not in ("{'task': 'charge payment 42'}", "{'task': 'sync due payments'}")


def _take_without_giving_the_slot_back(queue) -> None:
    for _ in range(2):
        queue._reader.recv_bytes()  # a worker killed after taking a task, before releasing its slot
    os._exit(0)


@pytest.mark.parametrize(("queue_class", "expected"), [(DeathSafeQueue, "put"), (Queue, "Full")])
def test_queue_slots_lost_with_killed_workers_are_taken_back(queue_class, expected, monkeypatch):
    monkeypatch.setattr(SlotSemaphore, "CHECK_EVERY", 0.05)
    monkeypatch.setattr(SlotSemaphore, "HEAL_AFTER", 0.3)
    queue = queue_class(maxsize=2)  # django-q2 bounds its task queue to workers² slots
    queue.put("a")
    queue.put("b")
    taker = fork.Process(target=_take_without_giving_the_slot_back, args=(queue,))
    taker.start()
    taker.join(5)
    try:
        queue.put("c", timeout=1)
    except Full:
        return_value = "Full"
    else:
        return_value = "put"
    assert return_value == expected


def _reader_loop(queue, garbage) -> None:
    while True:
        try:
            queue.get()
        except Exception:  # noqa: BLE001 - a torn message
            with garbage.get_lock():
                garbage.value += 1


def _pusher_loop(queue, sent) -> None:
    while True:
        queue.put({"task": "x" * 300})
        sent.value += 1


def test_a_storm_of_killed_readers_neither_garbles_nor_stops_the_queue(monkeypatch):
    monkeypatch.setattr(SlotSemaphore, "CHECK_EVERY", 0.05)
    monkeypatch.setattr(SlotSemaphore, "HEAL_AFTER", 0.3)
    queue = DeathSafeQueue(maxsize=4)
    garbage, sent = fork.Value("i", 0), fork.Value("i", 0, lock=False)
    pusher = fork.Process(target=_pusher_loop, args=(queue, sent), daemon=True)
    pusher.start()
    readers = [fork.Process(target=_reader_loop, args=(queue, garbage), daemon=True) for _ in range(2)]
    for reader in readers:
        reader.start()
    rng = random.Random(7)
    try:
        for _ in range(100):  # kill -9 a reader every few milliseconds, wherever it is
            time.sleep(rng.uniform(0.002, 0.02))
            i = rng.randrange(2)
            os.kill(readers[i].pid, signal.SIGKILL)
            readers[i].join(5)
            readers[i] = fork.Process(target=_reader_loop, args=(queue, garbage), daemon=True)
            readers[i].start()
        before = sent.value
        time.sleep(1.5)
        assert garbage.value == 0
        assert sent.value > before + 100, "the pusher stopped"
    finally:
        for process in (pusher, *readers):
            process.kill()
            process.join(5)


@pytest.fixture(params=["orm", "redis"])
def broker(request, tmp_path):
    """The broker's REDIS_URL: empty for django-q2's ORM broker (the default), a throwaway Redis otherwise."""
    return request.getfixturevalue("redis_url") if request.param == "redis" else ""


@pytest.mark.slow
@linux_only
def test_on_either_broker_the_cluster_keeps_working_after_workers_are_killed(tmp_path, broker):
    """kill -9 of workers, as the chaos run does: the others go on taking tasks, the sentinel replaces the dead."""
    cluster = _start_qcluster(tmp_path, broker)
    log = tmp_path / "qcluster.log"
    enqueue = ("from django_q.tasks import async_task\n"
               "for n in range({n}): async_task('math.factorial', n, task_name='t{tag}-%d' % n)")
    done = "from django_q.models import Success; print(Success.objects.filter(name__startswith='t{tag}-').count())"
    try:
        _wait_running(cluster, log)
        if broker:
            assert "Redis" in _django(tmp_path, broker, "from django_q.brokers import get_broker; "
                                                        "print(get_broker().info())")
        for round_ in range(2):
            killed = random.sample(_live_worker_pids(log), 2)
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
            _django(tmp_path, broker, enqueue.format(n=40, tag=round_))
            deadline = time.monotonic() + 60
            while (count := int(_django(tmp_path, broker, done.format(tag=round_)))) < 40:
                assert time.monotonic() < deadline, f"{count}/40 tasks done after the kill:\n{log.read_text()}"
                time.sleep(0.5)
            assert not set(killed) & set(_live_worker_pids(log))
        assert cluster.poll() is None
        assert log.read_text().count("reincarnated worker") >= 4
    finally:
        _kill_group(cluster)
