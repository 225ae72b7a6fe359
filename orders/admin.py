from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse

from notifications.admin import NotificationInline
from orders.models import Order, OrderLine, OrderTransition, TransitionSource
from orders.services import OrderError, order_fulfil
from payments.console.base_admin import ReadOnlyInline
from payments.console.display import PaymentColumns, admin_link, badge
from payments.console.forms import ReasonForm
from payments.console.pages import form_errors_message, render_action_form
from payments.models import Payment
from payments.services import PaymentError, order_cancel_with_payment


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ["sku", "name", "unit_price", "quantity", "line_total"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("order")

    @admin.display(description="unit price")
    def unit_price(self, line: OrderLine) -> str:
        return line.unit_price_display

    @admin.display(description="line total")
    def line_total(self, line: OrderLine) -> str:
        return line.line_total_display


class PaymentInline(PaymentColumns, ReadOnlyInline):
    """The order's payments; each links to its page in the console (never the card token)."""

    model = Payment
    fields = ["payment", "state_badge", "amount", "refunded", "gateway", "psp_reference", "age"]
    readonly_fields = fields
    ordering = ["-created_at"]
    verbose_name_plural = "Payments"

    @admin.display(description="payment")
    def payment(self, payment: Payment):
        return admin_link("payments.payment", payment.pk, str(payment.pk))


class OrderTransitionInline(ReadOnlyInline):
    model = OrderTransition
    fields = ["created_at", "from_state", "to_state", "source", "actor_name", "reason"]
    readonly_fields = fields
    verbose_name_plural = "Timeline"


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    change_form_template = "admin/orders/order/change_form.html"
    list_display = ["number", "state_badge", "email", "total_display", "created_at"]
    list_filter = ["state", "created_at"]
    search_fields = ["number", "email", "full_name"]
    date_hierarchy = "created_at"
    inlines = [OrderLineInline, PaymentInline, OrderTransitionInline, NotificationInline]
    actions = ["mark_fulfilled", "cancel_orders"]
    readonly_fields = ["number", "state_badge", "currency", "total_display", "stock_released", "created_at",
                       "updated_at"]
    fields = ["number", "state_badge", "email", "full_name", "address_line1", "address_line2", "postal_code", "city",
              "country", "currency", "total_display", "stock_released", "created_at", "updated_at"]
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Total", ordering="total_minor")
    def total_display(self, order: Order) -> str:
        return order.total_display

    @admin.display(description="state", ordering="state")
    def state_badge(self, order: Order):
        return badge(order.state, order.get_state_display())

    def _with_reason(self, request, queryset, *, action: str, title: str, intro: str, submit: str, service,
                     done: str):
        """Ask for a reason (an intermediate page), then run the service on each selected order."""
        applying = "apply" in request.POST
        form = ReasonForm(request.POST if applying else None)
        if applying:
            if form.is_valid():
                ok = 0
                for order in queryset:
                    try:
                        service(order, form.cleaned_data["reason"])
                    except (OrderError, PaymentError) as exc:
                        self.message_user(request, f"{order.number}: {exc.message}", messages.ERROR)
                    else:
                        ok += 1
                if ok:
                    self.message_user(request, f"{ok} order(s) {done}.", messages.SUCCESS)
                orders = list(queryset[:2])
                if len(orders) == 1:
                    return HttpResponseRedirect(reverse("admin:orders_order_change", args=[orders[0].pk]))
                return None
            form_errors_message(request, form)
        return render_action_form(self, request, title=title, form=form, intro=intro, objects=queryset,
                                  submit=submit, back_url=reverse("admin:orders_order_changelist"), action=action,
                                  selected=queryset.values_list("pk", flat=True))

    @admin.action(description="Mark selected orders fulfilled", permissions=["fulfil"])
    def mark_fulfilled(self, request, queryset):
        return self._with_reason(
            request, queryset, action="mark_fulfilled", title="Mark orders fulfilled", submit="Mark fulfilled",
            intro="Only paid orders can be marked fulfilled (shipped). The reason (e.g. the tracking number) goes "
                  "into each order's timeline.",
            service=lambda order, reason: order_fulfil(order_id=order.pk, actor=request.user, reason=reason),
            done="marked fulfilled")

    @admin.action(description="Cancel selected unpaid orders (voids an open payment, releases stock)",
                  permissions=["cancel"])
    def cancel_orders(self, request, queryset):
        return self._with_reason(
            request, queryset, action="cancel_orders", title="Cancel orders", submit="Cancel orders",
            intro="An open payment is cancelled at the PSP first; the order is cancelled and its stock released "
                  "only when the PSP confirms that nothing was taken.",
            service=lambda order, reason: order_cancel_with_payment(order_id=order.pk, source=TransitionSource.STAFF,
                                                                    actor=request.user, reason=reason),
            done="cancelled")

    def has_fulfil_permission(self, request) -> bool:
        return request.user.has_perm("orders.fulfil_order")

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("orders.cancel_order")
