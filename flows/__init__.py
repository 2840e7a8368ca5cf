"""Prefect flows: thin orchestration over ``enrichment`` and ``quality``."""
