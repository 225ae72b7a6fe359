"""Run localstripe (a fake Stripe, GPL-3.0, test-only) on 127.0.0.1 for the test suite.

Usage: python tests/stripe/localstripe_server.py PORT

Started as a subprocess by tests/stripe/conftest.py; the shop never imports
localstripe. Three things are added here so that it behaves like Stripe where
our adapter depends on it:

- it keeps nothing on disk (its CLI writes /tmp/localstripe.pickle and binds
  every interface);
- `Idempotency-Key` is honoured as Stripe documents it: a POST repeated with
  the same key and the same parameters gets the first answer again (marked
  `Idempotent-Replayed: true`), with other parameters a 400 idempotency_error;
- a PaymentMethod can be created from a card token (`card[token]=tok_...`),
  which localstripe's own Stripe.js stand-in produces (it has no
  createPaymentMethod);
- a data reset (`DELETE /_config/data`) also drops the webhooks not yet
  delivered (localstripe sends each about a second late), so that one test's
  events never reach the next test's shop;
- a PaymentIntent accepts `description` and `return_url`; with a return_url,
  a card that needs 3-D Secure gets Stripe's `redirect_to_url` next action,
  pointing at `GET /_config/3ds/<id>` (add `?fail=1` to fail it), a stand-in
  for Stripe's authentication page that sends the customer back to the
  return_url.
"""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import urlencode

import localstripe.resources as resources
import localstripe.server as server
import localstripe.webhooks as webhooks
from aiohttp import web

resources.store.dump_to_disk = lambda: None

_replays: dict[str, tuple[bytes, web.Response]] = {}


@web.middleware
async def idempotency(request: web.Request, handler):
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    body = await request.read()
    scoped = f"{request.headers.get('Authorization', '')} {key}"
    if scoped in _replays:
        first_body, first = _replays[scoped]
        if first_body != body:
            return web.json_response({"error": {
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same parameters "
                           "they were first used with."}}, status=400)
        return web.Response(body=first.body, status=first.status, content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
    response = await handler(request)
    if response.status < 500 and isinstance(response, web.Response):
        _replays[scoped] = (body, response)
    return response


_undelivered: set[asyncio.Task] = set()


def _schedule_webhook(event) -> None:
    task = asyncio.ensure_future(webhooks._send_webhook(event))
    _undelivered.add(task)
    task.add_done_callback(_undelivered.discard)


resources.schedule_webhook = _schedule_webhook


@web.middleware
async def forget_everything_on_reset(request: web.Request, handler):
    if request.method == "DELETE" and request.path == "/_config/data":
        _replays.clear()
        for task in list(_undelivered):
            task.cancel()
    return await handler(request)


_original_payment_method_init = resources.PaymentMethod.__init__


def _payment_method_init(self, type=None, card=None, **kwargs):  # noqa: A002 - Stripe's parameter name
    if type == "card" and isinstance(card, dict) and set(card) == {"token"}:
        token = resources.Token._api_retrieve(card["token"])
        card = {"number": token.card._card_number, "exp_month": token.card.exp_month,
                "exp_year": token.card.exp_year, "cvc": "123"}
    _original_payment_method_init(self, type=type, card=card, **kwargs)


resources.PaymentMethod.__init__ = _payment_method_init


_original_payment_intent_create = resources.PaymentIntent._api_create.__func__
_base_url = ""


def _payment_intent_create(cls, return_url=None, description=None, **data):
    intent = _original_payment_intent_create(cls, **data)
    intent.description = description
    intent._return_url = return_url
    if return_url and intent.next_action:
        intent.next_action = {"type": "redirect_to_url", "redirect_to_url": {
            "url": f"{_base_url}/_config/3ds/{intent.id}", "return_url": return_url}}
    return intent


resources.PaymentIntent._api_create = classmethod(_payment_intent_create)


async def three_d_secure(request: web.Request) -> web.Response:
    """The customer on Stripe's authentication page: approve (or ?fail=1), then back to the shop."""
    intent = resources.PaymentIntent._api_retrieve(request.match_info["id"])
    resources.PaymentIntent._api_authenticate(intent.id, client_secret=intent.client_secret,
                                              success="fail" not in request.query)
    query = urlencode({"payment_intent": intent.id, "payment_intent_client_secret": intent.client_secret})
    raise web.HTTPFound(f"{intent._return_url}?{query}")


def main() -> None:
    global _base_url
    port = int(sys.argv[1])
    _base_url = f"http://127.0.0.1:{port}"
    app = server.app
    app.router.add_get("/_config/3ds/{id}", three_d_secure)
    # Outermost, so that they see localstripe's error answers as responses.
    app.middlewares.insert(0, idempotency)
    app.middlewares.insert(0, forget_everything_on_reset)
    print(f"localstripe listening on http://127.0.0.1:{port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
