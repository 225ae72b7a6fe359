"""A support person finds a stuck payment from the admin index, resolves it with a reason, and sees it audited."""

import importlib
import io
import os
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from playwright.sync_api import Page, expect

from payments.models import Payment
from payments.services import payment_open_session
from tests.payments.factories import start_payment
from tests.staff import current_code

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-support-password-1"


def ensure_support_group() -> None:
    """Transactional tests empty the tables between tests; put back what migration 0002 creates."""
    migration = importlib.import_module("payments.migrations.0002_console_and_support_group")
    group, _ = Group.objects.get_or_create(name=migration.SUPPORT_GROUP)
    group.permissions.set([Permission.objects.get(content_type__app_label=app, codename=codename)
                           for app, codename in migration.SUPPORT_PERMISSIONS])


def stuck_pending_payment() -> Payment:
    payment = payment_open_session(payment_id=start_payment("hosted").pk)
    assert payment.state == "pending"
    Payment.objects.filter(pk=payment.pk).update(created_at=payment.created_at - timedelta(hours=3))
    return payment


def test_a_support_user_resolves_a_stuck_payment_from_the_index(page: Page, shop, monkeypatch):
    ensure_support_group()
    monkeypatch.setitem(os.environ, "SUPPORT_PASSWORD", PASSWORD)
    call_command("create_support_user", "sam", "--email", "sam@example.com", "--password-from-env",
                 "SUPPORT_PASSWORD", stdout=io.StringIO())
    stuck = stuck_pending_payment()
    fresh = payment_open_session(payment_id=start_payment("hosted").pk)  # open, but not stuck yet

    page.goto(f"{shop.url}/admin/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_otp_token", current_code(get_user_model().objects.get(username="sam")))
    page.click("input[type=submit]")
    expect(page.get_by_test_id("stuck-count")).to_have_text("1")

    # Click 1: the stuck payments; click 2: the payment.
    page.get_by_test_id("stuck-link").click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list")).not_to_contain_text(str(fresh.pk)[:8])
    page.get_by_role("link", name=str(stuck.pk)[:8]).click()

    # Why it is stuck: open for hours, the PSP's last word, the timeline.
    expect(page.get_by_test_id("why-open")).to_contain_text("Open for 3")
    expect(page.get_by_test_id("timeline")).to_contain_text("created → pending")

    page.get_by_test_id("resolve").click()
    page.get_by_label("Declined: the bank said no").check()
    page.get_by_role("button", name="Resolve").click()
    # One line at the top points to the form; the error itself is shown once, at its field.
    expect(page.locator(".messagelist")).to_contain_text("Please correct the error below.")
    expect(page.locator(".errorlist")).to_have_text("Give a reason: it goes into the audit trail.")
    page.get_by_label("Declined: the bank said no").check()
    page.get_by_label("Reason").fill("Bank confirmed the decline by phone, ticket 812")
    page.get_by_role("button", name="Resolve").click()

    # The PSP still held the payment open: it is voided there first, so it becomes cancelled.
    expect(page.locator(".messagelist")).to_contain_text("Payment resolved as cancelled")
    # The void's webhook may land in the same second, so find the transition's row by its text.
    resolved = page.get_by_test_id("timeline").locator("tbody tr", has_text="pending → cancelled")
    expect(resolved).to_have_count(1)
    expect(resolved).to_contain_text("sam (staff)")
    expect(resolved).to_contain_text("Bank confirmed the decline by phone, ticket 812")
    stuck.refresh_from_db()
    transition = stuck.transitions.first()
    assert (stuck.state, transition.source, transition.actor_name) == ("cancelled", "staff", "sam")
