"""The benchmark's baseline: a bare view that does one INSERT and one commit.

Mounted only when BENCH_BASELINE=1 (config/urls.py), and only into a table that
the benchmark harness creates (bench/stack.py); never into a product table.
Measured on the same server as the shop, it shows what the bare stack costs
per request, so the shop's figure can be read as a ratio.
"""

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

BASELINE_TABLE = "bench_baseline_hit"


@csrf_exempt
def baseline_insert(request: HttpRequest) -> HttpResponse:
    # Autocommit: the single INSERT is its own transaction, so one insert and one commit.
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {BASELINE_TABLE} DEFAULT VALUES")  # noqa: S608 - a constant name
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [path("bench/baseline/", baseline_insert, name="bench-baseline")]
