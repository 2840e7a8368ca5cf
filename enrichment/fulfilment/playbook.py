"""The five exception types of the demo domain and the playbook of actions for each.

The descriptions are written to be used as classifier label descriptions, and the actions as
a resolution playbook; the rules that pick the recommended action are the ground truth's.
"""

from __future__ import annotations

from typing import NamedTuple


class ExceptionType(NamedTuple):
    name: str
    description: str


class Action(NamedTuple):
    name: str
    description: str


EXCEPTION_TYPES: tuple[ExceptionType, ...] = (
    ExceptionType(
        "carrier_delay",
        "The shipment is late or stuck in the carrier's network: past its promised delivery "
        "date, no tracking movement, missed connections or transit disruption.",
    ),
    ExceptionType(
        "address_invalid",
        "The delivery address is wrong, incomplete or cannot be found: missing house number, "
        "postcode that does not match the city, recipient unknown at the address.",
    ),
    ExceptionType(
        "damaged_item",
        "The item arrived broken, crushed, leaking, melted or otherwise damaged, or the parcel "
        "was damaged in transit.",
    ),
    ExceptionType(
        "stock_out",
        "The ordered item is not available in the warehouse: out of stock, empty bin, inventory "
        "shortfall, waiting for supplier replenishment.",
    ),
    ExceptionType(
        "customs_hold",
        "The parcel is held at a border by customs: missing commercial invoice, EORI or tax "
        "id, or import duties and VAT to pay before release.",
    ),
)
TYPE_NAMES: tuple[str, ...] = tuple(t.name for t in EXCEPTION_TYPES)

PLAYBOOK: dict[str, tuple[Action, ...]] = {
    "carrier_delay": (
        Action("contact_carrier", "Open a trace with the carrier and ask for a delivery date."),
        Action(
            "reship_order",
            "Ship the order again: a week or more past its promised date, it is probably lost.",
        ),
    ),
    "address_invalid": (
        Action(
            "request_address_confirmation",
            "Ask the customer to confirm or correct the delivery address.",
        ),
    ),
    "damaged_item": (
        Action("issue_replacement", "Send the customer a replacement item."),
        Action(
            "file_carrier_claim",
            "High-value order: file a damage claim with the carrier before replacing.",
        ),
    ),
    "stock_out": (
        Action(
            "offer_backorder",
            "Offer to ship when the item is back in stock (restock within three weeks).",
        ),
        Action("offer_refund", "Offer a refund: no restock date, or not within three weeks."),
    ),
    "customs_hold": (
        Action(
            "provide_customs_documents",
            "Send the missing customs documents (commercial invoice, EORI, tax id).",
        ),
        Action(
            "pay_import_duties",
            "Pay or arrange payment of the import duties and VAT so the parcel is released.",
        ),
    ),
}

# Thresholds of the recommended-action rules (see recommended_action).
RESHIP_AFTER_DAYS_LATE = 7
CLAIM_FROM_AMOUNT = 250.0
BACKORDER_WITHIN_DAYS = 21


def recommended_action(
    exception_type: str,
    *,
    days_late: int = 0,
    amount: float = 0.0,
    restock_days: int | None = None,
    duties: bool = False,
) -> str:
    """The playbook action the ground truth recommends, from facts a resolver can see: the
    order's dates and total, and what the description or messages say about restock or
    duties."""
    if exception_type == "carrier_delay":
        return "reship_order" if days_late >= RESHIP_AFTER_DAYS_LATE else "contact_carrier"
    if exception_type == "address_invalid":
        return "request_address_confirmation"
    if exception_type == "damaged_item":
        return "file_carrier_claim" if amount >= CLAIM_FROM_AMOUNT else "issue_replacement"
    if exception_type == "stock_out":
        known = restock_days is not None and restock_days <= BACKORDER_WITHIN_DAYS
        return "offer_backorder" if known else "offer_refund"
    if exception_type == "customs_hold":
        return "pay_import_duties" if duties else "provide_customs_documents"
    raise ValueError(f"unknown exception type {exception_type!r} (known: {TYPE_NAMES})")


# What the generator plants in free text, by kind (exception_truth.planted_pii counts them).
PII_KINDS: tuple[str, ...] = (
    "email",
    "phone",
    "card",
    "iban",
    "address",
    "national_id",
    "ip",
    "token",
)
