from rest_framework import serializers, viewsets

from shop.models import Product


class ProductSerializer(serializers.ModelSerializer):
    in_stock = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["sku", "name", "slug", "description", "price_minor", "currency", "stock", "in_stock"]

    def get_in_stock(self, product: Product) -> bool:
        return product.stock > 0


class ProductViewSet(viewsets.ReadOnlyModelViewSet):
    """The active catalog; prices are integers in minor units."""

    serializer_class = ProductSerializer
    queryset = Product.objects.active().order_by("name", "pk")
    lookup_field = "slug"
