"""The seeded schedule of a run: what each customer does and when each fault fires.

Everything here is a pure function of (seed, checkouts, faults on/off), so the
same seed gives the same plan; `plan_digest` prints a fingerprint to compare
two runs. The simulator draws its own fault decisions from the same seed (its
decision stream is fixed; which request draws which decision depends on how
the concurrent requests interleave).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import astuple, dataclass

CARDS = {
    "success": "4242424242424242",
    "declined": "4000000000000002",
    "insufficient_funds": "4000000000009995",
    "async": "4000000000000077",
    "processing_error": "4000000000000119",
    "action": "4000000000003220",
}


@dataclass(frozen=True)
class CheckoutPlan:
    index: int
    product: int  # index into the catalog
    flow: str  # "hosted" | "direct"
    card: str  # a key of CARDS
    clicks: int  # 1, or 2-3 for a double / triple click on "Pay"
    double_submit_checkout: bool  # "Place order" clicked twice
    two_tabs: bool  # a second tab pays the same order by the other flow at the same time
    abandon: bool  # hosted: leaves on the PSP's page; direct: closes the browser after "Pay" (never polls)
    cancel_on_psp: bool  # hosted: presses "Cancel and return to shop"
    approve_3ds: bool  # on the authentication step: approve, else fail
    retry_after_failure: bool  # after a decline/failure/cancel, pays again with a good card


@dataclass(frozen=True)
class ProcessFault:
    at_checkout: int  # fires when this many checkouts have started
    kind: str  # a method of bench.process_faults.ProcessFaults: "kill_q_worker", "restart_postgres", ...


PSP_FAULT_RATES = {
    "latency_ms": [0, 250],
    "timeout_rate": 0.03,
    "timeout_seconds": 3.0,  # longer than the shop's PSP_READ_TIMEOUT: the shop sees a timeout
    "error_rate": 0.05,
    "lose_response_rate": 0.04,
    "webhook_drop_rate": 0.1,
    "webhook_duplicate_rate": 0.1,
    "webhook_delay_ms": 400,
    "webhook_reorder_rate": 0.1,
    "webhook_reorder_hold_ms": 1500,
}
# Always (faults or not): short timings so a run settles in minutes.
PSP_TIMINGS = {"async_delay_ms": 1500, "webhook_retry_base_ms": 500, "webhook_max_attempts": 10}


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def checkout_plans(*, seed: int, checkouts: int, faults: bool, products: int) -> list[CheckoutPlan]:
    rng = random.Random(f"customers:{seed}")
    plans = []
    for index in range(checkouts):
        if not faults:
            # The benchmark: every customer pays once with a good card, half on each flow.
            plans.append(CheckoutPlan(index, index % products, "hosted" if index % 2 == 0 else "direct", "success",
                                      1, False, False, False, False, True, False))
            continue
        flow = "hosted" if rng.random() < 0.5 else "direct"
        card = _pick(rng, {"success": 55, "declined": 10, "insufficient_funds": 5, "async": 10,
                           "processing_error": 5, "action": 15})
        clicks = int(_pick(rng, {"1": 80, "2": 12, "3": 8}))
        plans.append(CheckoutPlan(
            index=index,
            product=rng.randrange(products),
            flow=flow,
            card=card,
            clicks=clicks,
            double_submit_checkout=rng.random() < 0.1,
            two_tabs=rng.random() < 0.08,
            abandon=rng.random() < 0.08,
            cancel_on_psp=flow == "hosted" and rng.random() < 0.06,
            approve_3ds=rng.random() < 0.75,
            retry_after_failure=rng.random() < 0.6,
        ))
    return plans


def process_faults(*, seed: int, checkouts: int, faults: bool, cluster: bool = False) -> list[ProcessFault]:
    """At least 3 worker kills, 2 PostgreSQL restarts and 1 web worker kill; more for bigger runs.

    On the multi-node stack (`cluster`) also at least 2 each of: a whole worker
    node killed, a web node's master killed, a Redis crash-restart.
    """
    if not faults:
        return []
    rng = random.Random(f"processes:{seed}")
    wanted = {"kill_q_worker": max(3, checkouts // 250), "restart_postgres": max(2, checkouts // 1000),
              "kill_web_worker": max(1, checkouts // 500)}
    if cluster:
        wanted.update(kill_worker_node=max(2, checkouts // 500), kill_web_master=max(2, checkouts // 500),
                      restart_redis=max(2, checkouts // 1000))
    schedule = []
    for kind, count in wanted.items():
        for i in range(count):
            # Spread each kind over 10%..85% of the load, jittered within its slot.
            low = 0.10 + 0.75 * i / count
            high = 0.10 + 0.75 * (i + 1) / count
            schedule.append(ProcessFault(int(checkouts * rng.uniform(low, high)), kind))
    return sorted(schedule, key=lambda f: (f.at_checkout, f.kind))


def psp_faults(*, seed: int, faults: bool) -> dict:
    settings = {"seed": seed, **PSP_TIMINGS}
    if faults:
        settings.update(PSP_FAULT_RATES)
    return settings


def plan_digest(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        for item in part if isinstance(part, list) else [part]:
            digest.update(repr(astuple(item) if hasattr(item, "__dataclass_fields__") else item).encode())
    return digest.hexdigest()[:12]
