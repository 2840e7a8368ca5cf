"""Metrics, thresholds, alerts and quality reports over the enrichment schema."""
