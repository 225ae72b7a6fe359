"""Run a coroutine to completion from a sync test."""

import asyncio
from concurrent.futures import ThreadPoolExecutor


def run(coro):
    # In a thread of its own: Playwright's sync API keeps an event loop running
    # in the main thread once a browser test has run in the same session.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
