"""Staged enrichment of PostgreSQL records into pgvector, driven by a queue in PostgreSQL."""

__version__ = "0.1.0"
