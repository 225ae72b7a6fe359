"""The JSON API, gathered from each app's api module."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from orders.api import OrderViewSet
from payments.api import OrderPaymentsView, PaymentStatusView
from shop.api import ProductViewSet

router = SimpleRouter()
router.register("products", ProductViewSet, basename="api-product")
router.register("orders", OrderViewSet, basename="api-order")

urlpatterns = [
    path("orders/<str:access_token>/payments/", OrderPaymentsView.as_view(), name="api-order-payments"),
    path("payments/<uuid:payment_id>/", PaymentStatusView.as_view(), name="api-payment"),
    *router.urls,
]
