"""The JSON API, gathered from each app's api module."""

from rest_framework.routers import SimpleRouter

from orders.api import OrderViewSet
from shop.api import ProductViewSet

router = SimpleRouter()
router.register("products", ProductViewSet, basename="api-product")
router.register("orders", OrderViewSet, basename="api-order")

urlpatterns = router.urls
