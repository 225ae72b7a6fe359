from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import FIELD_ERRORS, NOT_FOUND, ErrorSerializer
from orders.models import Order
from payments.models import Payment
from payments.selectors import customer_payments, payment_customer_view
from payments.services import PaymentError, payment_open_session, payment_start


class PaymentStatusSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    state = serializers.CharField()
    final = serializers.BooleanField()
    title = serializers.CharField()
    message = serializers.CharField()
    amount = serializers.CharField()
    action_url = serializers.CharField(help_text="Where the customer must go next (the PSP's page), if anywhere.")
    order_number = serializers.CharField()
    order_state = serializers.CharField()
    order_url = serializers.CharField()
    action_label = serializers.CharField(help_text="The words for the button to action_url, if any.")
    paid_at = serializers.DateTimeField(allow_null=True, help_text="When the payment was taken, once paid; else null.")
    card = serializers.CharField(help_text="The card's brand and last four digits, once paid, e.g. "
                                           "'Visa ending in 4242'; else empty.")


class PaymentStartSerializer(serializers.Serializer):
    flow = serializers.ChoiceField(choices=Payment.Flow.choices)
    card_token = serializers.RegexField(r"^[A-Za-z0-9_\-]{4,100}$", required=False,
                                        help_text="The PSP's one-use card token; required for the direct flow.")

    def validate(self, data: dict) -> dict:
        if data["flow"] == Payment.Flow.DIRECT and not data.get("card_token"):
            raise ValidationError({"card_token": ["A card token is required for the direct flow."]})
        return data


class OrderPaymentsView(APIView):
    """Start paying an order (identified by its access token)."""

    @extend_schema(
        request=PaymentStartSerializer,
        responses={201: PaymentStatusSerializer, 200: PaymentStatusSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND,
                   409: OpenApiResponse(ErrorSerializer, description="The order is not awaiting payment (paid, cancelled or expired), or its "
                                                        "open payment changed while this one started (try again).")},
        description="Starts a payment, or answers 200 with the open one if the order already has one.",
    )
    def post(self, request: Request, access_token: str) -> Response:
        order = Order.objects.filter(access_token=access_token).first()
        if order is None:
            raise NotFound("No such order.")
        serializer = PaymentStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            payment, created = payment_start(order_id=order.pk, flow=data["flow"],
                                             card_token=data.get("card_token", ""))
        except PaymentError as exc:
            return Response({"detail": exc.message}, status=status.HTTP_409_CONFLICT)
        if created and payment.flow == Payment.Flow.HOSTED:
            payment = payment_open_session(payment_id=payment.pk)
        return Response(payment_customer_view(payment), status=201 if created else 200)


class PaymentStatusView(APIView):
    @extend_schema(responses={200: PaymentStatusSerializer, 404: NOT_FOUND})
    def get(self, request: Request, payment_id) -> Response:
        payment = customer_payments().filter(pk=payment_id).first()
        if payment is None:
            raise NotFound("No such payment.")
        return Response(payment_customer_view(payment))
