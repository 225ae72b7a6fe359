from django.contrib import admin, messages

from orders.models import Order, OrderLine, OrderTransition, TransitionSource
from orders.services import OrderError, order_cancel, order_fulfil


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ["sku", "name", "unit_price_minor", "quantity", "line_total_minor"]
    readonly_fields = fields


class OrderTransitionInline(ReadOnlyInline):
    model = OrderTransition
    fields = ["created_at", "from_state", "to_state", "source", "actor_name", "reason"]
    readonly_fields = fields
    verbose_name_plural = "Timeline"


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["number", "state", "email", "total_display", "created_at"]
    list_filter = ["state", "created_at"]
    search_fields = ["number", "email", "full_name"]
    date_hierarchy = "created_at"
    inlines = [OrderLineInline, OrderTransitionInline]
    actions = ["mark_fulfilled", "cancel_orders"]
    readonly_fields = ["number", "state", "currency", "total_minor", "stock_released", "created_at", "updated_at"]
    fields = ["number", "state", "email", "full_name", "address_line1", "address_line2", "postal_code", "city",
              "country", "currency", "total_minor", "stock_released", "created_at", "updated_at"]
    show_full_result_count = False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Total", ordering="total_minor")
    def total_display(self, order: Order) -> str:
        return order.total_display

    def _run(self, request, queryset, service, done: str) -> None:
        ok = 0
        for order in queryset:
            try:
                service(order)
            except OrderError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                ok += 1
        if ok:
            self.message_user(request, f"{ok} order(s) {done}.", messages.SUCCESS)

    @admin.action(description="Mark selected orders fulfilled", permissions=["fulfil"])
    def mark_fulfilled(self, request, queryset) -> None:
        self._run(request, queryset, lambda o: order_fulfil(order_id=o.pk, actor=request.user, reason="Shipped"),
                  "marked fulfilled")

    @admin.action(description="Cancel selected unpaid orders (releases stock)", permissions=["cancel"])
    def cancel_orders(self, request, queryset) -> None:
        self._run(
            request,
            queryset,
            lambda o: order_cancel(order_id=o.pk, source=TransitionSource.STAFF, actor=request.user,
                                   reason="Cancelled by staff"),
            "cancelled",
        )

    def has_fulfil_permission(self, request) -> bool:
        return request.user.has_perm("orders.fulfil_order")

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm("orders.cancel_order")
