"""The "Payment support" group can do its job and nothing more; the audit trail outlives the staff user."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.urls import reverse

from orders.models import Order
from payments.models import Payment, PaymentTransition
from payments.resolution import SUPPORT_GROUP
from tests.admin.conftest import pending_payment
from tests.staff import login_verified

pytestmark = pytest.mark.django_db

EXPECTED = {
    "payments.view_payment", "payments.view_refund", "payments.view_webhookevent", "payments.view_gatewaycall",
    "payments.view_discrepancy", "payments.view_staffaction", "payments.check_payment", "payments.resolve_payment",
    "payments.cancel_payment", "payments.refund_payment", "payments.reprocess_webhookevent",
    "payments.close_discrepancy", "orders.view_order", "orders.view_orderline", "orders.view_ordertransition",
    "orders.fulfil_order", "orders.cancel_order", "notifications.view_notification",
    "notifications.resend_notification",
}


def test_the_migration_gives_the_group_exactly_these_permissions(db):
    group = Group.objects.get(name=SUPPORT_GROUP)
    granted = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
    assert granted == EXPECTED


def test_the_support_user_is_staff_but_not_superuser(support_user):
    assert support_user.is_staff and not support_user.is_superuser
    assert support_user.get_all_permissions() == EXPECTED
    assert not support_user.has_perm("payments.resolve_payment_override")


def test_a_support_user_cannot_manage_users(support_client):
    assert support_client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert support_client.get(reverse("admin:auth_group_changelist")).status_code == 403
    assert support_client.get(reverse("admin:auth_user_add")).status_code == 403
    index = support_client.get(reverse("admin:index")).content.decode()
    assert "/admin/auth/" not in index


def test_a_support_user_cannot_delete_or_edit_raw_fields(support_client, psp):
    payment = pending_payment()
    payment_url = reverse("admin:payments_payment_change", args=[payment.pk])
    assert support_client.get(reverse("admin:payments_payment_delete", args=[payment.pk])).status_code == 403
    assert support_client.post(payment_url, {"amount_minor": 1, "psp_reference": "forged"}).status_code == 403
    order_url = reverse("admin:orders_order_change", args=[payment.order_id])
    assert support_client.post(order_url, {"email": "evil@example.com"}).status_code == 403
    assert support_client.get(reverse("admin:orders_order_delete", args=[payment.order_id])).status_code == 403
    assert support_client.get(reverse("admin:payments_payment_add")).status_code == 403
    response = support_client.post(reverse("admin:payments_payment_changelist"),
                                   {"action": "delete_selected", "_selected_action": [payment.pk]})
    assert Payment.objects.filter(pk=payment.pk, psp_reference=payment.psp_reference).exists()
    assert response.status_code in (200, 302)
    assert Order.objects.get(pk=payment.order_id).email == "ada@example.com"
    page = support_client.get(payment_url).content.decode()
    assert 'name="psp_reference"' not in page and 'name="_save"' not in page


def test_a_staff_user_outside_the_group_is_refused_the_actions(client, psp):
    viewer = get_user_model().objects.create_user("viewer", password="x-long-password-1", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_payment"))
    login_verified(client, viewer)
    payment = pending_payment()
    for name in ("resolve", "cancel", "refund"):
        url = reverse(f"admin:payments_payment_{name}", args=[payment.pk])
        assert client.post(url, {"outcome": "declined", "reason": "x"}).status_code == 403
    assert client.post(reverse("admin:payments_payment_check", args=[payment.pk])).status_code == 403
    page = client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content.decode()
    assert "Resolve…" not in page and "Check with the PSP now" not in page
    assert Payment.objects.get(pk=payment.pk).state == "pending"


def test_the_card_token_is_never_shown(support_client, admin_client, psp):
    payment = pending_payment()
    Payment.objects.filter(pk=payment.pk).update(card_token="tok_sensitive_0000")
    for client in (support_client, admin_client):
        for url in (reverse("admin:payments_payment_changelist"),
                    reverse("admin:payments_payment_change", args=[payment.pk]),
                    reverse("admin:orders_order_change", args=[payment.order_id])):
            page = client.get(url)
            assert page.status_code == 200
            assert "tok_sensitive_0000" not in page.content.decode() and "card_token" not in page.content.decode()


def test_even_a_superuser_sees_payments_read_only(admin_client, psp):
    payment = pending_payment()
    url = reverse("admin:payments_payment_change", args=[payment.pk])
    assert 'name="psp_reference"' not in admin_client.get(url).content.decode()
    assert admin_client.post(url, {"psp_reference": "forged"}).status_code == 403


def test_the_audit_trail_keeps_the_name_of_a_deleted_staff_user(support_client, support_user, psp):
    payment = pending_payment()
    support_client.post(reverse("admin:payments_payment_resolve", args=[payment.pk]),
                        {"outcome": "cancelled", "reason": "Duplicate order"})
    support_client.post(reverse("admin:payments_payment_check", args=[pending_payment().pk]))
    support_user.delete()
    transition = PaymentTransition.objects.get(source="staff")
    assert transition.actor is None and transition.actor_name == "sam"
    lead = get_user_model().objects.create_superuser("root", password="x-long-password-1")
    login_verified(support_client, lead)
    page = support_client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content.decode()
    assert "sam (staff)" in page and "Duplicate order" in page


def test_create_support_user_refuses_bad_input_clearly(db, monkeypatch):
    from django.core.management.base import CommandError

    def run(*args):
        call_command("create_support_user", *args, stdout=io.StringIO())

    monkeypatch.setenv("PW", "a-long-support-password-1")
    monkeypatch.setenv("WEAK", "123")
    with pytest.raises(CommandError, match="environment variable NOPE is not set"):
        run("ann", "--email", "ann@example.com", "--password-from-env", "NOPE")
    with pytest.raises(CommandError, match="Password refused: .*too short"):
        run("ann", "--email", "ann@example.com", "--password-from-env", "WEAK")
    with pytest.raises(CommandError, match="not a valid e-mail"):
        run("ann", "--email", "nope", "--password-from-env", "PW")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="No terminal to ask for the password"):
        run("ann", "--email", "ann@example.com")
    run("ann", "--email", "ann@example.com", "--password-from-env", "PW")
    with pytest.raises(CommandError, match="already exists"):
        run("ann", "--email", "ann@example.com", "--password-from-env", "PW")
    user = get_user_model().objects.get(username="ann")
    assert user.is_staff and not user.is_superuser and user.check_password("a-long-support-password-1")
    assert list(user.groups.values_list("name", flat=True)) == [SUPPORT_GROUP]
    Group.objects.filter(name=SUPPORT_GROUP).delete()
    with pytest.raises(CommandError, match="run \"manage.py migrate\" first"):
        run("bob", "--email", "bob@example.com", "--password-from-env", "PW")


def test_create_support_user_exits_non_zero_with_one_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    result = subprocess.run([sys.executable, "manage.py", "create_support_user", "ann", "--email", "ann@example.com",
                             "--password-from-env", "NOPE"], capture_output=True, text=True, env=env, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "NOPE is not set" in result.stderr


def test_the_override_is_refused_to_the_group_even_when_asked_for_directly(support_user, psp):
    from payments.resolution import payment_resolve
    from payments.services import PaymentError

    payment = pending_payment()
    with pytest.raises(PaymentError, match="permission to resolve a payment as captured without the PSP"):
        payment_resolve(payment_id=payment.pk, outcome="captured", actor=support_user, reason="trust me",
                        override=True)
    assert Payment.objects.get(pk=payment.pk).state == "pending"
