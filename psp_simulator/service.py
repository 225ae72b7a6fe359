"""The payment engine: transactions, tokens, refunds and the events they emit.

Every state change runs inside one store transaction together with the
webhook event it produces, so an event exists if and only if the change was
committed.  Methods raise :class:`~psp_simulator.errors.ApiError` for
business-rule violations; input validation happens in the API layer.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from . import cards
from .cards import Behavior, CardDetails
from .errors import bad_request, invalid_state, not_found
from .faults import FaultInjector
from .ids import new_id
from .models import (
    AUTHORIZED,
    CANCELLABLE,
    CANCELLED,
    CAPTURE_MANUAL,
    CAPTURED,
    DECLINED,
    FAILED,
    FLOW_DIRECT,
    FLOW_HOSTED,
    PENDING,
    REQUIRES_ACTION,
    Event,
    Refund,
    Token,
    Transaction,
)
from .storage import Store

SETTLE_STATUSES = (CAPTURED, AUTHORIZED, DECLINED, FAILED)


class Simulator:
    """Business operations shared by the JSON API, the hosted pages and control API."""

    def __init__(self, store: Store, faults: FaultInjector, *, public_url: str,
                 webhook_url: str | None = None) -> None:
        self.store = store
        self.faults = faults
        self.public_url = public_url.rstrip("/")
        self.webhook_url = webhook_url
        #: Called after an event is recorded (the dispatcher sets it to wake up).
        self.on_event: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ helpers
    def hosted_url(self, txn_id: str) -> str:
        return f"{self.public_url}/hosted/{txn_id}"

    def action_url(self, txn_id: str) -> str:
        return f"{self.public_url}/action/{txn_id}"

    def _load(self, txn_id: str) -> Transaction:
        txn = self.store.get_transaction(txn_id)
        if txn is None:
            raise not_found(f"No such transaction: {txn_id}.")
        return txn

    def get_transaction(self, txn_id: str) -> Transaction | None:
        return self.store.get_transaction(txn_id)

    def _emit(self, txn: Transaction, event_type: str, refund: Refund | None = None) -> None:
        """Record a webhook event for ``txn`` as it is now (inside a store transaction)."""
        decision = self.faults.decide_webhook()
        now = time.time()
        event_id = new_id("evt")
        data: dict[str, Any] = {"object": txn.to_public()}
        if refund is not None:
            data["refund"] = refund.to_public()
        payload = json.dumps({"id": event_id, "type": event_type, "created": int(now),
                              "data": data})
        self.store.insert_event(Event(
            id=event_id, type=event_type, transaction_id=txn.id, payload=payload,
            created=int(now), next_attempt_at=now + decision.delay_s, dropped=decision.drop,
            duplicate=decision.duplicate, held=decision.reorder,
            held_until=now + decision.hold_s if decision.reorder else None))
        self.on_event()

    def _save_status(self, txn: Transaction, previous_status: str | None) -> None:
        """Persist ``txn`` and emit ``transaction.<status>`` if the status changed."""
        txn.updated = int(time.time())
        if previous_status is None:
            self.store.insert_transaction(txn)
        else:
            self.store.update_transaction(txn)
        if txn.status != previous_status:
            self._emit(txn, f"transaction.{txn.status}")

    @staticmethod
    def _succeed(txn: Transaction) -> None:
        if txn.capture_method == CAPTURE_MANUAL:
            txn.status = AUTHORIZED
        else:
            txn.status = CAPTURED
            txn.amount_captured = txn.amount

    @staticmethod
    def _fail(txn: Transaction, status: str, code: str) -> None:
        txn.status = status
        txn.failure_code = code
        txn.failure_message = cards.FAILURE_MESSAGES.get(code, code)

    def _apply_card(self, txn: Transaction, behavior: str, now: float) -> None:
        """Set the outcome of charging a card with ``behavior`` (no save)."""
        if behavior == Behavior.SUCCESS:
            self._succeed(txn)
        elif behavior in (Behavior.DECLINED, Behavior.INSUFFICIENT_FUNDS):
            self._fail(txn, DECLINED, str(Behavior(behavior).value))
        elif behavior == Behavior.PROCESSING_ERROR:
            self._fail(txn, FAILED, "processing_error")
        elif behavior == Behavior.REQUIRES_ACTION:
            txn.status = REQUIRES_ACTION
            txn.redirect_url = (self.hosted_url(txn.id) if txn.flow == FLOW_HOSTED
                                else self.action_url(txn.id))
        elif behavior == Behavior.ASYNC:
            txn.status = PENDING
            txn.complete_at = now + self.faults.settings.async_delay_ms / 1000.0
        else:  # unknown stored behaviour: treat as success
            self._succeed(txn)

    # ------------------------------------------------------------------ API operations
    def create_session(self, *, amount: int, currency: str, merchant_reference: str,
                       return_url: str, description: str | None, metadata: dict[str, Any],
                       capture_method: str) -> Transaction:
        now = int(time.time())
        txn_id = new_id("txn")
        txn = Transaction(id=txn_id, flow=FLOW_HOSTED, status=PENDING, amount=amount,
                          currency=currency, merchant_reference=merchant_reference,
                          capture_method=capture_method, created=now, updated=now,
                          description=description, metadata=metadata,
                          redirect_url=self.hosted_url(txn_id), return_url=return_url)
        with self.store.transaction():
            self._save_status(txn, None)
        return txn

    def create_token(self, card: CardDetails) -> Token:
        token = Token(id=new_id("tok"), brand=card.brand, last4=card.last4,
                      exp_month=card.exp_month, exp_year=card.exp_year,
                      behavior=card.behavior.value, created=int(time.time()))
        self.store.insert_token(token)
        return token

    def create_charge(self, *, amount: int, currency: str, merchant_reference: str,
                      token_id: str, capture_method: str, return_url: str | None,
                      description: str | None, metadata: dict[str, Any]) -> Transaction:
        with self.store.transaction():
            token = self.store.get_token(token_id)
            if token is None:
                raise bad_request("token", f"No such token: {token_id}.", "resource_missing")
            if token.used_by is not None:
                raise bad_request("token", "This token has already been used.",
                                  "token_already_used")
            now = time.time()
            txn = Transaction(id=new_id("txn"), flow=FLOW_DIRECT, status=PENDING, amount=amount,
                              currency=currency, merchant_reference=merchant_reference,
                              capture_method=capture_method, created=int(now),
                              updated=int(now), description=description, metadata=metadata,
                              return_url=return_url, card_brand=token.brand,
                              card_last4=token.last4, token_id=token.id)
            self._apply_card(txn, token.behavior, now)
            self._save_status(txn, None)
            self.store.mark_token_used(token.id, txn.id)
        return txn

    def capture(self, txn_id: str, amount: int | None) -> Transaction:
        with self.store.transaction():
            txn = self._load(txn_id)
            if txn.status != AUTHORIZED:
                raise invalid_state(f"Only authorized transactions can be captured; this one "
                                    f"is {txn.status}.", txn.to_public())
            to_capture = txn.amount if amount is None else amount
            if to_capture > txn.amount:
                raise bad_request("amount", f"Cannot capture more than the authorized amount "
                                  f"({txn.amount}).", "amount_too_large")
            previous = txn.status
            txn.status = CAPTURED
            txn.amount_captured = to_capture
            self._save_status(txn, previous)
        return txn

    def cancel(self, txn_id: str) -> Transaction:
        with self.store.transaction():
            txn = self._load(txn_id)
            if txn.status == CANCELLED:
                return txn
            if txn.status not in CANCELLABLE:
                raise invalid_state(f"A {txn.status} transaction cannot be cancelled.",
                                    txn.to_public())
            previous = txn.status
            txn.status = CANCELLED
            txn.complete_at = None
            self._save_status(txn, previous)
        return txn

    def refund(self, txn_id: str, amount: int | None,
               merchant_reference: str | None) -> Refund:
        with self.store.transaction():
            txn = self._load(txn_id)
            if txn.status != CAPTURED:
                raise invalid_state(f"Only captured transactions can be refunded; this one is "
                                    f"{txn.status}.", txn.to_public())
            remaining = txn.amount_captured - txn.amount_refunded
            to_refund = remaining if amount is None else amount
            if remaining <= 0:
                raise bad_request("amount", "The transaction has already been fully refunded.",
                                  "amount_too_large")
            if to_refund > remaining:
                raise bad_request("amount", f"Refund amount exceeds the refundable amount "
                                  f"({remaining}).", "amount_too_large")
            now = int(time.time())
            refund = Refund(id=new_id("re"), transaction_id=txn.id, amount=to_refund,
                            currency=txn.currency, created=now,
                            merchant_reference=merchant_reference)
            self.store.insert_refund(refund)
            txn.amount_refunded += to_refund
            txn.updated = now
            txn.refunds.append(refund)
            self.store.update_transaction(txn)
            self._emit(txn, "refund.succeeded", refund)
        return refund

    def list_transactions(self, *, merchant_reference: str | None,
                          ranges: dict[str, tuple[int | None, int | None]], order_by: str,
                          starting_after: str | None, limit: int) -> dict[str, Any]:
        with self.store.transaction():
            after = None
            if starting_after is not None:
                after = self.store.get_transaction(starting_after)
                if after is None:
                    raise bad_request("starting_after", f"No such transaction: "
                                      f"{starting_after}.", "resource_missing")
            txns, has_more = self.store.list_transactions(
                merchant_reference=merchant_reference, ranges=ranges, order_by=order_by,
                after=after, limit=limit)
        return {"object": "list", "data": [txn.to_public() for txn in txns],
                "has_more": has_more}

    # ------------------------------------------------------------------ customer actions
    def pay_hosted(self, txn_id: str, card: CardDetails) -> Transaction:
        """The customer submitted the hosted card form (no-op unless awaiting a card)."""
        with self.store.transaction():
            txn = self._load(txn_id)
            if txn.flow != FLOW_HOSTED or txn.status != PENDING or txn.has_card:
                return txn
            previous = txn.status
            txn.card_brand, txn.card_last4 = card.brand, card.last4
            self._apply_card(txn, card.behavior.value, time.time())
            self._save_status(txn, previous)
        return txn

    def customer_cancel(self, txn_id: str) -> Transaction:
        """The customer pressed "Cancel" (before paying or while authenticating)."""
        with self.store.transaction():
            txn = self._load(txn_id)
            awaiting_card = txn.status == PENDING and not txn.has_card
            if awaiting_card or txn.status == REQUIRES_ACTION:
                previous = txn.status
                txn.status = CANCELLED
                self._save_status(txn, previous)
        return txn

    def authenticate(self, txn_id: str, approve: bool) -> Transaction:
        """The customer approved or failed the authentication challenge."""
        with self.store.transaction():
            txn = self._load(txn_id)
            if txn.status != REQUIRES_ACTION:
                return txn
            previous = txn.status
            if approve:
                self._succeed(txn)
            else:
                self._fail(txn, DECLINED, "authentication_failed")
            self._save_status(txn, previous)
        return txn

    # ------------------------------------------------------------------ async settlement
    def settle(self, txn_id: str, status: str) -> Transaction:
        """Complete a pending transaction now (control API)."""
        with self.store.transaction():
            txn = self._load(txn_id)
            if txn.status != PENDING:
                raise invalid_state(f"Only pending transactions can be completed; this one "
                                    f"is {txn.status}.", txn.to_public())
            previous = txn.status
            txn.complete_at = None
            if status == CAPTURED:
                txn.status = CAPTURED
                txn.amount_captured = txn.amount
            elif status == AUTHORIZED:
                txn.status = AUTHORIZED
            elif status == DECLINED:
                self._fail(txn, DECLINED, "card_declined")
            else:
                self._fail(txn, FAILED, "processing_error")
            self._save_status(txn, previous)
        return txn

    def settle_due(self, now: float | None = None) -> int:
        """Complete async-card transactions whose delay has elapsed."""
        now = time.time() if now is None else now
        settled = 0
        for txn_id in self.store.due_async_transactions(now):
            with self.store.transaction():
                txn = self.store.get_transaction(txn_id)
                if (txn is None or txn.status != PENDING or txn.complete_at is None
                        or txn.complete_at > now):
                    continue
                txn.complete_at = None
                self._succeed(txn)
                self._save_status(txn, PENDING)
                settled += 1
        return settled

    # ------------------------------------------------------------------ control
    def reset(self) -> None:
        with self.store.transaction():
            self.store.wipe()
            self.faults.reset()

    def ledger(self) -> dict[str, Any]:
        with self.store.transaction():
            return {
                "transactions": [txn.to_public() for txn in self.store.all_transactions()],
                "events": [event.to_ledger() for event in self.store.all_events()],
                "fault_counts": self.faults.counts(),
            }
