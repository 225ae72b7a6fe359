"""``python -m psp_simulator`` entry point."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Sequence

from .config import parse_config
from .server import make_server


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    logging.basicConfig(level=config.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = make_server(config)
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="psp-sim-http", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    print(f"psp_simulator listening on http://{host}:{port}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        logging.getLogger("psp_simulator").info("shutting down")
        server.shutdown()
        server.server_close()
        thread.join(5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
