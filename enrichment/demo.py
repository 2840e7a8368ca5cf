"""Demo data for `make demo`: support notes from customers in three workspaces, described by the
shipped enrich.yaml. The rows are written with the capture triggers installed, so the demo's
work arrives the way production work does: as events from the database."""

from __future__ import annotations

import json
import random

from sqlalchemy import Connection, text

SOURCE = "demo_notes"
SCHEMA = "enrichment_demo"
WORKSPACES = ("acme", "globex", "initech")
_SEGMENTS = ("Enterprise", "Mid-market", "SMB")
_TIERS = ("Pro", "Team", "Free")
_REGIONS = ("EMEA", "North America", "APAC")
_OPENINGS = (
    "My order has not arrived yet and the tracking page has not changed for three days.",
    "The parcel arrived damaged, the box was crushed and two items are broken.",
    "I was charged twice for the same order, please refund the duplicate payment.",
    "The delivery address on my order is wrong, can you change it before it ships?",
    "Customs is holding my shipment and asking for documents I never received.",
    "I am frustrated with the onboarding flow, the setup wizard keeps failing.",
    "The product I ordered is out of stock again, when will it be available?",
    "Thanks for the quick help yesterday, everything works now.",
)
_DETAILS = (
    "This is the second time this happens this month.",
    "We need it for an event on Friday.",
    "Our team has been waiting on this for a week.",
    "Please call me back, email is too slow for this.",
    "",
)


def create_tables(connection: Connection) -> None:
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    connection.execute(
        text(
            f"""
            CREATE TABLE IF NOT EXISTS {SCHEMA}.customers (
                id       bigint PRIMARY KEY,
                name     text NOT NULL,
                segment  text,
                tier     text,
                region   text
            );
            CREATE TABLE IF NOT EXISTS {SCHEMA}.notes (
                id            bigint PRIMARY KEY,
                workspace_id  text NOT NULL,
                body          text,
                updated_at    timestamptz NOT NULL DEFAULT now()
            );
            -- Columns added after the first demo: older demo tables gain them.
            ALTER TABLE {SCHEMA}.notes
                ADD COLUMN IF NOT EXISTS customer_id bigint REFERENCES {SCHEMA}.customers (id),
                ADD COLUMN IF NOT EXISTS channel text;
            """
        )
    )


def seed(connection: Connection, count: int, *, seed: int = 7) -> None:
    """Replace the demo rows with ``count`` generated notes (and their customers)."""
    rng = random.Random(seed)
    create_tables(connection)
    connection.execute(text(f"DELETE FROM {SCHEMA}.notes"))
    connection.execute(text(f"DELETE FROM {SCHEMA}.customers"))
    customers = [
        {
            "id": number,
            "name": f"Customer {number}",
            "segment": rng.choice(_SEGMENTS),
            "tier": rng.choice(_TIERS),
            "region": rng.choice(_REGIONS) if number % 7 else None,  # some unknown: absent
        }
        for number in range(1, max(2, count // 5) + 1)
    ]
    connection.execute(
        text(
            f"INSERT INTO {SCHEMA}.customers (id, name, segment, tier, region) "
            "VALUES (:id, :name, :segment, :tier, :region)"
        ),
        customers,
    )
    notes = [
        {
            "id": number,
            "workspace_id": WORKSPACES[number % len(WORKSPACES)],
            "customer_id": rng.choice(customers)["id"],
            "channel": rng.choice(("email", "chat", "phone")),
            "body": " ".join(
                part for part in (rng.choice(_OPENINGS), rng.choice(_DETAILS)) if part
            ),
        }
        for number in range(1, count + 1)
    ]
    if notes:
        connection.execute(
            text(
                f"INSERT INTO {SCHEMA}.notes (id, workspace_id, customer_id, channel, body) "
                "SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id bigint, "
                "workspace_id text, customer_id bigint, channel text, body text)"
            ),
            {"rows": json.dumps(notes)},
        )
