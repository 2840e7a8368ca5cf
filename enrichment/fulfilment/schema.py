"""The ``fulfilment`` schema: the agreed tables (docs/fulfilment-demo.md), with a few added
columns, their foreign keys and indexes, and a trigger that keeps ``updated_at`` current.

``install_schema`` creates what is missing and leaves what exists alone, so it is safe to run
at every start, and cheap: it reads the catalog once and takes no table lock when nothing is
missing.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from enrichment.fulfilment.playbook import TYPE_NAMES

SCHEMA = "fulfilment"
# Serialises installing and seeding, across processes (pg_advisory_xact_lock key: "fulf").
LOCK_KEY = 0x66756C66

SEGMENTS = ("Enterprise", "Mid-market", "SMB", "Consumer")
SERVICE_LEVELS = ("express", "standard", "economy")
SENDERS = ("customer", "agent", "carrier")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    listed = ", ".join(f"'{value}'" for value in values)
    return f"CHECK ({column} IN ({listed}))"


# (column, definition). Columns after the agreed ones are additions; ai_* are the pipeline's
# write-back columns (NULL until a stage succeeds).
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "customers": (
        ("id", "bigint PRIMARY KEY"),
        ("workspace_id", "text NOT NULL"),
        ("name", "text"),
        ("email", "text"),
        ("phone", "text"),
        ("segment", "text " + _one_of("segment", SEGMENTS)),
        ("country", "text"),
        ("updated_at", "timestamptz NOT NULL DEFAULT now()"),
        ("address", "text"),
    ),
    "orders": (
        ("id", "bigint PRIMARY KEY"),
        ("workspace_id", "text NOT NULL"),
        ("customer_id", "bigint"),
        ("order_number", "text UNIQUE"),
        ("carrier", "text"),
        ("warehouse", "text"),
        ("service_level", "text " + _one_of("service_level", SERVICE_LEVELS)),
        ("sla_hours", "int"),
        ("ordered_at", "timestamptz"),
        ("promised_at", "timestamptz"),
        ("shipped_at", "timestamptz"),
        ("delivered_at", "timestamptz"),
        ("destination_country", "text"),
        ("total_amount", "numeric(12,2)"),
        ("currency", "text"),
        ("status", "text"),
        ("updated_at", "timestamptz NOT NULL DEFAULT now()"),
        ("tracking_number", "text"),
        ("shipping_address", "text"),
    ),
    "exceptions": (
        ("id", "bigint PRIMARY KEY"),
        ("workspace_id", "text NOT NULL"),
        ("order_id", "bigint"),
        ("description", "text"),
        ("reported_at", "timestamptz"),
        ("severity", "text"),
        ("updated_at", "timestamptz NOT NULL DEFAULT now()"),
        ("ai_label", "text"),
        ("ai_confidence", "real"),
        ("ai_action", "text"),
        ("ai_summary", "text"),
        # Added: the customer one hop away (the order's customer), who reported it.
        ("customer_id", "bigint"),
        ("reported_by", "text"),
    ),
    "messages": (
        ("id", "bigint PRIMARY KEY"),
        ("workspace_id", "text NOT NULL"),
        ("exception_id", "bigint"),
        ("sender", "text " + _one_of("sender", SENDERS)),
        ("body", "text"),
        ("sent_at", "timestamptz"),
        ("updated_at", "timestamptz NOT NULL DEFAULT now()"),
        ("channel", "text"),
    ),
    "exception_truth": (
        ("exception_id", "bigint PRIMARY KEY"),
        ("exception_type", "text NOT NULL " + _one_of("exception_type", TYPE_NAMES)),
        ("recommended_action", "text"),
        ("workspace_id", "text NOT NULL"),
        ("updated_at", "timestamptz NOT NULL DEFAULT now()"),
        # Added: how the description was written (explicit | implied | ambiguous), the type an
        # ambiguous one could be taken for, and the personal data planted in the exception's
        # description and messages, by kind ({"email": 1, "phone": 2}).
        ("phrasing", "text"),
        ("confusable_with", "text"),
        ("planted_pii", "jsonb NOT NULL DEFAULT '{}'"),
    ),
}

# The columns the generator writes, in the order of its rows (generator.Chunk).
LOADED: dict[str, tuple[str, ...]] = {
    "customers": (
        "id",
        "workspace_id",
        "name",
        "email",
        "phone",
        "segment",
        "country",
        "address",
        "updated_at",
    ),
    "orders": (
        "id",
        "workspace_id",
        "customer_id",
        "order_number",
        "carrier",
        "warehouse",
        "service_level",
        "sla_hours",
        "ordered_at",
        "promised_at",
        "shipped_at",
        "delivered_at",
        "destination_country",
        "total_amount",
        "currency",
        "status",
        "tracking_number",
        "shipping_address",
        "updated_at",
    ),
    "exceptions": (
        "id",
        "workspace_id",
        "order_id",
        "customer_id",
        "description",
        "reported_at",
        "severity",
        "reported_by",
        "updated_at",
    ),
    "messages": (
        "id",
        "workspace_id",
        "exception_id",
        "sender",
        "channel",
        "body",
        "sent_at",
        "updated_at",
    ),
    "exception_truth": (
        "exception_id",
        "workspace_id",
        "exception_type",
        "recommended_action",
        "phrasing",
        "confusable_with",
        "planted_pii",
        "updated_at",
    ),
}

# Parents before children: the order to load in (and the reverse, to delete in).
LOAD_ORDER = ("customers", "orders", "exceptions", "messages", "exception_truth")

# (table, constraint, column, referenced table, on delete). An exception's messages and truth
# go with it; an order or customer that something refers to cannot be deleted.
FOREIGN_KEYS = (
    ("orders", "orders_customer_id_fkey", "customer_id", "customers", "NO ACTION"),
    ("exceptions", "exceptions_order_id_fkey", "order_id", "orders", "NO ACTION"),
    ("exceptions", "exceptions_customer_id_fkey", "customer_id", "customers", "NO ACTION"),
    ("messages", "messages_exception_id_fkey", "exception_id", "exceptions", "CASCADE"),
    (
        "exception_truth",
        "exception_truth_exception_id_fkey",
        "exception_id",
        "exceptions",
        "CASCADE",
    ),
)

# Foreign-key columns are indexed: the context stage reads related rows through them, and the
# capture triggers of related tables find the source records through them.
INDEXES = (
    ("orders_customer_id_idx", "orders", "customer_id"),
    ("exceptions_order_id_idx", "exceptions", "order_id"),
    ("exceptions_customer_id_idx", "exceptions", "customer_id"),
    ("messages_exception_id_idx", "messages", "exception_id"),
)

TOUCH_TRIGGER = "fulfilment_touch_updated_at"

_TOUCH_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {SCHEMA}.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    -- A change that does not set updated_at itself moves it to the transaction's time;
    -- an UPDATE that changes nothing leaves it alone.
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at AND NEW IS DISTINCT FROM OLD THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$fn$
"""

