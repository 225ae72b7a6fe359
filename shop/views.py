from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from orders.services import CustomerDetails, LineRequest, OrderError, order_create
from shop.cart import Cart
from shop.forms import CheckoutForm, QuantityForm
from shop.models import Product
from shop.ratelimits import rate_limited


def product_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(Product.objects.active(), 24).get_page(request.GET.get("page"))
    return render(request, "shop/product_list.html", {"page": page})


def product_detail(request: HttpRequest, slug: str) -> HttpResponse:
    product = get_object_or_404(Product.objects.active(), slug=slug)
    form = QuantityForm(initial={"quantity": 1}, product=product)
    return render(request, "shop/product_detail.html", {"product": product, "form": form})


@require_POST
def cart_add(request: HttpRequest, product_id: int) -> HttpResponse:
    product = get_object_or_404(Product.objects.active(), pk=product_id)
    cart = Cart.of(request)
    form = QuantityForm(request.POST, product=product, already_in_cart=cart.quantity_of(product))
    if form.is_valid() and not cart.has_room_for(product):
        form.add_error(None, "Your cart is full: check out or remove something first.")
    if not form.is_valid():
        return render(request, "shop/product_detail.html", {"product": product, "form": form}, status=400)
    cart.set(product, form.cleaned_data["quantity"])
    messages.success(request, f"Added {product.name} to your cart.")
    return redirect("shop:cart")


@never_cache
def cart_detail(request: HttpRequest) -> HttpResponse:
    return _render_cart(request)


def _render_cart(request: HttpRequest, *, errors: dict | None = None, status: int = 200) -> HttpResponse:
    cart = Cart.of(request)
    lines = cart.lines()
    rows = [
        {"line": line, "form": (errors or {}).get(line.product.pk) or QuantityForm(
            initial={"quantity": line.quantity}, product=line.product, replace=True, prefix=f"p{line.product.pk}"
        )}
        for line in lines
    ]
    return render(request, "shop/cart.html", {"rows": rows, "totals": Cart.totals(lines)}, status=status)


@require_POST
def cart_update(request: HttpRequest, product_id: int) -> HttpResponse:
    product = get_object_or_404(Product.objects.active(), pk=product_id)
    cart = Cart.of(request)
    form = QuantityForm(request.POST, product=product, replace=True, prefix=f"p{product.pk}")
    if not form.is_valid():
        return _render_cart(request, errors={product.pk: form}, status=400)
    if form.cleaned_data["quantity"] == 0:
        cart.remove(product.pk)
        messages.success(request, f"Removed {product.name} from your cart.")
        return redirect("shop:cart")
    cart.set(product, form.cleaned_data["quantity"])
    messages.success(request, f"Updated the quantity of {product.name}.")
    return redirect("shop:cart")


@require_POST
def cart_remove(request: HttpRequest, product_id: int) -> HttpResponse:
    Cart.of(request).remove(product_id)
    messages.success(request, "Removed the item from your cart.")
    return redirect("shop:cart")


@never_cache
@require_http_methods(["GET", "POST"])
@rate_limited("checkout")
def checkout(request: HttpRequest) -> HttpResponse:
    cart = Cart.of(request)
    if request.method == "POST":
        form = CheckoutForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                order = order_create(
                    customer=CustomerDetails(
                        email=data["email"],
                        full_name=data["full_name"],
                        address_line1=data["address_line1"],
                        address_line2=data["address_line2"],
                        city=data["city"],
                        postal_code=data["postal_code"],
                        country=data["country"],
                    ),
                    # The order service reads the catalog itself: no need to load the cart's products first.
                    lines=[LineRequest(product_id=pk, quantity=qty) for pk, qty in cart.quantities().items()],
                    checkout_token=data["checkout_token"],
                )
            except OrderError as exc:
                form.add_error(None, exc.message)
            else:
                cart.clear()
                return redirect(order.get_absolute_url())
        status = 400
        lines = cart.lines()
    else:
        lines = cart.lines()
        if not lines:
            messages.info(request, "Your cart is empty.")
            return redirect("shop:cart")
        form = CheckoutForm()
        status = 200
    return render(
        request, "shop/checkout.html", {"form": form, "lines": lines, "totals": Cart.totals(lines)}, status=status
    )
