from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config import ops
from config.env import env_bool
from config.security import csp_report

handler404 = "config.api.not_found"
handler500 = "config.ops.server_error"  # 503 with Retry-After while the database or Redis is away

urlpatterns = [
    path("healthz", ops.healthz, name="healthz"),
    path("readyz", ops.readyz, name="readyz"),
    path("metrics", ops.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("csp-report/", csp_report, name="csp-report"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("orders/", include("orders.urls")),
    path("payments/", include("payments.urls")),
    path("", include("shop.urls")),
]
if env_bool("BENCH_BASELINE", False):
    # The throughput benchmark's bare insert-and-commit view (bench/README.md); never set in production.
    from bench.baseline_view import urlpatterns as baseline_urlpatterns

    urlpatterns = baseline_urlpatterns + urlpatterns
