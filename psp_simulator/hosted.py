"""Customer-facing HTML pages: the hosted card page and the authentication page.

``/hosted/{id}`` serves hosted-flow transactions (card form, then the
authentication step if the card needs it); ``/action/{id}`` serves the
authentication step of any transaction in ``requires_action`` (used by direct
charges).  Every customer decision ends with a 303 to the shop's
``return_url`` with ``transaction_id`` appended.
"""

from __future__ import annotations

import re
from html import escape
from urllib.parse import urlencode, urlsplit, urlunsplit

from .cards import TEST_CARDS, validate_form_card
from .errors import ApiError
from .httpio import Request, Response, html_response, redirect
from .models import (
    AUTHORIZED,
    CANCELLED,
    CAPTURED,
    DECLINED,
    FAILED,
    FLOW_HOSTED,
    PENDING,
    REQUIRES_ACTION,
    Transaction,
)
from .service import Simulator

_PATH = re.compile(r"^/(?P<kind>hosted|action)/(?P<id>[A-Za-z0-9_]+)/?$")

_ZERO_DECIMAL = {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
                 "VND", "VUV", "XAF", "XOF", "XPF"}
_THREE_DECIMAL = {"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"}

_CARD_LABELS = {
    "4242424242424242": "succeeds",
    "4000000000000002": "declined (card_declined)",
    "4000000000009995": "declined (insufficient_funds)",
    "4000000000000077": "stays pending, completes later",
    "4000000000000119": "fails (processing_error)",
    "4000000000003220": "requires authentication",
}
assert set(_CARD_LABELS) == set(TEST_CARDS)

_CSS = """
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
 background:#eef1f6;font:15px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,
 Helvetica,Arial,sans-serif;color:#1f2933}
main{width:100%;max-width:420px;margin:24px;background:#fff;border-radius:12px;
 box-shadow:0 10px 30px rgba(31,41,51,.12);overflow:hidden}
header{padding:20px 24px;background:#243b53;color:#fff}
header .brand{font-size:12px;letter-spacing:.08em;text-transform:uppercase;opacity:.75}
header .amount{font-size:28px;font-weight:600;margin-top:4px}
header .ref{font-size:13px;opacity:.8}
section{padding:20px 24px}
h1{font-size:20px;margin:0 0 8px}
label{display:block;font-size:13px;font-weight:600;margin:12px 0 4px;color:#486581}
input{width:100%;padding:10px 12px;border:1px solid #bcccdc;border-radius:6px;font-size:16px}
input:focus{outline:none;border-color:#2680c2;box-shadow:0 0 0 3px rgba(38,128,194,.2)}
.row{display:flex;gap:12px}.row>div{flex:1}
button,.button{display:block;width:100%;margin-top:16px;padding:12px;border:0;border-radius:6px;
 font-size:16px;font-weight:600;cursor:pointer;text-align:center;text-decoration:none}
.primary{background:#2680c2;color:#fff}.primary:hover{background:#186faf}
.secondary{background:#f0f4f8;color:#334e68}.secondary:hover{background:#d9e2ec}
.danger{background:#e12d39;color:#fff}.danger:hover{background:#cf1124}
.error{background:#ffe3e3;color:#a61b1b;border-radius:6px;padding:10px 12px;margin-bottom:8px}
.status{display:inline-block;padding:2px 10px;border-radius:999px;font-size:13px;
 font-weight:600;background:#f0f4f8;color:#334e68}
.status.ok{background:#e3f9e5;color:#207227}.status.bad{background:#ffe3e3;color:#a61b1b}
details{margin-top:18px;font-size:13px;color:#627d98}
table{border-collapse:collapse;margin-top:6px}td{padding:2px 8px 2px 0}
code{font-family:ui-monospace,Menlo,Consolas,monospace}
footer{padding:12px 24px;background:#f7f9fb;font-size:12px;color:#829ab1}
"""


def format_amount(amount: int, currency: str) -> str:
    """``1234, "EUR"`` -> ``"EUR 12.34"`` (respecting the currency's exponent)."""
    exponent = 0 if currency in _ZERO_DECIMAL else 3 if currency in _THREE_DECIMAL else 2
    if exponent == 0:
        return f"{currency} {amount:,}"
    major, minor = divmod(amount, 10 ** exponent)
    return f"{currency} {major:,}.{minor:0{exponent}d}"


def return_location(return_url: str, txn_id: str) -> str:
    """``return_url`` with ``transaction_id`` appended to its query string."""
    parts = urlsplit(return_url)
    extra = urlencode({"transaction_id": txn_id})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


# ---------------------------------------------------------------- rendering
def _page(title: str, txn: Transaction | None, content: str) -> str:
    header = ""
    if txn is not None:
        description = f"<div class='ref'>{escape(txn.description)}</div>" if txn.description else ""
        header = (f"<header><div class='brand'>PSP Simulator &middot; secure payment</div>"
                  f"<div class='amount'>{escape(format_amount(txn.amount, txn.currency))}</div>"
                  f"{description}<div class='ref'>Reference "
                  f"{escape(txn.merchant_reference)}</div></header>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>{header}"
            f"<section>{content}</section><footer>Test environment &mdash; no real money "
            f"moves.</footer></main></body></html>")


