"""SQLite persistence.

One connection shared by all threads and guarded by a re-entrant lock: every
read and write runs inside :meth:`Store.transaction`, so state changes are
serialised (the simulator's throughput needs are tiny) and multi-step
operations are atomic.  The database runs in WAL mode.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from .models import Event, Refund, Token, Transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (
    id                TEXT PRIMARY KEY,
    flow              TEXT NOT NULL,
    status            TEXT NOT NULL,
    amount            INTEGER NOT NULL,
    currency          TEXT NOT NULL,
    amount_captured   INTEGER NOT NULL DEFAULT 0,
    amount_refunded   INTEGER NOT NULL DEFAULT 0,
    merchant_reference TEXT NOT NULL,
    description       TEXT,
    metadata          TEXT NOT NULL DEFAULT '{}',
    capture_method    TEXT NOT NULL,
    failure_code      TEXT,
    failure_message   TEXT,
    redirect_url      TEXT,
    return_url        TEXT,
    card_brand        TEXT,
    card_last4        TEXT,
    token_id          TEXT,
    complete_at       REAL,
    created           INTEGER NOT NULL,
    updated           INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_txn_reference ON transactions (merchant_reference, created, id);
CREATE INDEX IF NOT EXISTS ix_txn_created ON transactions (created, id);
CREATE INDEX IF NOT EXISTS ix_txn_updated ON transactions (updated, id);
CREATE INDEX IF NOT EXISTS ix_txn_complete_at ON transactions (complete_at);

CREATE TABLE IF NOT EXISTS refunds (
    id                 TEXT PRIMARY KEY,
    transaction_id     TEXT NOT NULL REFERENCES transactions (id) ON DELETE CASCADE,
    amount             INTEGER NOT NULL,
    currency           TEXT NOT NULL,
    status             TEXT NOT NULL,
    merchant_reference TEXT,
    created            INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_refund_txn ON refunds (transaction_id, id);

CREATE TABLE IF NOT EXISTS tokens (
    id        TEXT PRIMARY KEY,
    brand     TEXT NOT NULL,
    last4     TEXT NOT NULL,
    exp_month INTEGER NOT NULL,
    exp_year  INTEGER NOT NULL,
    behavior  TEXT NOT NULL,
    used_by   TEXT,
    created   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS idempotency_keys (
    scope         TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    method        TEXT NOT NULL,
    path          TEXT NOT NULL,
    state         TEXT NOT NULL,
    status_code   INTEGER,
    response_body BLOB,
    created       REAL NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE TABLE IF NOT EXISTS events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    transaction_id  TEXT NOT NULL,
    payload         TEXT NOT NULL,
    created         INTEGER NOT NULL,
    next_attempt_at REAL NOT NULL,
    dropped         INTEGER NOT NULL DEFAULT 0,
    duplicate       INTEGER NOT NULL DEFAULT 0,
    held            INTEGER NOT NULL DEFAULT 0,
    held_until      REAL,
    delivered       INTEGER NOT NULL DEFAULT 0,
    delivered_at    REAL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    gave_up         INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS ix_event_pending ON events (delivered, dropped, next_attempt_at);
CREATE INDEX IF NOT EXISTS ix_event_txn ON events (transaction_id, seq);

CREATE TABLE IF NOT EXISTS delivery_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    at          REAL NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duplicate   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ix_attempt_event ON delivery_attempts (event_id);

CREATE TABLE IF NOT EXISTS kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_TXN_COLUMNS = (
    "id", "flow", "status", "amount", "currency", "amount_captured", "amount_refunded",
    "merchant_reference", "description", "metadata", "capture_method", "failure_code",
    "failure_message", "redirect_url", "return_url", "card_brand", "card_last4", "token_id",
    "complete_at", "created", "updated",
)
_EVENT_COLUMNS = (
    "id", "type", "transaction_id", "payload", "created", "next_attempt_at", "dropped",
    "duplicate", "held", "held_until", "delivered", "delivered_at", "attempts", "gave_up",
    "last_error",
)
_ORDER_FIELDS = ("created", "updated")
_CHUNK = 500


class Store:
    """All persistent simulator state."""

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                     timeout=30.0)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._depth = 0

    # ------------------------------------------------------------------ plumbing
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block atomically (re-entrant; only the outermost commits)."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        with self.transaction():
            return self._conn.execute(sql, params)

    def _query(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self.transaction():
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def wipe(self) -> None:
        """Delete every row of every table."""
        with self.transaction():
            for table in ("refunds", "transactions", "tokens", "idempotency_keys",
                          "delivery_attempts", "events", "kv"):
                self._conn.execute(f"DELETE FROM {table}")

    # ------------------------------------------------------------------ transactions
    @staticmethod
    def _txn_values(txn: Transaction) -> list[Any]:
        return [json.dumps(txn.metadata) if column == "metadata" else getattr(txn, column)
                for column in _TXN_COLUMNS]

    def insert_transaction(self, txn: Transaction) -> None:
        placeholders = ", ".join("?" for _ in _TXN_COLUMNS)
        self._execute(f"INSERT INTO transactions ({', '.join(_TXN_COLUMNS)}) "
                      f"VALUES ({placeholders})", self._txn_values(txn))

    def update_transaction(self, txn: Transaction) -> None:
        assignments = ", ".join(f"{column} = ?" for column in _TXN_COLUMNS[1:])
        values = self._txn_values(txn)
        self._execute(f"UPDATE transactions SET {assignments} WHERE id = ?", values[1:] + values[:1])

    def get_transaction(self, txn_id: str) -> Transaction | None:
        with self.transaction():
            rows = self._query("SELECT * FROM transactions WHERE id = ?", (txn_id,))
            txns = self._hydrate(rows)
        return txns[0] if txns else None

    def list_transactions(self, *, merchant_reference: str | None = None,
                          ranges: dict[str, tuple[int | None, int | None]] | None = None,
                          order_by: str = "created", after: Transaction | None = None,
                          limit: int = 50) -> tuple[list[Transaction], bool]:
        """Transactions matching the filters, ordered by ``(order_by, id)``.

        ``ranges`` maps ``created``/``updated`` to ``(gte, lt)`` bounds;
        ``after`` is the cursor object (``starting_after``).  Returns the page
        and whether more rows follow.
        """
        if order_by not in _ORDER_FIELDS:
            raise ValueError(f"cannot order by {order_by!r}")
        clauses: list[str] = []
        params: list[Any] = []
        if merchant_reference is not None:
            clauses.append("merchant_reference = ?")
            params.append(merchant_reference)
        for column, (gte, lt) in (ranges or {}).items():
            if column not in _ORDER_FIELDS:
                raise ValueError(f"cannot filter on {column!r}")
            if gte is not None:
                clauses.append(f"{column} >= ?")
                params.append(gte)
            if lt is not None:
                clauses.append(f"{column} < ?")
                params.append(lt)
        if after is not None:
            cursor_value = getattr(after, order_by)
            clauses.append(f"({order_by} > ? OR ({order_by} = ? AND id > ?))")
            params.extend([cursor_value, cursor_value, after.id])
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM transactions {where} ORDER BY {order_by}, id LIMIT ?"
        with self.transaction():
            rows = self._query(sql, [*params, limit + 1])
            txns = self._hydrate(rows[:limit])
        return txns, len(rows) > limit

    def all_transactions(self) -> list[Transaction]:
        with self.transaction():
            return self._hydrate(self._query("SELECT * FROM transactions ORDER BY created, id"))

    def due_async_transactions(self, now: float) -> list[str]:
        rows = self._query("SELECT id FROM transactions WHERE complete_at IS NOT NULL "
                           "AND complete_at <= ? AND status = 'pending' ORDER BY complete_at",
                           (now,))
        return [row["id"] for row in rows]

    def insert_refund(self, refund: Refund) -> None:
        self._execute("INSERT INTO refunds (id, transaction_id, amount, currency, status, "
                      "merchant_reference, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (refund.id, refund.transaction_id, refund.amount, refund.currency,
                       refund.status, refund.merchant_reference, refund.created))

    def _hydrate(self, rows: Iterable[sqlite3.Row]) -> list[Transaction]:
        txns: list[Transaction] = []
        for row in rows:
            data = {column: row[column] for column in _TXN_COLUMNS}
            data["metadata"] = json.loads(data["metadata"] or "{}")
            txns.append(Transaction(**data))
        by_id = {txn.id: txn for txn in txns}
        ids = list(by_id)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            for row in self._conn.execute(
                    f"SELECT * FROM refunds WHERE transaction_id IN ({marks}) ORDER BY created, id",
                    chunk):
                by_id[row["transaction_id"]].refunds.append(Refund(
                    id=row["id"], transaction_id=row["transaction_id"], amount=row["amount"],
                    currency=row["currency"], status=row["status"],
                    merchant_reference=row["merchant_reference"], created=row["created"]))
        return txns

    # ------------------------------------------------------------------ tokens
    def insert_token(self, token: Token) -> None:
        self._execute("INSERT INTO tokens (id, brand, last4, exp_month, exp_year, behavior, "
                      "used_by, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      (token.id, token.brand, token.last4, token.exp_month, token.exp_year,
                       token.behavior, token.used_by, token.created))

    def get_token(self, token_id: str) -> Token | None:
        rows = self._query("SELECT * FROM tokens WHERE id = ?", (token_id,))
        if not rows:
            return None
        row = rows[0]
        return Token(id=row["id"], brand=row["brand"], last4=row["last4"],
                     exp_month=row["exp_month"], exp_year=row["exp_year"],
                     behavior=row["behavior"], used_by=row["used_by"], created=row["created"])

    def mark_token_used(self, token_id: str, txn_id: str) -> None:
        self._execute("UPDATE tokens SET used_by = ? WHERE id = ?", (txn_id, token_id))

    # ------------------------------------------------------------------ idempotency
    def get_idempotency(self, scope: str, key: str) -> sqlite3.Row | None:
        rows = self._query("SELECT * FROM idempotency_keys WHERE scope = ? AND key = ?",
                           (scope, key))
        return rows[0] if rows else None

    def insert_idempotency(self, scope: str, key: str, fingerprint: str, method: str,
                           path: str, now: float) -> None:
        self._execute("INSERT INTO idempotency_keys (scope, key, fingerprint, method, path, "
                      "state, created) VALUES (?, ?, ?, ?, ?, 'in_progress', ?)",
                      (scope, key, fingerprint, method, path, now))

    def complete_idempotency(self, scope: str, key: str, status: int, body: bytes) -> None:
        self._execute("UPDATE idempotency_keys SET state = 'done', status_code = ?, "
                      "response_body = ? WHERE scope = ? AND key = ?",
                      (status, body, scope, key))

    def delete_idempotency(self, scope: str, key: str) -> None:
        self._execute("DELETE FROM idempotency_keys WHERE scope = ? AND key = ?", (scope, key))

    def clear_inflight_idempotency(self) -> int:
        """Forget keys whose request never finished (e.g. the process died)."""
        return self._execute("DELETE FROM idempotency_keys WHERE state = 'in_progress'").rowcount

    # ------------------------------------------------------------------ events
    @staticmethod
    def _event_from_row(row: sqlite3.Row) -> Event:
        return Event(
            seq=row["seq"], id=row["id"], type=row["type"], transaction_id=row["transaction_id"],
            payload=row["payload"], created=row["created"],
            next_attempt_at=row["next_attempt_at"], dropped=bool(row["dropped"]),
            duplicate=bool(row["duplicate"]), held=bool(row["held"]),
            held_until=row["held_until"], delivered=bool(row["delivered"]),
            delivered_at=row["delivered_at"], attempts=row["attempts"],
            gave_up=bool(row["gave_up"]), last_error=row["last_error"])

    def insert_event(self, event: Event) -> None:
        values = [getattr(event, column) for column in _EVENT_COLUMNS]
        placeholders = ", ".join("?" for _ in _EVENT_COLUMNS)
        cursor = self._execute(f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) "
                               f"VALUES ({placeholders})", values)
        event.seq = cursor.lastrowid

    def get_event(self, event_id: str) -> Event | None:
        rows = self._query("SELECT * FROM events WHERE id = ?", (event_id,))
        return self._event_from_row(rows[0]) if rows else None

    def save_event_delivery(self, event: Event) -> None:
        self._execute("UPDATE events SET delivered = ?, delivered_at = ?, attempts = ?, "
                      "next_attempt_at = ?, gave_up = ?, last_error = ? WHERE id = ?",
                      (event.delivered, event.delivered_at, event.attempts,
                       event.next_attempt_at, event.gave_up, event.last_error, event.id))

    def record_attempt(self, event_id: str, attempt: int, at: float, status_code: int | None,
                       error: str | None, duplicate: bool = False) -> None:
        self._execute("INSERT INTO delivery_attempts (event_id, attempt, at, status_code, error, "
                      "duplicate) VALUES (?, ?, ?, ?, ?, ?)",
                      (event_id, attempt, at, status_code, error, duplicate))

    def due_events(self, now: float, limit: int = 100) -> list[Event]:
        """Events to (re)try now, oldest first.

        A *held* (reordered) event waits until a later event of the same
        transaction has been settled (delivered, dropped or given up) or its
        hold expires.
        """
        rows = self._query(
            """
            SELECT * FROM events AS e
            WHERE e.delivered = 0 AND e.dropped = 0 AND e.gave_up = 0
              AND e.next_attempt_at <= :now
              AND (e.held = 0 OR e.held_until <= :now OR EXISTS (
                    SELECT 1 FROM events AS later
                    WHERE later.transaction_id = e.transaction_id AND later.seq > e.seq
                      AND (later.delivered = 1 OR later.dropped = 1 OR later.gave_up = 1)))
            ORDER BY e.seq
            LIMIT :limit
            """, {"now": now, "limit": limit})
        return [self._event_from_row(row) for row in rows]

    def flushable_events(self) -> list[Event]:
        """Every undelivered, non-dropped event; held ones last."""
        rows = self._query("SELECT * FROM events WHERE delivered = 0 AND dropped = 0 "
                           "ORDER BY held, seq")
        return [self._event_from_row(row) for row in rows]

    def all_events(self) -> list[Event]:
        return [self._event_from_row(row)
                for row in self._query("SELECT * FROM events ORDER BY seq")]

    # ------------------------------------------------------------------ key/value
    def kv_get(self, key: str) -> Any:
        rows = self._query("SELECT value FROM kv WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else None

    def kv_set(self, key: str, value: Any) -> None:
        self._execute("INSERT INTO kv (key, value) VALUES (?, ?) "
                      "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                      (key, json.dumps(value)))
