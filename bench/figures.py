"""What a run measured: our books (SQL on the run's database) against the PSP's ledger (control API)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import psycopg
import requests

CAPTURED_STATES = ("captured", "partially_refunded", "refunded")
OPEN_STATES = ("created", "pending", "unknown", "authorized")


@dataclass
class Books:
    orders: Counter = field(default_factory=Counter)
    payments: Counter = field(default_factory=Counter)
    gateway_calls: Counter = field(default_factory=Counter)
    discrepancies: Counter = field(default_factory=Counter)
    webhooks_unprocessed: int = 0
    # Money and goods disagree: charged for an order that is not paid (and no Discrepancy tells staff),
    # or an order marked paid with no captured payment.
    charged_not_paid: list[str] = field(default_factory=list)
    paid_not_charged: list[str] = field(default_factory=list)
    payment_order: dict[str, tuple[int, str]] = field(default_factory=dict)  # payment id -> (order id, state)
    # The customer outbox: messages by kind and status, and each promise it broke (a paid order without
    # exactly one receipt, an expired one without exactly one expiry mail, two messages of a kind for one event).
    mail: Counter = field(default_factory=Counter)
    mail_problems: list[str] = field(default_factory=list)

    @property
    def open_payments(self) -> int:
        return sum(self.payments[s] for s in OPEN_STATES)

    @property
    def paid_orders(self) -> int:
        return self.orders["paid"]


def read_books(conn: psycopg.Connection) -> Books:
    books = Books()
    books.orders.update(dict(conn.execute("SELECT state, count(*) FROM orders_order GROUP BY state").fetchall()))
    rows = conn.execute("SELECT id::text, order_id, state FROM payments_payment").fetchall()
    books.payment_order = {pid: (order, state) for pid, order, state in rows}
    books.payments.update(Counter(state for _, _, state in rows))
    books.gateway_calls.update(dict(conn.execute(
        "SELECT operation, count(*) FROM payments_gatewaycall GROUP BY operation").fetchall()))
    books.discrepancies.update({f"{kind} ({status})": n for kind, status, n in conn.execute(
        "SELECT kind, status, count(*) FROM payments_discrepancy GROUP BY kind, status").fetchall()})
    books.webhooks_unprocessed = conn.execute(
        "SELECT count(*) FROM payments_webhookevent WHERE processed_at IS NULL").fetchone()[0]
    paid_states = ["paid", "fulfilled", "partially_refunded", "refunded"]
    books.charged_not_paid = [f"{number} ({state})" for number, state in conn.execute("""
        SELECT o.number, o.state FROM orders_order o JOIN payments_payment p ON p.order_id = o.id
        WHERE p.state = ANY(%s) AND o.state <> ALL(%s)
          AND NOT EXISTS (SELECT 1 FROM payments_discrepancy d WHERE d.payment_id = p.id)""",
        [list(CAPTURED_STATES), paid_states]).fetchall()]
    books.paid_not_charged = [number for (number,) in conn.execute("""
        SELECT o.number FROM orders_order o WHERE o.state = ANY(%s) AND NOT EXISTS (
            SELECT 1 FROM payments_payment p WHERE p.order_id = o.id AND p.state = ANY(%s))""",
        [paid_states, list(CAPTURED_STATES)]).fetchall()]
    read_mail(conn, books, paid_states)
    return books


def read_mail(conn: psycopg.Connection, books: Books, paid_states: list[str]) -> None:
    if conn.execute("SELECT to_regclass('notifications_notification')").fetchone()[0] is None:
        return  # a shop from before the outbox
    books.mail.update({f"{kind} {status}": n for kind, status, n in conn.execute(
        "SELECT kind, status, count(*) FROM notifications_notification GROUP BY kind, status").fetchall()})
    for kind, states in (("payment_succeeded", paid_states), ("order_expired", ["expired"])):
        books.mail_problems += [f"order {number} ({state}) has {n} '{kind}' message(s), not 1" for number, state, n
                                in conn.execute("""
            SELECT o.number, o.state, count(n.id) FROM orders_order o
            LEFT JOIN notifications_notification n ON n.order_id = o.id AND n.kind = %s AND n.resend_of_id IS NULL
            WHERE o.state = ANY(%s) GROUP BY o.number, o.state HAVING count(n.id) <> 1""", [kind, states]).fetchall()]
    # One message per event: per order for these kinds, per payment for the payment notices.
    for column, kinds in (("order_id", ["order_placed", "payment_succeeded", "order_expired"]),
                          ("payment_id", ["payment_declined", "payment_action_needed", "payment_delayed"])):
        books.mail_problems += [f"{n} '{kind}' messages for one event ({column} {key})" for kind, key, n
                                in conn.execute(f"""
            SELECT kind, {column}, count(*) FROM notifications_notification
            WHERE resend_of_id IS NULL AND kind = ANY(%s) GROUP BY kind, {column} HAVING count(*) > 1""",
            [kinds]).fetchall()]


def count_open(conn: psycopg.Connection) -> tuple[int, int]:
    """(open payments, stored webhook events not yet applied)."""
    open_payments = conn.execute("SELECT count(*) FROM payments_payment WHERE state = ANY(%s)",
                                 [list(OPEN_STATES)]).fetchone()[0]
    unprocessed = conn.execute("SELECT count(*) FROM payments_webhookevent WHERE processed_at IS NULL").fetchone()[0]
    return open_payments, unprocessed


@dataclass
class MoneyCheck:
    psp_transactions: int = 0
    psp_captures: int = 0
    double_charges: list[str] = field(default_factory=list)  # orders charged more than once, not refunded
    lost_charges: list[str] = field(default_factory=list)  # captured at the PSP, not captured here


def check_money(ledger: dict, books: Books) -> MoneyCheck:
    """The two promises, checked independently of audit_ledger: no charge lost, none doubled."""
    check = MoneyCheck(psp_transactions=len(ledger["transactions"]))
    captures_per_order: dict[int, list[str]] = defaultdict(list)
    for txn in ledger["transactions"]:
        if txn["status"] != "captured":
            continue
        check.psp_captures += 1
        kept = txn["amount_captured"] - txn["amount_refunded"]
        payment = books.payment_order.get(txn.get("merchant_reference") or "")
        if payment is None or payment[1] not in CAPTURED_STATES:
            check.lost_charges.append(f"{txn['id']} ({txn.get('merchant_reference')}: "
                                      f"{payment[1] if payment else 'no such payment'})")
        if payment is not None and kept > 0:
            captures_per_order[payment[0]].append(txn["id"])
    check.double_charges = [f"order id {order}: {', '.join(txns)}" for order, txns in captures_per_order.items()
                            if len(txns) > 1]
    return check


def statement_counts(conn: psycopg.Connection) -> dict[str, dict[str, int]]:
    """pg_stat_statements per role: all statements, django-q2's own tables, transaction control."""
    rows = conn.execute("""
        SELECT r.rolname, sum(s.calls)::bigint,
               coalesce(sum(s.calls) FILTER (WHERE s.query ILIKE '%%django_q_%%'), 0)::bigint,
               coalesce(sum(s.calls) FILTER (WHERE s.query ~* '^\\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)'),
                        0)::bigint
        FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = 'reckon' GROUP BY r.rolname""").fetchall()
    return {role: {"all": total, "django_q": q, "tx_control": tx} for role, total, q, tx in rows}


def top_statements(conn: psycopg.Connection, role: str, limit: int) -> list[tuple[int, str]]:
    """The statements one role ran most often (pg_stat_statements: calls, normalized text)."""
    return conn.execute("""
        SELECT s.calls::bigint, regexp_replace(s.query, '\\s+', ' ', 'g')
        FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = 'reckon' AND r.rolname = %s ORDER BY s.calls DESC LIMIT %s""", (role, limit)).fetchall()


def psp_ledger(psp_url: str) -> dict:
    response = requests.get(f"{psp_url}/control/ledger", headers={"Authorization": "Bearer sk_sim_test"},
                            timeout=120)
    response.raise_for_status()
    return response.json()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]
