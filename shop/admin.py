from django.contrib import admin

from shop.models import Product


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price_display", "stock", "is_active", "updated_at"]
    list_filter = ["is_active", "currency"]
    search_fields = ["sku", "name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    list_editable = ["stock", "is_active"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="Price", ordering="price_minor")
    def price_display(self, product: Product) -> str:
        return product.price_display
