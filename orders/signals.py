"""Signals sent when an order changes state.

`order_transitioned(sender=Order, order=..., transition=OrderTransition)` is
sent inside the transaction that writes the audit row, once per row
(checkout's first row included). A receiver that writes rows (the customer
outbox) joins that transaction, so a rollback takes its rows too; a receiver
that reaches outside the database must defer with `transaction.on_commit`.
"""

from django.dispatch import Signal

order_transitioned = Signal()
