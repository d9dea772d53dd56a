"""Listing versions fast: the query behind `gitreg list --json` and the cache it reads from."""

from gitreg.listing.cache import SCHEMA_VERSION, ListCache
from gitreg.listing.query import versions_json

__all__ = ["SCHEMA_VERSION", "ListCache", "versions_json"]
