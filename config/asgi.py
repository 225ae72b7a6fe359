"""ASGI entry point: HTTP (Django) and WebSocket (the live payment status) on one port.

`manage.py runserver` serves it through daphne; production runs it under
gunicorn with uvicorn workers (README, "Deploying").
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The web server's database connections come from a pool per process (config/settings.py, DB_POOL_MAX_SIZE),
# 10 unless the environment says otherwise. The default is for this process's settings only: a process that
# this one starts (a test's worker, say) must not inherit it.
_pool_default = "DB_POOL_MAX_SIZE" not in os.environ
os.environ.setdefault("DB_POOL_MAX_SIZE", "10")
# Django first: it configures settings and apps before the consumers are imported.
django_application = get_asgi_application()
if _pool_default:
    del os.environ["DB_POOL_MAX_SIZE"]

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from live.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_application,
    "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
})
