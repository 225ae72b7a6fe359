from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, viewsets

from config.api import FIELD_ERRORS, NOT_FOUND
from shop.models import Product


class ProductSerializer(serializers.ModelSerializer):
    in_stock = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["sku", "name", "slug", "description", "price_minor", "currency", "stock", "in_stock"]

    def get_in_stock(self, product: Product) -> bool:
        return product.stock > 0


@extend_schema_view(list=extend_schema(responses={200: ProductSerializer(many=True), 400: FIELD_ERRORS}),
                    retrieve=extend_schema(responses={200: ProductSerializer, 404: NOT_FOUND}))
class ProductViewSet(viewsets.ReadOnlyModelViewSet):
    """The active catalog; prices are integers in minor units."""

    serializer_class = ProductSerializer
    queryset = Product.objects.active().order_by("name", "pk")
    lookup_field = "slug"
