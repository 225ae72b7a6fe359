"""Payments through the real simulator process: cards, hosted page, capture, refunds."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

PK = "pk_sim_test"
RETURN_URL = "https://shop.example/checkout/return"

CARD_OUTCOMES = [
    # number, capture_method, status, failure_code
    ("4242424242424242", "automatic", "captured", None),
    ("4242424242424242", "manual", "authorized", None),
    ("5555555555554444", "automatic", "captured", None),  # any other valid number succeeds
    ("4000000000000002", "automatic", "declined", "card_declined"),
    ("4000000000009995", "automatic", "declined", "insufficient_funds"),
    ("4000000000000119", "automatic", "failed", "processing_error"),
    ("4000000000000077", "automatic", "pending", None),
    ("4000000000003220", "automatic", "requires_action", None),
]


@pytest.mark.parametrize("number,capture_method,status,failure_code", CARD_OUTCOMES)
def test_direct_charge_outcome(sim, number, capture_method, status, failure_code):
    txn = sim.charge(number, capture_method=capture_method, metadata={"cart": "42"},
                     description="Two mugs")
    assert txn["object"] == "transaction" and txn["flow"] == "direct"
    assert txn["id"].startswith("txn_")
    assert txn["status"] == status
    assert txn["failure_code"] == failure_code
    assert (txn["failure_message"] is None) == (failure_code is None)
    assert txn["currency"] == "EUR" and txn["amount"] == 1000
    assert txn["amount_captured"] == (1000 if status == "captured" else 0)
    assert txn["card"] == {"brand": "mastercard" if number.startswith("5") else "visa",
                           "last4": number[-4:]}
    assert txn["metadata"] == {"cart": "42"} and txn["description"] == "Two mugs"
    assert txn["capture_method"] == capture_method
    assert isinstance(txn["created"], int) and isinstance(txn["updated"], int)
    if status == "requires_action":
        assert txn["redirect_url"] == f"{sim.base_url}/action/{txn['id']}"
    else:
        assert txn["redirect_url"] is None
    assert sim.txn(txn["id"]) == txn


@pytest.mark.parametrize("decision,status,failure_code", [
    ("approve", "captured", None), ("fail", "declined", "authentication_failed")])
def test_direct_charge_action_page(sim, decision, status, failure_code):
    txn = sim.charge("4000000000003220", return_url=RETURN_URL + "?step=3")
    page = sim.http.get(txn["redirect_url"])
    assert page.status_code == 200 and "Authenticate payment" in page.text
    answer = sim.http.post(txn["redirect_url"], data={"action": decision},
                           allow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["Location"] == f"{RETURN_URL}?step=3&transaction_id={txn['id']}"
    after = sim.txn(txn["id"])
    assert after["status"] == status and after["failure_code"] == failure_code
    # the page of a finished transaction just shows the outcome
    final_page = sim.http.get(txn["redirect_url"])
    assert final_page.status_code == 200 and status in final_page.text
    assert "Return to shop" in final_page.text


def _pay_hosted(sim, session, number, *, expiry="12/34", cvc="123"):
    return sim.http.post(session["redirect_url"], allow_redirects=False, data={
        "action": "pay", "number": number, "expiry": expiry, "cvc": cvc, "name": "Ada"})


@pytest.mark.parametrize("number,status,failure_code", [
    ("4242 4242 4242 4242", "captured", None),
    ("4000000000000002", "declined", "card_declined"),
    ("4000000000009995", "declined", "insufficient_funds"),
    ("4000000000000119", "failed", "processing_error"),
    ("4000000000000077", "pending", None),
])
def test_hosted_page_card_outcome(sim, number, status, failure_code):
    session = sim.session(description="Order #1")
    assert session["flow"] == "hosted" and session["status"] == "pending"
    assert session["card"] is None
    assert session["redirect_url"] == f"{sim.base_url}/hosted/{session['id']}"
    page = sim.http.get(session["redirect_url"])
    assert page.status_code == 200
    assert "EUR 25.00" in page.text and "Cancel and return to shop" in page.text
    assert 'name="number"' in page.text and 'name="cvc"' in page.text

    answer = _pay_hosted(sim, session, number)
    assert answer.status_code == 303
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "https://shop.example/return"
    assert parse_qs(location.query) == {"transaction_id": [session["id"]]}
    txn = sim.txn(session["id"])
    assert txn["status"] == status and txn["failure_code"] == failure_code
    assert txn["card"] == {"brand": "visa", "last4": number[-4:]}
    # a second visit shows the outcome instead of the form
    revisit = sim.http.get(session["redirect_url"])
    assert 'name="number"' not in revisit.text


@pytest.mark.parametrize("decision,capture_method,status", [
    ("approve", "automatic", "captured"), ("approve", "manual", "authorized"),
    ("fail", "automatic", "declined")])
def test_hosted_page_authentication_step(sim, decision, capture_method, status):
    session = sim.session(capture_method=capture_method)
    answer = _pay_hosted(sim, session, "4000000000003220")
    assert answer.status_code == 303  # back to the same page, which now asks for approval
    page = sim.http.get(sim.base_url + answer.headers["Location"])
    assert "Authenticate payment" in page.text
    assert sim.txn(session["id"])["status"] == "requires_action"
    done = sim.http.post(session["redirect_url"], data={"action": decision},
                         allow_redirects=False)
    assert done.status_code == 303
    assert done.headers["Location"] == f"https://shop.example/return?transaction_id={session['id']}"
    txn = sim.txn(session["id"])
    assert txn["status"] == status
    if decision == "fail":
        assert txn["failure_code"] == "authentication_failed"


def test_hosted_page_cancel_and_bad_card(sim):
    session = sim.session(return_url="https://shop.example/r?order=9")
    bad = _pay_hosted(sim, session, "4242424242424241")
    assert bad.status_code == 400 and "invalid" in bad.text.lower()
    expired = _pay_hosted(sim, session, "4242424242424242", expiry="01/20")
    assert expired.status_code == 400 and "expired" in expired.text
    assert sim.txn(session["id"])["status"] == "pending"
    cancel = sim.http.post(session["redirect_url"], data={"action": "cancel"},
                           allow_redirects=False)
    assert cancel.status_code == 303
    assert cancel.headers["Location"] == (
        f"https://shop.example/r?order=9&transaction_id={session['id']}")
    assert sim.txn(session["id"])["status"] == "cancelled"
    # a final transaction's page shows the outcome with a link back; POSTs change nothing
    again = _pay_hosted(sim, session, "4242424242424242")
    assert again.status_code == 200 and "cancelled" in again.text
    assert sim.txn(session["id"])["status"] == "cancelled"
    assert sim.http.get(f"{sim.base_url}/hosted/txn_unknown").status_code == 404


def test_manual_capture_full_and_partial(sim):
    full = sim.charge(capture_method="manual")
    captured = sim.post(f"/v1/transactions/{full['id']}/capture")
    assert captured.status_code == 200
    assert captured.json()["status"] == "captured"
    assert captured.json()["amount_captured"] == 1000
    again = sim.post(f"/v1/transactions/{full['id']}/capture")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_state"

    partial = sim.charge(capture_method="manual")
    too_much = sim.post(f"/v1/transactions/{partial['id']}/capture", {"amount": 1001})
    assert too_much.status_code == 400
    assert too_much.json()["error"]["code"] == "amount_too_large"
    assert too_much.json()["error"]["param"] == "amount"
    done = sim.post(f"/v1/transactions/{partial['id']}/capture", {"amount": 600})
    assert done.status_code == 200 and done.json()["amount_captured"] == 600

    automatic = sim.charge()
    not_authorized = sim.post(f"/v1/transactions/{automatic['id']}/capture")
    assert not_authorized.status_code == 409


def test_cancel_rules(sim):
    authorized = sim.charge(capture_method="manual")
    cancelled = sim.post(f"/v1/transactions/{authorized['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = sim.post(f"/v1/transactions/{authorized['id']}/cancel")
    assert again.status_code == 200 and again.json() == cancelled.json()

    session = sim.session()
    assert sim.post(f"/v1/transactions/{session['id']}/cancel").json()["status"] == "cancelled"
    action = sim.charge("4000000000003220")
    assert sim.post(f"/v1/transactions/{action['id']}/cancel").json()["status"] == "cancelled"

    captured = sim.charge()
    refused = sim.post(f"/v1/transactions/{captured['id']}/cancel")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "invalid_state"
    assert error["transaction"]["id"] == captured["id"]
    assert error["transaction"]["status"] == "captured"
    declined = sim.charge("4000000000000002")
    assert sim.post(f"/v1/transactions/{declined['id']}/cancel").status_code == 409


def test_refunds_partial_full_and_too_large(sim):
    txn = sim.charge(amount=5000)
    partial = sim.post(f"/v1/transactions/{txn['id']}/refunds",
                       {"amount": 1500, "merchant_reference": "rma-1"})
    assert partial.status_code == 201
    refund = partial.json()
    assert refund["object"] == "refund" and refund["id"].startswith("re_")
    assert refund["transaction_id"] == txn["id"]
    assert (refund["amount"], refund["currency"], refund["status"]) == (1500, "EUR", "succeeded")
    assert refund["merchant_reference"] == "rma-1"

    too_large = sim.post(f"/v1/transactions/{txn['id']}/refunds", {"amount": 3501})
    assert too_large.status_code == 400
    assert too_large.json()["error"]["code"] == "amount_too_large"
    assert too_large.json()["error"]["param"] == "amount"

    rest = sim.post(f"/v1/transactions/{txn['id']}/refunds")
    assert rest.status_code == 201 and rest.json()["amount"] == 3500
    assert rest.json()["merchant_reference"] is None
    after = sim.txn(txn["id"])
    assert after["status"] == "captured" and after["amount_refunded"] == 5000
    assert [r["amount"] for r in after["refunds"]] == [1500, 3500]
    nothing_left = sim.post(f"/v1/transactions/{txn['id']}/refunds", {"amount": 1})
    assert nothing_left.status_code == 400
    assert nothing_left.json()["error"]["code"] == "amount_too_large"

    authorized = sim.charge(capture_method="manual")
    wrong_state = sim.post(f"/v1/transactions/{authorized['id']}/refunds")
    assert wrong_state.status_code == 409
    assert wrong_state.json()["error"]["code"] == "invalid_state"
    zero = sim.post(f"/v1/transactions/{txn['id']}/refunds", {"amount": 0})
    assert zero.status_code == 400 and zero.json()["error"]["param"] == "amount"


def test_lookup_by_id_and_merchant_reference(sim):
    first = sim.charge("4000000000000002", merchant_reference="order-77")
    second = sim.charge(merchant_reference="order-77")
    sim.charge(merchant_reference="order-78")
    response = sim.get("/v1/transactions", params={"merchant_reference": "order-77"})
    assert response.status_code == 200
    listing = response.json()
    assert listing["object"] == "list" and listing["has_more"] is False
    assert [t["id"] for t in listing["data"]] == [first["id"], second["id"]]
    assert listing["data"][1]["status"] == "captured"

    missing = sim.get("/v1/transactions/txn_doesnotexist")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"
    assert sim.get("/v1/transactions", params={"merchant_reference": "nope"}).json()["data"] == []


def test_list_pagination_by_time_window(sim):
    ids = [sim.session(merchant_reference=f"page-{i}")["id"] for i in range(5)]
    created = [sim.txn(i)["created"] for i in ids]
    window = {"created_gte": min(created), "created_lt": max(created) + 1, "limit": 2}
    seen, pages, after = [], 0, None
    while True:
        params = dict(window, **({"starting_after": after} if after else {}))
        page = sim.get("/v1/transactions", params=params).json()
        pages += 1
        seen += [t["id"] for t in page["data"]]
        assert len(page["data"]) <= 2
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert seen == ids and pages == 3

    assert sim.get("/v1/transactions", params={"created_lt": min(created)}).json()["data"] == []
    later = sim.get("/v1/transactions", params={"created_gte": max(created) + 1}).json()
    assert later["data"] == [] and later["has_more"] is False
    # updated_* windows order by update time; a refund bumps "updated"
    by_update = sim.get("/v1/transactions",
                        params={"updated_gte": min(created), "limit": 100}).json()
    assert sorted(t["id"] for t in by_update["data"]) == sorted(ids)
    bad = sim.get("/v1/transactions", params={"limit": 101})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
    unknown_cursor = sim.get("/v1/transactions", params={"starting_after": "txn_nope"})
    assert unknown_cursor.status_code == 400
    assert unknown_cursor.json()["error"]["param"] == "starting_after"


def test_tokens_validation_single_use_and_cors(sim):
    good = sim.post("/v1/tokens", {"number": "4242 4242 4242 4242", "exp_month": "7",
                                   "exp_year": 2099, "cvc": "1234"}, key=PK,
                    headers={"Origin": "https://shop.example"})
    assert good.status_code == 201
    token = good.json()
    assert token["object"] == "token" and token["id"].startswith("tok_")
    assert token["used"] is False
    assert token["card"] == {"brand": "visa", "last4": "4242", "exp_month": 7, "exp_year": 2099}
    assert good.headers["Access-Control-Allow-Origin"] == "*"

    # the public key may also travel in the body, as field "key"
    by_field = sim.post("/v1/tokens", {"key": PK, "number": "4242424242424242",
                                       "exp_month": 1, "exp_year": 99, "cvc": "123"}, key=None)
    assert by_field.status_code == 201 and by_field.json()["card"]["exp_year"] == 2099

    preflight = sim.http.options(sim.base_url + "/v1/tokens", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]

    body = {"amount": 100, "currency": "EUR", "merchant_reference": "o", "token": token["id"]}
    assert sim.post("/v1/charges", body).status_code == 201
    reused = sim.post("/v1/charges", body)
    assert reused.status_code == 400
    assert reused.json()["error"]["code"] == "token_already_used"
    assert reused.json()["error"]["param"] == "token"
    unknown = sim.post("/v1/charges", dict(body, token="tok_nope"))
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "token"


@pytest.mark.parametrize("fields,param,code", [
    ({"number": "4242424242424241"}, "number", "invalid_number"),
    ({"number": "4242-4242-4242-4242"}, "number", "invalid_number"),
    ({"number": "42424242424"}, "number", "invalid_number"),
    ({"exp_month": 13}, "exp_month", "invalid_expiry"),
    ({"exp_year": 2020}, "exp_year", "invalid_expiry"),
    ({"cvc": "12"}, "cvc", "invalid_cvc"),
    ({"cvc": "12a"}, "cvc", "invalid_cvc"),
])
def test_token_validation_errors(sim, fields, param, code):
    body = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2099, "cvc": "123",
            **fields}
    response = sim.post("/v1/tokens", body, key=PK)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert (error["param"], error["code"]) == (param, code)
    assert "4242424242424241" not in response.text


@pytest.mark.parametrize("path,body,param", [
    ("/v1/sessions", {"currency": "EUR", "merchant_reference": "o",
                      "return_url": RETURN_URL}, "amount"),
    ("/v1/sessions", {"amount": "10", "currency": "EUR", "merchant_reference": "o",
                      "return_url": RETURN_URL}, "amount"),
    ("/v1/sessions", {"amount": 10, "currency": "EURO", "merchant_reference": "o",
                      "return_url": RETURN_URL}, "currency"),
    ("/v1/sessions", {"amount": 10, "currency": "EUR", "return_url": RETURN_URL},
     "merchant_reference"),
    ("/v1/sessions", {"amount": 10, "currency": "EUR", "merchant_reference": "o"}, "return_url"),
    ("/v1/sessions", {"amount": 10, "currency": "EUR", "merchant_reference": "o",
                      "return_url": "javascript:alert(1)"}, "return_url"),
    ("/v1/sessions", {"amount": 10, "currency": "EUR", "merchant_reference": "o",
                      "return_url": RETURN_URL, "capture_method": "later"}, "capture_method"),
    ("/v1/sessions", {"amount": 10, "currency": "EUR", "merchant_reference": "o",
                      "return_url": RETURN_URL, "metadata": [1]}, "metadata"),
    ("/v1/sessions", {"amount": 10, "currency": "EUR", "merchant_reference": "o",
                      "return_url": RETURN_URL, "colour": "red"}, "colour"),
    ("/v1/charges", {"amount": 10, "currency": "EUR", "merchant_reference": "o"}, "token"),
])
def test_bad_input_is_400_with_param(sim, path, body, param):
    response = sim.post(path, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"]


def test_invalid_json_and_unknown_route(sim):
    response = sim.request("POST", "/v1/sessions", data=b"{not json",
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert sim.get("/v1/nothing").status_code == 404
    assert sim.get("/v1/charges").status_code == 405


@pytest.mark.parametrize("path,key", [
    ("/v1/sessions", None), ("/v1/sessions", "sk_wrong"), ("/v1/charges", PK),
    ("/v1/tokens", "sk_sim_test"), ("/v1/tokens", None), ("/control/reset", "sk_wrong"),
])
def test_bad_api_key_is_401(sim, path, key):
    response = sim.post(path, {"amount": 10}, key=key)
    assert response.status_code == 401
    assert response.json() == {"error": {
        "type": "authentication_error", "code": "invalid_api_key",
        "message": response.json()["error"]["message"]}}
    assert sim.get("/v1/transactions", key="sk_wrong").status_code == 401


def test_browser_script(sim):
    response = sim.http.get(sim.base_url + "/js/v1.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/javascript")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "window.PSPSim" in response.text or "global.PSPSim" in response.text
    assert re.search(r"createToken\s*\(\s*publicKey,\s*baseUrl,\s*card\s*\)", response.text)
    assert "/v1/tokens" in response.text
