"""Runtime configuration: command-line flags with environment-variable defaults."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8099
DEFAULT_DB_PATH = "var/psp_simulator.sqlite3"
DEFAULT_SECRET_KEY = "sk_sim_test"
DEFAULT_PUBLIC_KEY = "pk_sim_test"
DEFAULT_WEBHOOK_SECRET = "whsec_sim_test"

_TRUE = {"1", "true", "yes", "on"}


@dataclass
class Config:
    """Everything the simulator needs to start.

    ``port`` may be 0 to bind an ephemeral port; ``public_url`` defaults to
    ``http://HOST:PORT`` of the bound socket.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    db_path: str = DEFAULT_DB_PATH
    webhook_url: str | None = None
    enable_control: bool = False
    secret_key: str = DEFAULT_SECRET_KEY
    public_key: str = DEFAULT_PUBLIC_KEY
    webhook_secret: str = DEFAULT_WEBHOOK_SECRET
    public_url: str | None = None
    log_level: str = "INFO"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


def _empty_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """Return the CLI parser; defaults come from ``PSP_SIM_*`` variables."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="python -m psp_simulator",
        description="Fake Payment Service Provider for local development and tests.",
    )
    parser.add_argument("--host", default=env.get("PSP_SIM_HOST", DEFAULT_HOST),
                        help="interface to bind (env PSP_SIM_HOST, default %(default)s)")
    parser.add_argument("--port", type=int, default=env.get("PSP_SIM_PORT", str(DEFAULT_PORT)),
                        help="TCP port, 0 = any free port (env PSP_SIM_PORT, default %(default)s)")
    parser.add_argument("--db", dest="db_path", default=env.get("PSP_SIM_DB", DEFAULT_DB_PATH),
                        help="SQLite file holding all state (env PSP_SIM_DB, default %(default)s)")
    parser.add_argument("--webhook-url", default=_empty_to_none(env.get("PSP_SIM_WEBHOOK_URL")),
                        help="where events are POSTed (env PSP_SIM_WEBHOOK_URL); none = store only")
    parser.add_argument("--enable-control", action="store_true",
                        default=_truthy(env.get("PSP_SIM_ENABLE_CONTROL")),
                        help="expose /control/* (env PSP_SIM_ENABLE_CONTROL=1)")
    parser.add_argument("--secret-key", default=env.get("PSP_SIM_SECRET_KEY", DEFAULT_SECRET_KEY),
                        help="server-side API key (env PSP_SIM_SECRET_KEY, default %(default)s)")
    parser.add_argument("--public-key", default=env.get("PSP_SIM_PUBLIC_KEY", DEFAULT_PUBLIC_KEY),
                        help="browser key for POST /v1/tokens (env PSP_SIM_PUBLIC_KEY, default %(default)s)")
    parser.add_argument("--webhook-secret",
                        default=env.get("PSP_SIM_WEBHOOK_SECRET", DEFAULT_WEBHOOK_SECRET),
                        help="HMAC key for Sim-Signature (env PSP_SIM_WEBHOOK_SECRET, default %(default)s)")
    parser.add_argument("--public-url", default=_empty_to_none(env.get("PSP_SIM_PUBLIC_URL")),
                        help="base URL used in redirect_url (env PSP_SIM_PUBLIC_URL, "
                             "default http://HOST:PORT)")
    parser.add_argument("--log-level", default=env.get("PSP_SIM_LOG_LEVEL", "INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        type=str.upper, help="log verbosity (env PSP_SIM_LOG_LEVEL, default %(default)s)")
    return parser


def parse_config(argv: Sequence[str] | None = None,
                 environ: Mapping[str, str] | None = None) -> Config:
    """Parse ``argv`` (default ``sys.argv[1:]``) into a :class:`Config`."""
    parser = build_parser(environ)
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    for name in ("secret_key", "public_key", "webhook_secret"):
        if not getattr(args, name):
            parser.error(f"--{name.replace('_', '-')} must not be empty")
    return Config(
        host=args.host,
        port=args.port,
        db_path=args.db_path,
        webhook_url=_empty_to_none(args.webhook_url),
        enable_control=bool(args.enable_control),
        secret_key=args.secret_key,
        public_key=args.public_key,
        webhook_secret=args.webhook_secret,
        public_url=_empty_to_none(args.public_url),
        log_level=args.log_level,
    )
