"""The console's pages: counts on the index, filters and exact search on the list, a fixed number of queries."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from payments.models import Discrepancy, GatewayCall, Payment, PaymentTransition, Refund, StaffAction, WebhookEvent
from payments.services import discrepancy_record
from tests.admin.conftest import make_stuck
from tests.payments.factories import start_payment

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:payments_payment_changelist")
# Session, user, the second factor's device (django-otp), the user's and the group's permissions, the capped
# count, the page of payments (with orders).
CHANGELIST_QUERIES = 7
# Same five, the payment (twice: the timeline's and the form's), one query per kind of timeline row (7, with
# the customer e-mails), and the refundable amount's sum only for captured payments (not here).
PAYMENT_PAGE_QUERIES = 14


def shown_ids(response) -> set[str]:
    return {str(p.pk)[:8] for p in response.context["cl"].result_list}


def test_the_index_counts_what_needs_a_person_and_links_to_it(support_client, settings):
    settings.PAYMENT_ALERT_AFTER_MINUTES = 60
    stuck, fresh = make_stuck(start_payment("hosted")), start_payment("hosted")
    discrepancy_record(kind="late_event", dedupe_key="late:1", gateway="simulator", payment=fresh,
                       summary="late capture")
    WebhookEvent.objects.create(gateway="simulator", event_id="evt_bad", body="{}", attempts=3, error="boom")
    WebhookEvent.objects.create(gateway="simulator", event_id="evt_ok", body="{}", attempts=1,
                                processed_at=timezone.now())
    index = support_client.get(reverse("admin:index"))
    html = index.content.decode()
    for name, count in (("stuck", 1), ("discrepancies", 1), ("webhooks", 1)):
        assert f'data-testid="{name}-count">{count}<' in html
    assert f'href="{CHANGELIST}?stuck=yes"' in html
    assert shown_ids(support_client.get(f"{CHANGELIST}?stuck=yes")) == {str(stuck.pk)[:8]}
    events = support_client.get(reverse("admin:payments_webhookevent_changelist") + "?status=failed")
    assert [e.event_id for e in events.context["cl"].result_list] == ["evt_bad"]
    discrepancies = support_client.get(reverse("admin:payments_discrepancy_changelist") + "?status__exact=open")
    assert len(discrepancies.context["cl"].result_list) == 1


def test_the_list_shows_state_amount_order_and_customer(support_client):
    payment = start_payment("hosted", email="grace@example.com")
    html = support_client.get(CHANGELIST).content.decode()
    assert 'data-state="created"' in html and "€12.50" in html and payment.order.number in html
    assert "grace@example.com" in html and "simulator" in html


def test_filters_by_state_gateway_and_open_discrepancy(support_client):
    first, second = start_payment("hosted"), start_payment("hosted")
    Payment.objects.filter(pk=second.pk).update(gateway="stripe")
    discrepancy_record(kind="amount_mismatch", dedupe_key="amount:x", gateway="simulator", payment=first,
                       summary="amounts differ")
    closed = discrepancy_record(kind="amount_mismatch", dedupe_key="amount:y", gateway="stripe", payment=second,
                                summary="amounts differ")
    Discrepancy.objects.filter(pk=closed.pk).update(status="closed")
    assert shown_ids(support_client.get(f"{CHANGELIST}?gateway=stripe")) == {str(second.pk)[:8]}
    assert shown_ids(support_client.get(f"{CHANGELIST}?discrepancy=open")) == {str(first.pk)[:8]}
    assert shown_ids(support_client.get(f"{CHANGELIST}?state__exact=created")) == {str(first.pk)[:8],
                                                                                  str(second.pk)[:8]}
    assert shown_ids(support_client.get(f"{CHANGELIST}?state__exact=captured")) == set()


@pytest.mark.parametrize("term", ["id", "psp_reference", "number", "email", "EMAIL"])
def test_search_finds_by_exact_id_reference_order_number_or_email(support_client, term):
    payment = start_payment("hosted", email="linus@example.com")
    other = start_payment("hosted", email="other@example.com")
    Payment.objects.filter(pk=payment.pk).update(psp_reference="txn_findme")
    Payment.objects.filter(pk=other.pk).update(psp_reference="txn_other")
    value = {"id": str(payment.pk), "psp_reference": "txn_findme", "number": payment.order.number.lower(),
             "email": "linus@example.com", "EMAIL": "LINUS@EXAMPLE.COM"}[term]
    assert shown_ids(support_client.get(CHANGELIST, {"q": value})) == {str(payment.pk)[:8]}


def test_search_does_not_match_fragments(support_client):
    payment = start_payment("hosted")
    Payment.objects.filter(pk=payment.pk).update(psp_reference="txn_findme")
    for fragment in ("findme", "txn_find", str(payment.pk)[:8], payment.order.number[:6], "example.com"):
        assert shown_ids(support_client.get(CHANGELIST, {"q": fragment})) == set(), fragment


def test_the_list_never_counts_past_the_cap(support_client, monkeypatch):
    from payments.console.paginator import CappedCountPaginator

    monkeypatch.setattr(CappedCountPaginator, "cap", 2)
    monkeypatch.setattr("payments.admin.PaymentAdmin.list_per_page", 1)
    for _ in range(4):
        start_payment("hosted")
    html = support_client.get(CHANGELIST).content.decode()
    assert "more than 2" in html
    last = support_client.get(CHANGELIST, {"p": 4})  # past the counted pages: still served
    assert last.status_code == 200 and len(last.context["cl"].result_list) == 1
    assert support_client.get(CHANGELIST, {"p": 9}).status_code in (200, 302)


def many_payments(count: int) -> None:
    for _ in range(count):
        start_payment("hosted")


def test_the_list_costs_the_same_queries_for_one_or_many_payments(support_client, django_assert_num_queries):
    from django.db import connection

    # Unfiltered, PostgreSQL first reads the table's size estimate (pg_class) to skip the count when it is large.
    unfiltered = CHANGELIST_QUERIES + (connection.vendor == "postgresql")
    many_payments(1)
    with django_assert_num_queries(unfiltered):
        assert support_client.get(CHANGELIST).status_code == 200
    many_payments(24)
    with django_assert_num_queries(unfiltered):
        response = support_client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == 25
    with django_assert_num_queries(CHANGELIST_QUERIES + 1):  # + the orders looked up by the search
        assert support_client.get(CHANGELIST, {"q": "txn_none", "stuck": "yes"}).status_code == 200


def add_related_rows(payment: Payment, count: int) -> None:
    now = timezone.now()
    PaymentTransition.objects.bulk_create(
        PaymentTransition(payment=payment, from_state="pending", to_state="pending", source="poller",
                          reason=f"check {i}", payload={"n": i}) for i in range(count))
    GatewayCall.objects.bulk_create(
        GatewayCall(payment=payment, gateway="simulator", operation="retrieve", method="GET", url="http://psp/x",
                    request_body={"card_number": "4242424242424242"}, response_body={"status": "pending"},
                    status_code=200, outcome="ok", duration_ms=5) for _ in range(count))
    WebhookEvent.objects.bulk_create(
        WebhookEvent(gateway="simulator", event_id=f"evt_{uuid.uuid4().hex}", event_type="transaction.pending",
                     body='{"id": "evt"}', payment=payment, attempts=1, processed_at=now) for _ in range(count))
    Refund.objects.bulk_create(
        Refund(payment=payment, amount_minor=1, currency="EUR", reason="test", state="failed") for _ in range(count))
    Discrepancy.objects.bulk_create(
        Discrepancy(kind="late_event", dedupe_key=f"d:{uuid.uuid4()}", gateway="simulator", payment=payment,
                    summary="late", status="closed", resolved_by_name="sam", resolved_at=now, resolution="ok")
        for _ in range(count))
    StaffAction.objects.bulk_create(
        StaffAction(action="check_payment", actor_name="sam", payment=payment, outcome="Still pending.")
        for _ in range(count))


def test_the_payment_page_costs_the_same_queries_whatever_its_history(support_client,
                                                                       django_assert_num_queries):
    small, large = start_payment("hosted"), start_payment("hosted")
    add_related_rows(small, 1)
    add_related_rows(large, 40)
    # Warm the per-process content type cache, as any running server has.
    support_client.get(reverse("admin:payments_payment_change", args=[start_payment("hosted").pk]))
    for payment, rows in ((small, 1), (large, 40)):
        with django_assert_num_queries(PAYMENT_PAGE_QUERIES):
            response = support_client.get(reverse("admin:payments_payment_change", args=[payment.pk]))
        html = response.content.decode()
        # Every row is on the page: six kinds, each closed discrepancy's closing, and the "created" transition.
        assert len(response.context["timeline"].entries) == 6 * rows + rows + 1
        assert "4242424242424242" not in html and "[redacted]" in html


def test_the_timeline_is_newest_first_and_says_who_did_what(support_client):
    payment = start_payment("hosted")
    PaymentTransition.objects.create(payment=payment, from_state="created", to_state="created", source="staff",
                                     actor_name="sam", reason="looked at it")
    PaymentTransition.objects.filter(reason="looked at it").update(created_at=timezone.now() + timedelta(minutes=1))
    response = support_client.get(reverse("admin:payments_payment_change", args=[payment.pk]))
    entries = response.context["timeline"].entries
    assert [e.detail for e in entries] == ["looked at it", "hosted payment started"]
    assert entries[0].who == "sam (staff)" and entries[1].who == "Customer"
    assert "why-open" in response.content.decode()


def test_the_open_counts_on_the_index_match_the_lists_they_link_to(support_client, settings):
    settings.PAYMENT_ALERT_AFTER_MINUTES = 60
    fresh = start_payment("hosted")
    a_while = start_payment("hosted")
    Payment.objects.filter(pk=a_while.pk).update(created_at=timezone.now() - timedelta(minutes=7))
    stuck = make_stuck(start_payment("hosted"))
    done = start_payment("hosted")
    Payment.objects.filter(pk=done.pk).update(state="declined", created_at=timezone.now() - timedelta(hours=5))
    html = support_client.get(reverse("admin:index")).content.decode()
    expected = {"open-now": {fresh, a_while, stuck}, "open-while": {a_while, stuck}, "stuck": {stuck}}
    links = {"open-now": "?open=now", "open-while": "?open=5min", "stuck": "?stuck=yes"}
    for name, payments in expected.items():
        assert f'data-testid="{name}-count">{len(payments)}<' in html, name
        assert f'href="{CHANGELIST}{links[name]}"' in html
        listed = shown_ids(support_client.get(CHANGELIST + links[name]))
        assert listed == {str(p.pk)[:8] for p in payments}, name


def test_the_index_reads_the_payments_table_once_for_its_three_counts(support_client):
    start_payment("hosted")
    # Open now, open > 5 min and stuck are one aggregate: no more queries than the stuck count alone was.
    with CaptureQueriesContext(connection) as queries:
        support_client.get(reverse("admin:index"))
    payment_counts = [q["sql"] for q in queries if 'FROM "payments_payment"' in q["sql"]]
    assert len(payment_counts) == 1, payment_counts


RAW_TIMEOUT = ("ReadTimeout: HTTPConnectionPool(host='127.0.0.1', port=8099): Read timed out. "
               "(read timeout=2)")


def test_the_payment_page_speaks_plain_words_and_times(support_client):
    payment = start_payment("hosted")
    GatewayCall.objects.create(payment=payment, gateway="simulator", operation="create_session", method="POST",
                               url="http://127.0.0.1:8099/v1/sessions", outcome="unknown", error=RAW_TIMEOUT,
                               duration_ms=2001)
    PaymentTransition.objects.create(payment=payment, from_state="created", to_state="unknown",
                                     source="psp_response", reason=RAW_TIMEOUT)
    due = timezone.now() - timedelta(seconds=5)
    Payment.objects.filter(pk=payment.pk).update(next_check_at=due)
    html = support_client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content.decode()
    why = html[html.index('data-testid="why-open"'):]
    why = why[:why.index("</p>")]
    assert "No answer (the PSP timed out, failed or could not be reached)" in why
    assert "next automatic check due now" in why and "0 minutes" not in why and "5xx" not in html
    timeline = html[html.index('data-testid="timeline"'):]
    assert "The PSP did not answer in time." in timeline
    # The raw text is kept for an engineer, folded away in the call's data, never in the words above it.
    assert timeline.count("ReadTimeout") == 1
    before = timeline[:timeline.index("ReadTimeout")]
    assert before.rfind("<pre") > before.rfind("</pre>")
    later = timezone.now() + timedelta(minutes=30)
    Payment.objects.filter(pk=payment.pk).update(next_check_at=later)
    html = support_client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content.decode()
    assert f"next automatic check at {timezone.localtime(later):%-d %b, %H:%M}" in html


def test_discrepancy_summaries_give_amounts_as_money(psp):
    from payments.gateways.base import GatewayResult, PspStatus
    from payments.services import payment_apply_result

    payment = start_payment("hosted")
    payment_apply_result(payment_id=payment.pk, source="webhook", result=GatewayResult(
        status=PspStatus.CAPTURED, psp_reference="txn_x", amount_minor=3800, amount_captured_minor=3800,
        currency="EUR"))
    summary = Discrepancy.objects.get(kind="amount_mismatch").summary
    assert summary == "The PSP captured €38.00; the order is €12.50"


def test_the_403_page_leads_staff_back_to_the_console(support_client):
    response = support_client.get(reverse("admin:auth_user_changelist"))
    assert response.status_code == 403
    html = response.content.decode()
    assert f'href="{reverse("admin:index")}"' in html and "Back to the support console" in html
