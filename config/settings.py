"""Reckon settings: one module, driven by environment variables (see README)."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_int_list, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("RECKON_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if DEBUG:
        SECRET_KEY = "dev-only-insecure-key-never-use-in-production"  # noqa: S105
    else:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable "
            "(a long random string, the server's own), or DEBUG=1 for local development "
            "(scripts/manage runs a command for the local shop that way)."
        )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",  # first: its runserver serves HTTP and WebSocket (config/asgi.py)
    "config.apps.ReckonAdminConfig",  # django.contrib.admin with the console's site (config/staff_auth.py)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "django_fsm",
    "django_countries",
    "shop",
    "orders",
    "payments",
    "live",
    "notifications",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",  # first and last: request counts and latencies
    "django.middleware.security.SecurityMiddleware",
    "config.security.GatewayCSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "shop.middleware.CartCookieMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a locked-out sign-in into the lockout page
    "config.ops.RequestMetricsAfterMiddleware",  # django-prometheus's, robust to a bad Content-Length
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "shop.context_processors.cart_summary",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

# Databases: SQLite by default (embedded), PostgreSQL via DATABASE_URL.
_SQLITE_OPTIONS = {
    # Without these, concurrent writers (web + django-q2 workers) lose writes to
    # "database is locked"; see docs/architecture.md.
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(_SQLITE_OPTIONS)
# A pool of PostgreSQL connections per process (Django's own, on psycopg_pool),
# with DB_POOL_MAX_SIZE connections at most. config/asgi.py asks for it in the
# web server, whose WEB_THREADS threads share it. Under Django's ASGI handler,
# which ran each request's sync code in a thread of its own, persistent
# connections (CONN_MAX_AGE, one per thread) opened a connection per request
# and left it open until the garbage collector found it (a busy node ran
# PostgreSQL out of connections: bench/README.md); the pool bounds them
# whatever the server does with threads. The
# workers are one thread per process, where CONN_MAX_AGE does the job. Never
# in `manage.py qcluster`, whatever the environment says: django-q2 forks its
# workers, and a pool's connections and threads do not survive a fork (the
# chaos run's workers waited for connections until their tasks failed).
DB_POOL_MAX_SIZE = 0 if sys.argv[1:2] == ["qcluster"] else env_int("DB_POOL_MAX_SIZE", 0)
# The threads of a web process that run HTTP requests (config/asgi.py): two
# fewer than its pooled connections, which the live status's socket reads
# (database_sync_to_async, outside these threads) share, so no request and no
# socket waits for a connection.
WEB_THREADS = env_int("WEB_THREADS", max(1, DB_POOL_MAX_SIZE - 2) if DB_POOL_MAX_SIZE else 10)
if WEB_THREADS < 1:
    raise ImproperlyConfigured(f"WEB_THREADS must be at least 1; got {WEB_THREADS}.")
if DB_POOL_MAX_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django returns each after use
    # With conn_health_checks (above) Django has the pool check each connection
    # it hands out, so none is dead after a PostgreSQL restart.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1, "max_size": DB_POOL_MAX_SIZE, "timeout": 10,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Staff sign-in (config/staff_auth.py). Lockout by django-axes: AXES_FAILURE_LIMIT
# wrong passwords for one username, or from one address, lock both out for
# AXES_COOLOFF_MINUTES (a 429 page); a correct sign-in clears the count.
# `manage.py axes_reset_username NAME` lifts a lockout early.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 30))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # the address is REMOTE_ADDR, as for the rate limits
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_VERBOSE = False
# A second factor (django-otp: an authenticator app, or a backup code) for every
# staff session in the console. Turning it off is for a throwaway local shop only.
ADMIN_REQUIRE_OTP = env_bool("ADMIN_REQUIRE_OTP", True)
OTP_TOTP_ISSUER = env_str("SHOP_NAME", "Reckon")

# /metrics (config/ops.py) answers only these addresses, or a request with
# "Authorization: Bearer $METRICS_TOKEN". With several web processes per node,
# set PROMETHEUS_MULTIPROC_DIR to an empty folder so the request metrics add up.
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", ["127.0.0.1", "::1"])
METRICS_TOKEN = env_str("METRICS_TOKEN")
# The request latency histogram's buckets (seconds), for the p50/p99 of pages answering in 10 ms to 10 s.
PROMETHEUS_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf"))

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the app folders, so no collectstatic is needed to run or test.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Security. With DEBUG off and the variables of README "Deploying" set,
# `manage.py check --deploy` reports nothing.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_SECONDS > 0)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", SECURE_HSTS_SECONDS > 0)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", SECURE_SSL_REDIRECT)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# People who receive operational alerts (stuck payments, discrepancies).
ADMINS = [("Operations", email) for email in env_list("ADMIN_EMAILS")]
MANAGERS = ADMINS
SERVER_EMAIL = env_str("SERVER_EMAIL", "reckon@localhost")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", SERVER_EMAIL)
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_SUBJECT_PREFIX = env_str("EMAIL_SUBJECT_PREFIX", "[Reckon] ")  # so that operations can filter alerts
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
# Seconds the SMTP transport waits; the outbox retries a send that timed out.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20)
# A provider's backend (django-anymail) takes its settings as JSON, e.g.
# ANYMAIL='{"POSTMARK_SERVER_TOKEN": "..."}' with
# EMAIL_BACKEND=anymail.backends.postmark.EmailBackend (docs/notifications.md).
if env_str("ANYMAIL"):
    import json as _json

    ANYMAIL = _json.loads(env_str("ANYMAIL"))

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": "config.api.StrictLimitOffsetPagination",
    # A JSON API: nested order lines cannot travel as form fields, so forms get a 415, not a puzzling 400.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
    # Writes (orders, payments) are throttled like the storefront's doors: a JSON 429 (shop/ratelimits.py).
    "DEFAULT_THROTTLE_CLASSES": ["shop.ratelimits.ApiWriteThrottle"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Reckon shop API",
    "DESCRIPTION": "Catalog, orders and payment status of the Reckon shop.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}, "stripe": {"level": "WARNING"}},
}

# --- Shop -------------------------------------------------------------------
SHOP_NAME = env_str("SHOP_NAME", "Reckon")
SHOP_BASE_URL = env_str("SHOP_BASE_URL", "http://127.0.0.1:8000")
CART_MAX_QUANTITY = env_int("CART_MAX_QUANTITY", 99)
# Seconds a cart cookie lives (shop/cart.py): two weeks, like a session.
CART_COOKIE_AGE = env_int("CART_COOKIE_AGE", 14 * 24 * 3600)

# --- Payments ---------------------------------------------------------------
PAYMENT_GATEWAY = env_str("PAYMENT_GATEWAY", "simulator")
PSP_SIMULATOR_URL = env_str("PSP_SIMULATOR_URL", "http://127.0.0.1:8099")
# Where the customer's browser reaches the simulator (hosted page, card script).
PSP_SIMULATOR_PUBLIC_URL = env_str("PSP_SIMULATOR_PUBLIC_URL", PSP_SIMULATOR_URL)
PSP_SIMULATOR_SECRET_KEY = env_str("PSP_SIMULATOR_SECRET_KEY", "sk_sim_test")
PSP_SIMULATOR_PUBLIC_KEY = env_str("PSP_SIMULATOR_PUBLIC_KEY", "pk_sim_test")
PSP_SIMULATOR_WEBHOOK_SECRET = env_str("PSP_SIMULATOR_WEBHOOK_SECRET", "whsec_sim_test")
PSP_CONNECT_TIMEOUT = float(env_str("PSP_CONNECT_TIMEOUT", "3"))
PSP_READ_TIMEOUT = float(env_str("PSP_READ_TIMEOUT", "10"))
WEBHOOK_TOLERANCE_SECONDS = env_int("WEBHOOK_TOLERANCE_SECONDS", 300)
# A payment with no outcome after this long is cancelled at the PSP and expired.
PAYMENT_DEADLINE_MINUTES = env_int("PAYMENT_DEADLINE_MINUTES", 30)
# A payment non-final for longer than this is reported to operations.
PAYMENT_ALERT_AFTER_MINUTES = env_int("PAYMENT_ALERT_AFTER_MINUTES", 60)
# Seconds between status checks of a non-final payment; the last step repeats
# until PAYMENT_SYNC_GIVE_UP_HOURS.
PAYMENT_SYNC_BACKOFF_SECONDS = env_int_list("PAYMENT_SYNC_BACKOFF_SECONDS", [30, 60, 120, 300, 900, 1800, 3600])
PAYMENT_SYNC_GIVE_UP_HOURS = env_int("PAYMENT_SYNC_GIVE_UP_HOURS", 72)
PAYMENT_SYNC_BATCH_SIZE = env_int("PAYMENT_SYNC_BATCH_SIZE", 100)
# At most this many helper sweeps beside the scheduled one when a backlog is due
# (one per further batch): set it to the worker processes of every node.
PAYMENT_SYNC_FAN_OUT = env_int("PAYMENT_SYNC_FAN_OUT", 8)
# A payment still "created" that the PSP has never heard of after this long is failed.
PAYMENT_CREATED_GRACE_SECONDS = env_int("PAYMENT_CREATED_GRACE_SECONDS", 120)
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 5)

STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY")
STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET")
STRIPE_API_BASE = env_str("STRIPE_API_BASE")
STRIPE_JS_URL = env_str("STRIPE_JS_URL", "https://js.stripe.com/v3/")

# Content-Security-Policy (django-csp; config/security.py): our scripts and the active PSP's only.
from config.csp_policy import content_security_policy  # noqa: E402

CONTENT_SECURITY_POLICY = content_security_policy(
    gateway=PAYMENT_GATEWAY, simulator_url=PSP_SIMULATOR_PUBLIC_URL, stripe_js_url=STRIPE_JS_URL,
    stripe_api_base=STRIPE_API_BASE)

# --- Customer e-mail (notifications/: the outbox) ---------------------------
# The domain of each message's stable Message-ID (<row id@domain>).
NOTIFY_MESSAGE_ID_DOMAIN = env_str("NOTIFY_MESSAGE_ID_DOMAIN", "reckon.invalid")
# An open payment older than this gets one "still confirming" or "waiting for you" message.
NOTIFY_SLOW_PAYMENT_MINUTES = env_int("NOTIFY_SLOW_PAYMENT_MINUTES", 10)
# Seconds between attempts of a send that failed; after NOTIFY_MAX_ATTEMPTS it is marked failed.
NOTIFY_RETRY_SECONDS = env_int_list("NOTIFY_RETRY_SECONDS", [60, 300, 900, 3600])
NOTIFY_MAX_ATTEMPTS = env_int("NOTIFY_MAX_ATTEMPTS", 5)
# "Mail me my orders": orders of the last N days, at most this many.
NOTIFY_LOOKUP_DAYS = env_int("NOTIFY_LOOKUP_DAYS", 180)
NOTIFY_LOOKUP_MAX_ORDERS = env_int("NOTIFY_LOOKUP_MAX_ORDERS", 20)

# --- Retention (manage.py prune, daily; payments/retention.py) ---------------
# Days kept; never for rows tied to an open payment, open discrepancy or pending refund.
RETENTION_DAYS = {
    "gateway_calls": env_int("RETENTION_GATEWAY_CALL_DAYS", 90),
    "webhook_events": env_int("RETENTION_WEBHOOK_EVENT_DAYS", 90),
    "unmatched_webhook_events": env_int("RETENTION_UNMATCHED_WEBHOOK_EVENT_DAYS", 30),
    "task_results": env_int("RETENTION_TASK_RESULT_DAYS", 30),
    "notifications": env_int("RETENTION_NOTIFICATION_DAYS", 365),
}
# Orders younger than this keep the customer's name, address and e-mail even
# through forget_customer (the law's retention for invoices; 0: none).
CUSTOMER_DATA_LEGAL_RETENTION_DAYS = env_int("CUSTOMER_DATA_LEGAL_RETENTION_DAYS", 0)

# --- Rate limits (django-ratelimit, on the default cache) --------------------
# Per door, "N/period" (period s, m, h or d) per key: the client's address, the
# e-mail typed, the order being paid. Each is RATELIMIT_<DOOR>_PER_<KEY> in the
# environment. The default cache is per process without REDIS_URL: one web
# process (scripts/run) shares it; several need Redis.
_RATE_LIMIT_DEFAULTS = {
    "find_order": {"client": "20/h", "email": "5/h"},
    "checkout": {"client": "20/m", "email": "10/m"},
    "pay": {"client": "30/m", "order": "10/m"},
    "api_write": {"client": "60/m"},
}
RATE_LIMITS = {door: {key: env_str(f"RATELIMIT_{door.upper()}_PER_{key.upper()}", rate) for key, rate in keys.items()}
               for door, keys in _RATE_LIMIT_DEFAULTS.items()}
RATELIMIT_ENABLE = env_bool("RATELIMIT_ENABLE", True)

# --- Background worker (django-q2) -----------------------------------------
# The config is read at import time by django-q2: tests pick "sync" through
# the Q_SYNC environment variable, set before Django starts.
# With REDIS_URL the broker is Redis (one shared list, no polling of a table);
# without it the database (django-q2's ORM broker), as in scripts/run.
REDIS_URL = env_str("REDIS_URL")
Q_CLUSTER = {
    "name": "reckon",
    **({"redis": REDIS_URL} if REDIS_URL else {"orm": "default"}),
    "workers": env_int("Q_WORKERS", 2),
    "timeout": env_int("Q_TIMEOUT", 60),
    "retry": env_int("Q_RETRY", 120),
    "poll": 0.2,
    "catch_up": False,
    "max_attempts": 3,
    "ack_failures": True,
    "save_limit": 1000,
    "sync": env_bool("Q_SYNC", False),
}
if Q_CLUSTER["retry"] <= Q_CLUSTER["timeout"]:
    raise ImproperlyConfigured("Q_RETRY must be larger than Q_TIMEOUT, or a slow task is handed out twice.")


# --- Live payment status (WebSocket, live/) ----------------------------------
# With REDIS_URL the channel layer is Redis and every transition is also
# published right after its commit; the per-process tail of the audit rows is
# the guarantee in every setup (docs/architecture.md, "Live status").
# The cache holds rate-limit counters: per process without Redis (enough for
# scripts/run's one web process), shared by every node with it.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                          "KEY_PREFIX": "reckon"}}
    # Sessions read from Redis, written through to the database: a Redis restart logs nobody out.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if REDIS_URL:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                  "CONFIG": {"hosts": [REDIS_URL], "prefix": "reckon:live:"}}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
LIVE_PUBLISH = env_bool("LIVE_PUBLISH", bool(REDIS_URL))
LIVE_TAIL_INTERVAL_MS = env_int("LIVE_TAIL_INTERVAL_MS", 250)
LIVE_SOCKETS_PER_ADDRESS = env_int("LIVE_SOCKETS_PER_ADDRESS", 20)
LIVE_IDLE_SECONDS = env_int("LIVE_IDLE_SECONDS", 900)
LIVE_MAX_MESSAGE_BYTES = env_int("LIVE_MAX_MESSAGE_BYTES", 1024)
LIVE_TOKEN_MAX_AGE_SECONDS = env_int("LIVE_TOKEN_MAX_AGE_SECONDS", 2 * 24 * 3600)
