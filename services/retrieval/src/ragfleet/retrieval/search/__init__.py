"""Public search API: ``POST /v1/search``, ``GET /v1/collections``, ``GET /v1/cache/stats``."""
