from django.db import migrations, models

_CAPTURED = ("captured", "partially_refunded", "refunded")
_PAID_ORDER = ("paid", "fulfilled", "partially_refunded", "refunded")
_EXTRA = ("double_capture", "late_event", "amount_mismatch")


def mark_order_captures(apps, schema_editor):
    """Before this field, the capture that paid an order was the first captured one not flagged as extra."""
    Payment = apps.get_model("payments", "Payment")
    Discrepancy = apps.get_model("payments", "Discrepancy")
    flagged = set(Discrepancy.objects.filter(kind__in=_EXTRA).values_list("payment_id", flat=True))
    seen_orders = set()
    rows = (Payment.objects.filter(state__in=_CAPTURED, order__state__in=_PAID_ORDER)
            .order_by("order_id", "created_at").values_list("pk", "order_id"))
    ids = []
    for pk, order_id in rows.iterator(chunk_size=2000):
        if order_id in seen_orders or pk in flagged:
            continue
        seen_orders.add(order_id)
        ids.append(pk)
    for start in range(0, len(ids), 1000):
        Payment.objects.filter(pk__in=ids[start:start + 1000]).update(settles_order=True)


class Migration(migrations.Migration):

    dependencies = [
        ("payments", "0002_console_and_support_group"),
    ]

    operations = [
        migrations.AddField(
            model_name="payment",
            name="settles_order",
            field=models.BooleanField(default=False, editable=False),
        ),
        migrations.RunPython(mark_order_captures, migrations.RunPython.noop),
    ]
