"""The chaos run's own parts that need no stack: its seeded schedule, and how it counts lost and double charges."""

from collections import Counter

from bench.figures import Books, check_money
from bench.plan import checkout_plans, plan_digest, process_faults, psp_faults


def _plan(seed: int, checkouts: int = 500, faults: bool = True):
    return (checkout_plans(seed=seed, checkouts=checkouts, faults=faults, products=10),
            process_faults(seed=seed, checkouts=checkouts, faults=faults), psp_faults(seed=seed, faults=faults))


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another():
    assert _plan(7) == _plan(7)
    assert plan_digest(*_plan(7)[:2]) == plan_digest(*_plan(7)[:2]) != plan_digest(*_plan(8)[:2])


def test_the_schedule_has_the_required_process_faults_inside_the_load():
    for checkouts in (200, 10_000):
        schedule = process_faults(seed=3, checkouts=checkouts, faults=True)
        kinds = Counter(f.kind for f in schedule)
        assert kinds["kill_q_worker"] >= 3 and kinds["restart_postgres"] >= 2 and kinds["kill_web_worker"] >= 1
        assert all(0.1 * checkouts <= f.at_checkout <= 0.85 * checkouts for f in schedule)


def test_the_customer_mix_has_every_behaviour():
    plans = _plan(7)[0]
    assert {p.flow for p in plans} == {"hosted", "direct"}
    assert {p.card for p in plans} == {"success", "declined", "insufficient_funds", "async", "processing_error",
                                       "action"}
    assert {p.clicks for p in plans} == {1, 2, 3}
    for behaviour in ("double_submit_checkout", "two_tabs", "abandon", "cancel_on_psp", "retry_after_failure"):
        assert any(getattr(p, behaviour) for p in plans), behaviour
    assert _plan(7)[2]["error_rate"] > 0 and _plan(7)[2]["seed"] == 7


def test_the_benchmark_plan_has_no_faults_and_one_good_payment_each():
    plans, schedule, sim = _plan(7, faults=False)
    assert schedule == [] and "error_rate" not in sim
    assert {(p.card, p.clicks, p.two_tabs, p.abandon) for p in plans} == {("success", 1, False, False)}


def _txn(txn_id: str, payment_id: str, captured: int = 1000, refunded: int = 0, status: str = "captured") -> dict:
    return {"id": txn_id, "merchant_reference": payment_id, "status": status, "amount_captured": captured,
            "amount_refunded": refunded}


def test_money_check_finds_a_double_charge_and_a_lost_one():
    books = Books(payment_order={"p1": (1, "captured"), "p2": (1, "captured"), "p3": (2, "failed"),
                                 "p4": (3, "captured"), "p5": (3, "refunded")})
    ledger = {"transactions": [
        _txn("t1", "p1"), _txn("t2", "p2"),  # order 1 charged twice
        _txn("t3", "p3"),  # captured at the PSP, failed here: lost
        _txn("t4", "p4"), _txn("t5", "p5", refunded=1000),  # second charge refunded: not a double charge
        _txn("t6", "p6", status="declined"),
    ]}
    check = check_money(ledger, books)
    assert check.psp_captures == 5
    assert check.double_charges == ["order id 1: t1, t2"]
    assert check.lost_charges == ["t3 (p3: failed)"]


def test_money_check_is_clean_when_the_books_agree():
    books = Books(payment_order={"p1": (1, "captured"), "p2": (2, "declined")})
    ledger = {"transactions": [_txn("t1", "p1"), _txn("t2", "p2", status="declined")]}
    check = check_money(ledger, books)
    assert check.double_charges == [] and check.lost_charges == []
