"""Pick a PSP adapter by name; settings are read at call time, never at import."""

from __future__ import annotations

from django.conf import settings

from payments.gateways.base import Gateway, Recorder


class UnknownGateway(LookupError):
    pass


GATEWAY_NAMES = ("simulator", "stripe")


def get_gateway(name: str | None = None, *, recorder: Recorder | None = None) -> Gateway:
    name = name or settings.PAYMENT_GATEWAY
    if name == "simulator":
        from payments.gateways.simulator import SimulatorGateway

        return SimulatorGateway(
            base_url=settings.PSP_SIMULATOR_URL,
            public_url=settings.PSP_SIMULATOR_PUBLIC_URL,
            secret_key=settings.PSP_SIMULATOR_SECRET_KEY,
            public_key=settings.PSP_SIMULATOR_PUBLIC_KEY,
            webhook_secret=settings.PSP_SIMULATOR_WEBHOOK_SECRET,
            connect_timeout=settings.PSP_CONNECT_TIMEOUT,
            read_timeout=settings.PSP_READ_TIMEOUT,
            webhook_tolerance=settings.WEBHOOK_TOLERANCE_SECONDS,
            recorder=recorder,
        )
    if name == "stripe":
        from payments.gateways.stripe import StripeGateway

        return StripeGateway(recorder=recorder)
    raise UnknownGateway(f"Unknown payment gateway {name!r}; use one of {', '.join(GATEWAY_NAMES)}.")
