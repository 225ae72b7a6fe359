from django.core.management.base import BaseCommand
from django.db import transaction

from shop.models import Product

# sku, name, price in cents (EUR), stock, description
DEMO_CATALOG = [
    ("RK-MUG-01", "Ledger Mug", 1450, 40, "A stoneware mug for long reconciliation nights. 350 ml."),
    ("RK-NOTE-01", "Double-Entry Notebook", 990, 80, "Dot grid, 120 pages, lies flat. Debits left, credits right."),
    ("RK-PEN-01", "Fountain Pen", 3800, 25, "Steel nib, medium. Writes every figure twice as neatly."),
    ("RK-TEE-01", "Idempotent T-Shirt", 2400, 60, "Organic cotton. Wearing it twice has the same effect as once."),
    ("RK-CAP-01", "Webhook Cap", 1900, 30, "Arrives at least once. Signed inside."),
    ("RK-LAMP-01", "Desk Lamp", 5900, 12, "Warm LED light for late closes. USB-C powered."),
    ("RK-BAG-01", "Canvas Tote", 1600, 50, "Carries receipts, laptops and groceries alike."),
    ("RK-PLANT-01", "Office Fern", 2200, 8, "Forgives missed waterings, unlike an unreconciled ledger."),
    ("RK-POSTER-01", "State Machine Poster", 1200, 35, "A2 print of the payment state diagram. Legal moves only."),
    ("RK-LAST-01", "Limited Edition Abacus", 12900, 1, "The last one. Twenty customers want it; one gets it."),
]


class Command(BaseCommand):
    help = "Load the demo catalog. Safe to run again: existing products (by SKU) are updated, not duplicated."

    def handle(self, *args, **options) -> None:
        created = updated = 0
        with transaction.atomic():
            for sku, name, price, stock, description in DEMO_CATALOG:
                slug = name.lower().replace(" ", "-")
                _, was_created = Product.objects.update_or_create(
                    sku=sku,
                    defaults={"name": name, "slug": slug, "price_minor": price, "currency": "EUR",
                              "description": description, "is_active": True},
                    create_defaults={"name": name, "slug": slug, "price_minor": price, "currency": "EUR",
                                     "description": description, "is_active": True, "stock": stock},
                )
                created += was_created
                updated += not was_created
        self.stdout.write(self.style.SUCCESS(f"Demo catalog ready: {created} created, {updated} already there."))
