import uuid

from django_countries import countries
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import FIELD_ERRORS, NOT_FOUND
from orders.models import Order, OrderLine
from orders.services import CustomerDetails, LineRequest, OrderError, order_create
from shop.models import Product

_IDEMPOTENCY_NAMESPACE = uuid.UUID("8f7c1f1e-3b9e-4c55-9f55-1f0c8e5e2a11")


class OrderLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderLine
        fields = ["sku", "name", "unit_price_minor", "quantity", "line_total_minor"]


class OrderSerializer(serializers.ModelSerializer):
    lines = OrderLineSerializer(many=True, read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = ["number", "access_token", "state", "email", "full_name", "currency", "total_minor", "lines",
                  "created_at", "url"]

    def get_url(self, order: Order) -> str:
        request = self.context.get("request")
        path = order.get_absolute_url()
        return request.build_absolute_uri(path) if request else path


class LineInputSerializer(serializers.Serializer):
    sku = serializers.CharField(max_length=64)
    quantity = serializers.IntegerField(min_value=1, max_value=10_000)


class OrderCreateSerializer(serializers.Serializer):
    """Prices and amounts are never read from the client: the catalog decides."""

    email = serializers.EmailField()
    full_name = serializers.CharField(max_length=200)
    address_line1 = serializers.CharField(max_length=200)
    address_line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    city = serializers.CharField(max_length=100)
    postal_code = serializers.CharField(max_length=20)
    country = serializers.CharField(max_length=64, help_text="ISO 3166-1 alpha-2 code, e.g. DE.")
    lines = serializers.ListField(child=LineInputSerializer(), min_length=1, max_length=100)

    def validate_country(self, value: str) -> str:
        code = value.strip().upper()
        if code not in countries:
            raise serializers.ValidationError(
                f"Unknown country code {value!r}: use an ISO 3166-1 alpha-2 code such as DE or FR.")
        return code

    def validate_lines(self, lines: list[dict]) -> list[LineRequest]:
        skus = {line["sku"] for line in lines}
        ids = dict(Product.objects.active().filter(sku__in=skus).values_list("sku", "pk"))
        unknown = sorted(skus - ids.keys())
        if unknown:
            raise serializers.ValidationError(f"Unknown or unavailable product: {', '.join(unknown)}.")
        return [LineRequest(product_id=ids[line["sku"]], quantity=line["quantity"]) for line in lines]


@extend_schema_view(retrieve=extend_schema(responses={200: OrderSerializer, 404: NOT_FOUND}))
class OrderViewSet(mixins.CreateModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Create an order from cart lines, and read it back by its access token."""

    queryset = Order.objects.prefetch_related("lines")
    lookup_field = "access_token"
    lookup_value_regex = r"[A-Za-z0-9_\-]+"

    def get_serializer_class(self):
        return OrderCreateSerializer if self.action == "create" else OrderSerializer

    @extend_schema(
        request=OrderCreateSerializer,
        responses={201: OrderSerializer, 400: FIELD_ERRORS},
        parameters=[
            OpenApiParameter(
                "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER,
                description="Repeat a request with the same key to get the same order back instead of a second one.",
            )
        ],
    )
    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = OrderCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        key = request.headers.get("Idempotency-Key", "").strip()
        if len(key) > 255:
            raise ValidationError({"Idempotency-Key": ["At most 255 characters."]})
        try:
            order = order_create(
                customer=CustomerDetails(
                    email=data["email"], full_name=data["full_name"], address_line1=data["address_line1"],
                    address_line2=data["address_line2"], city=data["city"], postal_code=data["postal_code"],
                    country=data["country"],
                ),
                lines=data["lines"],
                checkout_token=uuid.uuid5(_IDEMPOTENCY_NAMESPACE, key) if key else None,
            )
        except OrderError as exc:
            raise ValidationError({exc.field: [exc.message]}) from None
        body = OrderSerializer(order, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)
