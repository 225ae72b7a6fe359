"""ASGI entry point: HTTP (Django) and WebSocket (the live payment status) on one port.

`manage.py runserver` serves it through daphne; production runs it under
gunicorn with uvicorn workers (README, "Deploying").

HTTP goes to Django's WSGI handler, run in a pool of WEB_THREADS threads by
a2wsgi; WebSockets go to Channels. Every view of the shop is synchronous, so
Django's own ASGI handler would only add its cost: a thread made for each
request and hand-offs between the event loop and it for the signals, the
middleware chain and the view, about 2.5 ms of CPU a request
(bench/README.md, "Where the web server's CPU goes"). Here a request runs
from its first middleware to its last byte in one pool thread, as under a
threaded WSGI server, while the event loop keeps the sockets.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The web server's database connections come from a pool per process (config/settings.py, DB_POOL_MAX_SIZE),
# 10 unless the environment says otherwise. The default is for this process's settings only: a process that
# this one starts (a test's worker, say) must not inherit it.
_pool_default = "DB_POOL_MAX_SIZE" not in os.environ
os.environ.setdefault("DB_POOL_MAX_SIZE", "10")
# Django first: it configures settings and apps before the consumers are imported.
django_application = get_wsgi_application()
if _pool_default:
    del os.environ["DB_POOL_MAX_SIZE"]

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import global_settings, settings  # noqa: E402

from config.asgi_body import ReadBodyFirst  # noqa: E402
from live.routing import websocket_urlpatterns  # noqa: E402

# The body is read on the event loop first (config/asgi_body.py), so a slow client never holds a thread; in
# memory up to Django's own limit for a body in memory (its default when the setting lifts the limit).
http_application = ReadBodyFirst(WSGIMiddleware(django_application, workers=settings.WEB_THREADS),
                                 max_bytes=(settings.DATA_UPLOAD_MAX_MEMORY_SIZE
                                            or global_settings.DATA_UPLOAD_MAX_MEMORY_SIZE))

application = ProtocolTypeRouter({
    "http": http_application,
    "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
})