def _card_form(txn: Transaction, error: str | None = None, expiry: str = "",
               name: str = "") -> str:
    hint_rows = "".join(f"<tr><td><code>{number}</code></td><td>{escape(label)}</td></tr>"
                        for number, label in _CARD_LABELS.items())
    error_html = f"<div class='error' role='alert'>{escape(error)}</div>" if error else ""
    return f"""
<h1>Pay with card</h1>{error_html}
<form method="post" autocomplete="on">
 <label for="number">Card number</label>
 <input id="number" name="number" inputmode="numeric" autocomplete="cc-number"
  placeholder="4242 4242 4242 4242" required>
 <div class="row">
  <div><label for="expiry">Expiry (MM/YY)</label>
   <input id="expiry" name="expiry" autocomplete="cc-exp" placeholder="12/34"
    value="{escape(expiry)}" required></div>
  <div><label for="cvc">CVC</label>
   <input id="cvc" name="cvc" inputmode="numeric" autocomplete="cc-csc" placeholder="123"
    required></div>
 </div>
 <label for="name">Name on card</label>
 <input id="name" name="name" autocomplete="cc-name" value="{escape(name)}">
 <button class="primary" type="submit" name="action" value="pay">
  Pay {escape(format_amount(txn.amount, txn.currency))}</button>
 <button class="secondary" type="submit" name="action" value="cancel" formnovalidate>
  Cancel and return to shop</button>
</form>
<details><summary>Test cards</summary><table>{hint_rows}</table>
<p>Use any future expiry date and any CVC.</p></details>"""


def _auth_form(txn: Transaction) -> str:
    card = (f" with your {escape(txn.card_brand or 'card')} ending in "
            f"{escape(txn.card_last4)}" if txn.card_last4 else "")
    return f"""
<h1>Authenticate payment</h1>
<p>Your bank asks you to confirm this payment{card}.
This simulated challenge lets you choose the outcome.</p>
<form method="post">
 <button class="primary" type="submit" name="action" value="approve">Approve</button>
 <button class="danger" type="submit" name="action" value="fail">Fail authentication</button>
</form>"""


_OUTCOMES = {
    CAPTURED: ("Payment successful", "ok", "Your payment has been completed."),
    AUTHORIZED: ("Payment authorized", "ok", "Your payment has been authorized."),
    PENDING: ("Payment processing", "", "Your payment is being processed. The shop will be "
                                        "notified when it completes."),
    DECLINED: ("Payment declined", "bad", "Your payment was declined."),
    FAILED: ("Payment failed", "bad", "Your payment could not be processed."),
    CANCELLED: ("Payment cancelled", "bad", "The payment was cancelled."),
    REQUIRES_ACTION: ("Action required", "", "The payment needs authentication."),
}


def _outcome(txn: Transaction) -> str:
    title, tone, text = _OUTCOMES.get(txn.status, (txn.status, "", ""))
    if txn.status == PENDING and not txn.has_card:
        title, text = "Awaiting payment", "No payment has been made yet."
    detail = f"<p>{escape(txn.failure_message)}</p>" if txn.failure_message else ""
    back = (f"<a class='button primary' href='{escape(return_location(txn.return_url, txn.id))}'>"
            f"Return to shop</a>" if txn.return_url else "")
    return (f"<h1>{escape(title)}</h1><p><span class='status {tone}'>{escape(txn.status)}</span>"
            f"</p><p>{escape(text)}</p>{detail}{back}")


def _render(kind: str, txn: Transaction, *, status: int = 200, error: str | None = None,
            expiry: str = "", name: str = "") -> Response:
    if txn.status == REQUIRES_ACTION:
        return html_response(status, _page("Authenticate payment", txn, _auth_form(txn)))
    if kind == "hosted" and txn.status == PENDING and not txn.has_card:
        return html_response(status, _page("Pay", txn, _card_form(txn, error, expiry, name)))
    title = _OUTCOMES.get(txn.status, (txn.status,))[0]
    return html_response(status, _page(title, txn, _outcome(txn)))


def _finish(kind: str, txn: Transaction) -> Response:
    """After a customer decision: back to the shop, or the outcome page."""
    if txn.return_url:
        return redirect(return_location(txn.return_url, txn.id))
    return _render(kind, txn)


def _not_found() -> Response:
    return html_response(404, _page("Not found", None, "<h1>Payment not found</h1>"
                                    "<p>This payment page does not exist.</p>"))


# ---------------------------------------------------------------- request handling
def handle(sim: Simulator, request: Request) -> Response:
    found = _PATH.match(request.path)
    if not found:
        return _not_found()
    kind, txn_id = found["kind"], found["id"]
    txn = sim.get_transaction(txn_id)
    if txn is None or (kind == "hosted" and txn.flow != FLOW_HOSTED):
        return _not_found()
    if request.method == "GET":
        return _render(kind, txn)
    if request.method != "POST":
        return html_response(405, _page("Method not allowed", txn, "<h1>Method not allowed</h1>"))

    form = request.form()
    action = form.get("action", "")
    if txn.status == REQUIRES_ACTION:
        if action in ("approve", "fail"):
            return _finish(kind, sim.authenticate(txn.id, approve=action == "approve"))
        if action == "cancel":
            return _finish(kind, sim.customer_cancel(txn.id))
        return _render(kind, txn)
    if kind == "hosted" and txn.status == PENDING and not txn.has_card:
        if action == "cancel":
            return _finish(kind, sim.customer_cancel(txn.id))
        if action == "pay":
            expiry, name = form.get("expiry", ""), form.get("name", "")
            try:
                card = validate_form_card(form.get("number", ""), expiry, form.get("cvc", ""))
            except ApiError as exc:
                return _render(kind, txn, status=400, error=exc.message, expiry=expiry,
                               name=name)
            txn = sim.pay_hosted(txn.id, card)
            if txn.status == REQUIRES_ACTION:
                return redirect(f"/hosted/{txn.id}")
            return _finish(kind, txn)
    return _render(kind, txn)
