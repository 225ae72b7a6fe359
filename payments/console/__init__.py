"""Pieces of the support console (payments/admin.py): list filters, search, paging, forms, the timeline."""
