"""The console's small intermediate pages: a form, what it acts on, and a way back."""

from __future__ import annotations

from django.contrib import messages
from django.template.response import TemplateResponse

TEMPLATE = "admin/payments/action_form.html"


def posted_data(request):
    """The form data on POST (even an empty POST, which must show "required" errors), else None."""
    return request.POST if request.method == "POST" else None


def form_errors_message(request, form) -> None:
    """One line at the top that points to the form; each error itself is shown once, at its field."""
    count = sum(len(errors) for errors in form.errors.values())
    messages.error(request, "Please correct the error below." if count == 1 else
                   f"Please correct the {count} errors below.")


def render_action_form(model_admin, request, *, title: str, form, intro: str = "", objects=(), submit: str,
                       back_url: str, action: str = "", selected=(), confirm: list | None = None
                       ) -> TemplateResponse:
    """An intermediate page. With `action` and `selected` it posts back to the changelist's admin action."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": model_admin.model._meta,
        "form": form,
        "intro": intro,
        "objects": list(objects),
        "submit_label": submit,
        "back_url": back_url,
        "action_name": action,
        "selected": [str(pk) for pk in selected],
        # A confirmation step: (label, value) rows to read before the form is sent again with confirmed=1.
        "confirm": confirm,
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, TEMPLATE, context)
