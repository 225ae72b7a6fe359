"""Signals sent when a payment changes state.

`payment_transitioned(sender=Payment, payment=..., transition=PaymentTransition)`
is sent inside the transaction that writes the audit row, once per row (the
first `created` row included), before the caller saves the payment. A
receiver that writes rows (the customer outbox) joins that transaction, so a
rollback takes its rows too; one that reaches outside the database (the
live-status push) must defer with `transaction.on_commit`.
"""

from django.dispatch import Signal

payment_transitioned = Signal()
