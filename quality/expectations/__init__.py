"""Great Expectations suites for the enrichment schema: seed 002's integrity checks and ours.

- no record incomplete for more than a day;
- the high-confidence rate above 80 % in every stage that scores confidence (not applicable
  while none does);
- nobody over the retry limit;
- every vector of its table's dimension and free of NaN / infinity;
- no PII pattern in stored text (chunk texts and stage outputs);
- vectors and record state agree on the workspace, and every vector has a live record.

The rules are SQL (``rules.sql``) run in PostgreSQL through a Great Expectations SQL
datasource; see ``validation.validate``.
"""

from quality.expectations.rules import IntegrityLimits
from quality.expectations.validation import (
    ExpectationResult,
    Outcome,
    QualityValidation,
    validate,
)

__all__ = ["ExpectationResult", "IntegrityLimits", "Outcome", "QualityValidation", "validate"]
