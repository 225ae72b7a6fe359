from django.urls import path

from payments import views

app_name = "payments"

urlpatterns = [
    path("orders/<str:number>/<str:token>/pay/hosted/", views.pay_hosted, name="pay-hosted"),
    path("orders/<str:number>/<str:token>/pay/card/", views.pay_direct, name="pay-direct"),
    path("<uuid:payment_id>/", views.payment_status, name="status"),
    path("<uuid:payment_id>/status.json", views.payment_status_json, name="status-json"),
    path("<uuid:payment_id>/return/", views.payment_return, name="return"),
    path("webhooks/<str:gateway>/", views.webhook, name="webhook"),
]
