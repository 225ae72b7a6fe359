from django.urls import path

from orders import views

app_name = "orders"

urlpatterns = [
    path("find/", views.order_find, name="find"),
    path("<str:number>/<str:token>/", views.order_detail, name="detail"),
]
