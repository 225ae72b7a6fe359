from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from notifications.outbox import request_order_links
from orders.forms import FindOrderForm
from orders.selectors import order_by_number_and_token, order_find_for_customer
from shop.ratelimits import rate_limited


@never_cache  # Back after paying must never show a stored page with a live Pay form
def order_detail(request: HttpRequest, number: str, token: str) -> HttpResponse:
    order = order_by_number_and_token(number=number, token=token)
    if order is None:
        raise Http404("No such order.")
    return render(request, "orders/order_detail.html", {"order": order, "lines": order.lines.all()})


@require_http_methods(["GET", "POST"])
@rate_limited("find_order")
def order_find(request: HttpRequest) -> HttpResponse:
    """Find an order by number and e-mail, or, with the e-mail alone, have its links mailed.

    The e-mail-only answer is the same page whether or not the address has
    orders, so the page cannot tell anyone who buys here.
    """
    form = FindOrderForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            email = form.cleaned_data["email"]
            if not form.cleaned_data["number"]:
                request_order_links(email=email)
                return render(request, "orders/order_find.html",
                              {"form": FindOrderForm(), "links_sent_to": email})
            order = order_find_for_customer(number=form.cleaned_data["number"], email=email)
            if order is not None:
                return redirect(order.get_absolute_url())
            form.add_error(None, "We found no order with that number and e-mail address.")
    status = 400 if request.method == "POST" else 200
    return render(request, "orders/order_find.html", {"form": form}, status=status)
