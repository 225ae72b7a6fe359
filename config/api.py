"""Plumbing shared by the JSON API: strict pagination, the error body in the schema, a JSON 404."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

# The error bodies, for the schema: a 400 names each invalid field; other 4xx say what is wrong.
ErrorSerializer = inline_serializer("Error", {"detail": serializers.CharField()})
FIELD_ERRORS = OpenApiResponse(OpenApiTypes.OBJECT, description=(
    'Bad input: each invalid field or parameter with its messages, e.g. {"email": ["Enter a valid email address."]}'))
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such object.")


class StrictLimitOffsetPagination(LimitOffsetPagination):
    """limit/offset pagination that refuses what it cannot use instead of guessing.

    DRF ignores a limit or offset that is not a positive integer and passes a
    huge offset to the database, which cannot hold it (a 500). Here a bad value
    answers 400 naming the parameter, limit is capped, and an offset past the
    end gives an empty page.
    """

    max_limit = 200

    def _parameter(self, request, name: str, default: int | None, *, minimum: int) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not raw.isascii() or not raw.isdigit() or int(raw) < minimum:
            raise ValidationError({name: [f"Must be an integer of at least {minimum}."]})
        return int(raw)

    def get_limit(self, request) -> int | None:
        limit = self._parameter(request, self.limit_query_param, self.default_limit, minimum=1)
        return None if limit is None else min(limit, self.max_limit)

    def get_offset(self, request) -> int:
        # paginate_queryset counts the rows before it asks for the offset.
        return min(self._parameter(request, self.offset_query_param, 0, minimum=0), self.count)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = f"Number of results to return per page (at most {self.max_limit})."
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"]["minimum"] = 0
        return parameters


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A path that matches no URL: JSON under /api/, the shop's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
