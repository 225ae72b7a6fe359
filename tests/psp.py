"""Talking to the PSP simulator in tests: its control API, and a customer on its pages."""

from __future__ import annotations

import requests

SECRET = "sk_sim_test"
PUBLIC = "pk_sim_test"

CARDS = {
    "success": "4242424242424242",
    "declined": "4000000000000002",
    "insufficient_funds": "4000000000009995",
    "async": "4000000000000077",
    "processing_error": "4000000000000119",
    "action": "4000000000003220",
}


class Simulator:
    """Control-API client plus the actions a customer takes on the PSP's pages."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {SECRET}"

    def control(self, method: str, path: str, **body) -> dict:
        response = self.http.request(method, f"{self.url}/control/{path}", json=body or None, timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self.control("POST", "reset")

    def faults(self, **faults) -> dict:
        return self.control("POST", "faults", **faults)

    def set_webhook_url(self, url: str) -> None:
        self.control("POST", "config", webhook_url=url)

    def flush_webhooks(self) -> dict:
        return self.control("POST", "webhooks/flush")

    def ledger(self) -> dict:
        return self.control("GET", "ledger")

    def transactions(self) -> list[dict]:
        return self.ledger()["transactions"]

    def complete(self, transaction_id: str, status: str = "captured") -> dict:
        return self.control("POST", f"transactions/{transaction_id}/complete", status=status)

    def token(self, card: str = CARDS["success"]) -> str:
        response = requests.post(f"{self.url}/v1/tokens", json={"number": card, "exp_month": 12, "exp_year": 2034,
                                                                 "cvc": "123"},
                                 headers={"Authorization": f"Bearer {PUBLIC}"}, timeout=10)
        response.raise_for_status()
        return response.json()["id"]

    def pay_on_hosted_page(self, redirect_url: str, card: str = CARDS["success"], *, approve: bool = True) -> str:
        """Fill in the hosted card form as a customer; returns where the PSP sends them back."""
        response = requests.post(redirect_url, data={"number": card, "expiry": "12/34", "cvc": "123",
                                                     "name": "Ada Lovelace", "action": "pay"},
                                 allow_redirects=False, timeout=10)
        assert response.status_code in (302, 303), response.text[:500]
        location = response.headers["Location"]
        if location.startswith(self.url) or location.startswith("/"):
            # The card needs the authentication step on the PSP's page.
            return self.authenticate(redirect_url, approve=approve)
        return location

    def authenticate(self, page_url: str, *, approve: bool = True) -> str:
        response = requests.post(page_url, data={"action": "approve" if approve else "fail"},
                                 allow_redirects=False, timeout=10)
        assert response.status_code in (302, 303), response.text[:500]
        return response.headers["Location"]

    def cancel_on_hosted_page(self, redirect_url: str) -> str:
        response = requests.post(redirect_url, data={"action": "cancel"}, allow_redirects=False, timeout=10)
        assert response.status_code in (302, 303), response.text[:500]
        return response.headers["Location"]