_CATALOG = """
SELECT 'column' AS kind, c.relname || '.' || a.attname AS name
FROM pg_attribute AS a
JOIN pg_class AS c ON c.oid = a.attrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'table', c.relname FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relkind = 'r'
UNION ALL
SELECT 'index', c.relname FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relkind = 'i'
UNION ALL
SELECT 'constraint', con.conname FROM pg_constraint AS con
JOIN pg_namespace AS n ON n.oid = con.connamespace
WHERE n.nspname = :schema
UNION ALL
SELECT 'trigger', c.relname || '.' || t.tgname FROM pg_trigger AS t
JOIN pg_class AS c ON c.oid = t.tgrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND NOT t.tgisinternal
UNION ALL
SELECT 'function', p.proname FROM pg_proc AS p
JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = :schema
"""


def table(name: str) -> str:
    return f"{SCHEMA}.{name}"


def _catalog(connection: Connection) -> set[tuple[str, str]]:
    rows = connection.execute(text(_CATALOG), {"schema": SCHEMA})
    return {(kind, name) for kind, name in rows}


def add_foreign_key(connection: Connection, name: str) -> None:
    """Add (and so validate, in one pass over the table) one of FOREIGN_KEYS."""
    for owner, constraint, column, parent, on_delete in FOREIGN_KEYS:
        if constraint == name:
            connection.execute(
                text(
                    f"ALTER TABLE {table(owner)} ADD CONSTRAINT {constraint} FOREIGN KEY "
                    f"({column}) REFERENCES {table(parent)} (id) ON DELETE {on_delete}"
                )
            )
            return
    raise KeyError(name)


def install_schema(connection: Connection) -> None:
    """Create the schema, tables, columns, keys, indexes and triggers that are missing, in the
    caller's transaction; what exists is left as it is (and its rows with it). Concurrent
    installs wait for each other."""
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    present = _catalog(connection)
    for name, columns in TABLES.items():
        if ("table", name) not in present:
            definition = ",\n    ".join(f"{column} {sql}" for column, sql in columns)
            connection.execute(text(f"CREATE TABLE {table(name)} (\n    {definition}\n)"))
            continue
        for column, sql in columns:  # a table from an earlier version gains the new columns
            if ("column", f"{name}.{column}") not in present:
                connection.execute(text(f"ALTER TABLE {table(name)} ADD COLUMN {column} {sql}"))
    for _, constraint, *_ in FOREIGN_KEYS:
        if ("constraint", constraint) not in present:
            add_foreign_key(connection, constraint)
    for index, owner, column in INDEXES:
        if ("index", index) not in present:
            connection.execute(text(f"CREATE INDEX {index} ON {table(owner)} ({column})"))
    if ("function", "touch_updated_at") not in present:
        connection.execute(text(_TOUCH_FUNCTION))
    for name in TABLES:
        if ("trigger", f"{name}.{TOUCH_TRIGGER}") not in present:
            connection.execute(
                text(
                    f"CREATE TRIGGER {TOUCH_TRIGGER} BEFORE UPDATE ON {table(name)} "
                    f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.touch_updated_at()"
                )
            )
