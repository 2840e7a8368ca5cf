"""Stages of the enrichment pipeline, one module each."""

from enrichment.stages.base import ClaimedRecord, Completed, Failed, Skipped, Stage, StageOutcome

__all__ = ["ClaimedRecord", "Completed", "Failed", "Skipped", "Stage", "StageOutcome"]
