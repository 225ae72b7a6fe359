"""A paginator that never counts a whole large table."""

from __future__ import annotations

from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db import connections
from django.utils.functional import cached_property

COUNT_CAP = 10_000


def estimated_rows(queryset) -> int | None:
    """The planner's row estimate of the queryset's table (PostgreSQL only), or None."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                       [connection.ops.quote_name(queryset.model._meta.db_table)])
        row = cursor.fetchone()
    # -1 (or 0) means "never analysed": no estimate.
    return row[0] if row and row[0] > 0 else None


class CappedCountPaginator(Paginator):
    """Counts at most COUNT_CAP rows, so a page costs the same at a thousand or a million rows.

    An unfiltered list on PostgreSQL takes the table's estimated size
    (pg_class.reltuples, kept fresh by autovacuum) to number its pages; a
    filtered one counts up to the cap and then says "more than". Pages past
    the cap are still reachable by editing ?p=.
    """

    cap = COUNT_CAP

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.count_is_estimate = False
        self.count_is_capped = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not queryset.query.where:
            estimate = estimated_rows(queryset)
            if estimate is not None and estimate > self.cap:
                self.count_is_estimate = True
                return estimate
        counted = queryset.order_by()[: self.cap + 1].count()
        if counted > self.cap:
            self.count_is_capped = True
            return self.cap
        return counted

    @property
    def _count_is_exact(self) -> bool:
        self.count  # noqa: B018 - counting sets the flags
        return not (self.count_is_capped or self.count_is_estimate)

    def validate_number(self, number) -> int:
        if self._count_is_exact:
            return super().validate_number(number)
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger("That page number is not an integer") from None
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        return number

    def page(self, number):
        if self._count_is_exact:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        return self._get_page(self.object_list[bottom:bottom + self.per_page], number, self)
