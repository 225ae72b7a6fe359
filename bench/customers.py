"""Customers that buy over HTTP, as a browser would, with the habits that break shops.

One `Customer` follows one `CheckoutPlan`: product page, add to cart, checkout
form (with its CSRF and one-time token), order page, then "Pay" on the PSP's
hosted page or with the integrated card form (a token from the simulator's
/v1/tokens, then our /pay/card/), and waits on the status page by polling
status.json like payment-status.js does. Every request is timed by kind.

Every loop is bounded: a customer makes at most MAX_REQUESTS requests and
gives up after MAX_SECONDS, whatever the servers do.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import requests

from bench.plan import CARDS, CheckoutPlan

PUBLIC_KEY = "pk_sim_test"
MAX_REQUESTS = 80
MAX_SECONDS = 120.0
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_CHECKOUT_TOKEN = re.compile(r'name="checkout_token" value="([^"]+)"')
_STATUS_BOX = re.compile(r'id="payment-status"[^>]*data-final="(true|false)" data-state="([a-z_]+)" '
                         r'data-action-url="([^"]*)"')
_PAYMENT_PATH = re.compile(r"/payments/([0-9a-f-]{36})/")
_ORDER_PATH = re.compile(r"^/orders/([^/]+)/([^/]+)/$")

FINAL_UNPAID = ("declined", "failed", "cancelled", "expired")


class GaveUp(Exception):
    """The customer stops: too many requests, too long, or the shop kept failing."""


@dataclass
class Timings:
    """Request latencies by kind, shared by all customers (thread-safe)."""

    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float, ok: bool) -> None:
        with self.lock:
            self.samples[kind].append(seconds)
            if not ok:
                self.errors[kind] += 1

    def shop_requests(self) -> int:
        return sum(len(v) for k, v in self.samples.items() if ":" not in k)


@dataclass
class Outcome:
    index: int
    order_number: str = ""
    result: str = "no_order"  # paid | declined | failed | cancelled | abandoned | closed_browser | ...
    payments_seen: set[str] = field(default_factory=set)
    note: str = ""


class Browser:
    """One tab: a cookie jar, the shop's and the PSP's addresses, and a request budget."""

    def __init__(self, shop: str, psp: str, timings: Timings, budget: list[int], deadline: float,
                 cookies=None, poll_start: float = 1.0, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()
        self.shop = shop
        self.psp = psp
        self.timings = timings
        self.budget = budget  # shared by the tabs of one customer
        self.deadline = deadline
        self.poll_start = poll_start
        self.http = requests.Session()
        self.http.trust_env = False
        if cookies is not None:
            self.http.cookies.update(cookies)

    def tab(self) -> Browser:
        """A second tab of the same browser: same cookies, same budget."""
        return Browser(self.shop, self.psp, self.timings, self.budget, self.deadline, self.http.cookies,
                       self.poll_start, self.stop)

    def _url(self, path_or_url: str) -> str:
        return path_or_url if path_or_url.startswith("http") else self.shop + path_or_url

    def send(self, kind: str, method: str, url: str, *, retries: int = 3, **kwargs) -> requests.Response:
        """One request; a connection error or a 5xx is retried like a customer pressing reload."""
        url = self._url(url)
        for attempt in range(retries + 1):
            if self.budget[0] <= 0:
                raise GaveUp("request budget used up")
            if time.monotonic() > self.deadline:
                raise GaveUp("out of time")
            if self.stop.is_set():
                raise GaveUp("the run was stopped")
            self.budget[0] -= 1
            start = time.monotonic()
            try:
                response = self.http.request(method, url, allow_redirects=False, timeout=(3, 20), **kwargs)
            except requests.RequestException:
                self.timings.add(kind, time.monotonic() - start, ok=False)
            else:
                ok = response.status_code < 500
                self.timings.add(kind, time.monotonic() - start, ok=ok)
                if ok:
                    return response
            if attempt < retries:
                time.sleep(0.5 + attempt)
        raise GaveUp(f"{kind}: the server kept failing")

    def get(self, kind: str, url: str, **kwargs) -> requests.Response:
        return self.send(kind, "GET", url, **kwargs)

    def post(self, kind: str, url: str, **kwargs) -> requests.Response:
        return self.send(kind, "POST", url, **kwargs)


def _location(response: requests.Response) -> str:
    """Where a redirect goes, as an absolute URL (the PSP's own redirects are relative)."""
    if response.status_code not in (301, 302, 303, 307, 308):
        return ""
    return urljoin(response.url, response.headers.get("Location", ""))


def _csrf(html: str) -> str:
    found = _CSRF.search(html)
    if not found:
        raise GaveUp("no CSRF token on the page")
    return found.group(1)


class Customer:
    """Buys one thing according to a plan; returns what they saw."""

    def __init__(self, plan: CheckoutPlan, *, shop: str, psp: str, products: list[tuple[int, str]],
                 timings: Timings, poll_start: float = 1.0, wait_seconds: float = 30.0,
                 stop: threading.Event | None = None) -> None:
        self.plan = plan
        self.products = products
        self.wait_seconds = wait_seconds
        self.browser = Browser(shop, psp, timings, [MAX_REQUESTS], time.monotonic() + MAX_SECONDS,
                               poll_start=poll_start, stop=stop)
        self.outcome = Outcome(plan.index)
        self.cancelled_once = False

    # -- the storefront --------------------------------------------------------
    def run(self) -> Outcome:
        try:
            order_path = self.check_out()
            self.outcome.order_number = _ORDER_PATH.match(order_path).group(1)
            self.pay(order_path)
        except GaveUp as exc:
            self.outcome.note = str(exc)
            if self.outcome.result in ("no_order", "paying"):
                self.outcome.result = "gave_up"
        return self.outcome

    def check_out(self) -> str:
        b = self.browser
        product_id, slug = self.products[self.plan.product]
        page = b.get("product", f"/products/{slug}/")
        added = b.post("cart_add", f"/cart/add/{product_id}/", data={"quantity": 1,
                                                                     "csrfmiddlewaretoken": _csrf(page.text)})
        if added.status_code != 302:
            raise GaveUp(f"add to cart answered {added.status_code}")
        b.get("cart", _location(added))
        form = b.get("checkout_form", "/checkout/")
        token = _CHECKOUT_TOKEN.search(form.text)
        if not token:
            raise GaveUp(f"no checkout form ({form.status_code})")
        data = {"csrfmiddlewaretoken": _csrf(form.text), "checkout_token": token.group(1),
                "email": f"customer{self.plan.index}@example.com", "full_name": f"Customer {self.plan.index}",
                "address_line1": "1 Ledger Lane", "address_line2": "", "city": "Berlin", "postal_code": "10115",
                "country": "DE"}
        clicks = 2 if self.plan.double_submit_checkout else 1
        answers = _at_once(clicks, lambda i: (b if i == 0 else b.tab()).post("checkout_submit", "/checkout/",
                                                                              data=data))
        locations = {_location(a) for a in answers if not isinstance(a, Exception)}
        locations.discard("")
        if len(locations) != 1:
            raise GaveUp(f"checkout gave {len(locations)} different orders: {locations}")
        return urlsplit(locations.pop()).path

    def pay(self, order_path: str) -> None:
        attempts = 2 if self.plan.retry_after_failure else 1
        card = self.plan.card
        for attempt in range(attempts):
            order_page = self.browser.get("order_page", order_path)
            if 'data-testid="pay-hosted"' not in order_page.text:
                self.outcome.result = "nothing_to_pay"
                return
            csrf = _csrf(order_page.text)
            self.outcome.result = "paying"
            if self.plan.two_tabs and attempt == 0:
                tabs = [self.browser, self.browser.tab()]
                results = _at_once(2, lambda i, csrf=csrf, card=card, tabs=tabs: self._pay_once(
                    order_path, csrf, card, flow=("hosted", "direct")[i], browser=tabs[i]))
                seen = [r for r in results if isinstance(r, str)]
                if not seen:
                    raise GaveUp(f"both tabs gave up: {results[0]}")
                result = "captured" if "captured" in seen else seen[0]
            else:
                result = self._pay_once(order_path, csrf, card, flow=self.plan.flow, browser=self.browser)
            self.outcome.result = "paid" if result == "captured" else result
            if result not in FINAL_UNPAID:
                return
            card = "success"

    # -- paying ----------------------------------------------------------------
    def _pay_once(self, order_path: str, csrf: str, card: str, *, flow: str, browser: Browser) -> str:
        number, token = _ORDER_PATH.match(order_path).groups()
        if flow == "hosted":
            url = f"/payments/orders/{number}/{token}/pay/hosted/"
            answers = _at_once(self.plan.clicks, lambda i: (browser if i == 0 else browser.tab()).post(
                "pay_hosted", url, data={"csrfmiddlewaretoken": csrf}))
        else:
            card_token = self._card_token(browser, card)
            if not card_token:
                return "no_token"
            url = f"/payments/orders/{number}/{token}/pay/card/"
            answers = _at_once(self.plan.clicks, lambda i: (browser if i == 0 else browser.tab()).post(
                "pay_card", url, data={"csrfmiddlewaretoken": csrf, "card_token": card_token}))
        answers = [a for a in answers if not isinstance(a, Exception)]
        if not answers:
            raise GaveUp("every Pay click failed")
        locations = [_location(a) for a in answers]
        to_psp = next((loc for loc in locations if loc.startswith(browser.psp)), "")
        if to_psp:
            return self._on_hosted_page(browser, to_psp, card)
        status = next((loc for loc in locations if _PAYMENT_PATH.search(loc)), "")
        if status:
            self.outcome.payments_seen.add(_PAYMENT_PATH.search(status).group(1))
            if flow == "direct" and self.plan.abandon:
                return "closed_browser"
            return self._wait(browser, urlsplit(status).path, card)
        # Back on the order page with a message (already paid, or a payment in progress elsewhere).
        browser.get("order_page", order_path)
        return "refused"

    def _card_token(self, browser: Browser, card: str) -> str:
        """The card form's script: card details go to the PSP, only the token comes to us."""
        body = {"number": CARDS[card], "exp_month": 12, "exp_year": 2034, "cvc": "123"}
        for _ in range(4):  # the customer presses Pay again after "could not check your card"
            if not _has_budget(browser):
                break
            try:
                response = browser.send("psp:token", "POST", f"{browser.psp}/v1/tokens", retries=0, json=body,
                                        headers={"Authorization": f"Bearer {PUBLIC_KEY}"})
            except GaveUp:
                response = None
            if response is not None and response.status_code == 201:
                return response.json()["id"]
            time.sleep(0.3)
        return ""

    def _on_hosted_page(self, browser: Browser, page_url: str, card: str, status_path: str = "") -> str:
        browser.get("psp:hosted_page", page_url)
        if self.plan.abandon:
            return "abandoned"
        if self.plan.cancel_on_psp and not self.cancelled_once:
            self.cancelled_once = True
            answer = browser.post("psp:hosted_submit", page_url, data={"action": "cancel"})
        else:
            answer = browser.post("psp:hosted_submit", page_url, data={
                "number": CARDS[card], "expiry": "12/34", "cvc": "123", "name": "Ada Lovelace", "action": "pay"})
        back = _location(answer)
        if back.startswith(browser.psp):
            # The authentication step, on the same page.
            answer = browser.post("psp:action", back, data={"action": "approve" if self.plan.approve_3ds else "fail"})
            back = _location(answer)
        if not back:
            # The PSP's page only shows an outcome (the card was already given): back to our status page.
            if status_path:
                return self._wait(browser, status_path, card, follow_action=False)
            raise GaveUp(f"the PSP's page answered {answer.status_code} with no way back")
        found = _PAYMENT_PATH.search(back)
        if found:
            self.outcome.payments_seen.add(found.group(1))
        returned = browser.get("return", urlsplit(back).path + "?" + urlsplit(back).query)
        status = _location(returned)
        if not status:
            raise GaveUp(f"the return page answered {returned.status_code}")
        return self._wait(browser, urlsplit(status).path, card)

    def _wait(self, browser: Browser, status_path: str, card: str, follow_action: bool = True) -> str:
        """The status page: poll status.json until final; follow a "continue to the payment page" link."""
        deadline = time.monotonic() + self.wait_seconds
        followed_action = not follow_action
        while True:
            page = browser.get("status_page", status_path)
            box = _STATUS_BOX.search(page.text)
            if not box:
                raise GaveUp(f"no status on the status page ({page.status_code})")
            final, state, action = box.group(1) == "true", box.group(2), box.group(3).replace("&amp;", "&")
            if final:
                return state
            if action and not followed_action:
                followed_action = True
                if action.startswith(browser.psp + "/action/"):
                    answer = browser.post("psp:action", action,
                                          data={"action": "approve" if self.plan.approve_3ds else "fail"})
                    back = _location(answer)
                    if back:
                        browser.get("return", urlsplit(back).path + "?" + urlsplit(back).query)
                    continue
                return self._on_hosted_page(browser, action, card, status_path)
            delay = browser.poll_start
            while True:
                if time.monotonic() > deadline:
                    return f"left_while_{state}"
                if browser.stop.wait(delay):
                    raise GaveUp("the run was stopped")
                delay = min(delay * 1.5, 10.0)
                data = browser.get("status_json", status_path + "status.json").json()
                if data.get("final") or data.get("state") != state or (data.get("action_url") or "") != action:
                    break  # payment-status.js reloads the page


def _has_budget(browser: Browser) -> bool:
    return browser.budget[0] > 0 and time.monotonic() < browser.deadline


def _at_once(count: int, work) -> list:
    """Run work(i) for i in range(count) at the same moment (a double or triple click)."""
    if count == 1:
        return [work(0)]
    barrier = threading.Barrier(count)

    def go(i: int):
        try:
            barrier.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        try:
            return work(i)
        except (GaveUp, requests.RequestException) as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(go, range(count)))
