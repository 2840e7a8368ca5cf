"""The fulfilment demo domain: schema, seeded generator, summary and ground truth, against the
real PostgreSQL. The checks of free text (personal data, type keywords) use this file's own
patterns and checksums, not the generator's."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from enrichment import capture, fulfilment
from enrichment.config import SourceConfig, parse_config
from enrichment.errors import InvalidInput
from enrichment.fulfilment import EXCEPTION_TYPES, PLAYBOOK, TYPE_NAMES, SeedSummary
from enrichment.fulfilment.world import COUNTRIES, PROFILES
from enrichment.source_tables import check_source

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
STANDARD: dict[str, Any] = {"records": 1000, "workspaces": 4, "seed": 7, "now": NOW}
TABLES = {
    "customers": "id",
    "orders": "id",
    "exceptions": "id",
    "messages": "id",
    "exception_truth": "exception_id",
}
# The agreed schema (docs/fulfilment-demo.md): every column must be there.
AGREED_COLUMNS = {
    "customers": {
        "id",
        "workspace_id",
        "name",
        "email",
        "phone",
        "segment",
        "country",
        "updated_at",
    },
    "orders": {
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
        "updated_at",
    },
    "exceptions": {
        "id",
        "workspace_id",
        "order_id",
        "description",
        "reported_at",
        "severity",
        "updated_at",
        "ai_label",
        "ai_confidence",
        "ai_action",
        "ai_summary",
    },
    "messages": {"id", "workspace_id", "exception_id", "sender", "body", "sent_at", "updated_at"},
    "exception_truth": {
        "exception_id",
        "exception_type",
        "recommended_action",
        "workspace_id",
        "updated_at",
    },
}

# --- what the tests look for in free text ----------------------------------------------------

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
IBAN = re.compile(
    r"\b[A-Z]{2}\d{2}(?: [A-Z0-9]{4})+(?: [A-Z0-9]{1,3})?\b|\b[A-Z]{2}\d{2}[A-Z0-9]{11,30}\b"
)
CARD = re.compile(
    r"(?<![\d-])(?:\d{4}([ -])\d{4}\1\d{4}\1\d{4}|\d{4}([ -])\d{6}\2\d{5}|[3-6]\d{14,15})"
    r"(?![\d-])"
)
TOKEN = re.compile(
    r"Bearer [\w.-]+|\bsk-[\w-]{20,}|\bAKIA[A-Z2-7]{16}\b|\bghp_\w{36}\b"
    r"|(?<!Bearer )\beyJ[\w-]+\.[\w-]+\.[\w-]+"
)
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6 = re.compile(r"\b2a02:8108:[0-9a-f:]+")
PHONE = re.compile(r"(?:\+|00)\d{1,3}[ (]")
KEYWORDS = {
    "carrier_delay": r"delay\w*|late|overdue|retard\w*|verzög\w*|vertraag\w*",
    "address_invalid": r"address\w*|adress\w*|addr|adresse|anschrift|adres",
    "damaged_item": r"damag\w*|broken|dmg|smashed|endommag\w*|beschädigt|beschadigd",
    "stock_out": r"stock|stock-out|stockout|oos|inventory|back-?order\w*",
    "customs_hold": r"customs|douane|zoll\w*|clearance",
}


def luhn(number: str) -> bool:
    digits = [int(d) for d in number if d.isdigit()][::-1]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits))
    return total % 10 == 0


def iban_ok(value: str) -> bool:
    compact = value.replace(" ", "")
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def ibans(body: str) -> list[str]:
    return IBAN.findall(body)


def cards(body: str) -> list[str]:
    without_ibans = IBAN.sub(" ", body)
    return [match.group(0) for match in CARD.finditer(without_ibans)]


# --- seeding, shared by the tests that only read --------------------------------------------

_seeded: dict[str, Any] = {}


def reseed(engine: Engine, **params: Any) -> SeedSummary:
    """Seed, remembering what the tables now hold."""
    _seeded.clear()
    summary = fulfilment.seed(engine, **params)
    _seeded.update(params=params, summary=summary)
    return summary


@pytest.fixture(scope="module", autouse=True)
def _forget_seed() -> Iterator[None]:
    _seeded.clear()  # another module may have left other data in the tables
    yield
    _seeded.clear()


@pytest.fixture
def seeded(db: Engine) -> SeedSummary:
    """The standard data set (1,000 exceptions, 4 workspaces, seed 7, times up to NOW)."""
    if _seeded.get("params") != STANDARD:
        reseed(db, **STANDARD)
    summary: SeedSummary = _seeded["summary"]
    return summary


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(sql), params))


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


def fingerprint(engine: Engine) -> dict[str, str]:
    """An md5 of every row of every table, in key order."""
    return {
        name: scalar(
            engine,
            f"SELECT md5(string_agg(t::text, '|' ORDER BY t.{key})) FROM fulfilment.{name} AS t",
        )
        for name, key in TABLES.items()
    }


def catalog(engine: Engine) -> list[Any]:
    return rows(
        engine,
        """
        SELECT 'column', table_name || '.' || column_name || ' ' || data_type
        FROM information_schema.columns WHERE table_schema = 'fulfilment'
        UNION ALL
        SELECT 'constraint', conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace = 'fulfilment'::regnamespace
        UNION ALL
        SELECT 'index', indexname || ' ' || indexdef FROM pg_indexes
        WHERE schemaname = 'fulfilment'
        UNION ALL
        SELECT 'trigger', tgrelid::regclass || ' ' || tgname FROM pg_trigger
        WHERE NOT tgisinternal AND tgrelid::regclass::text LIKE 'fulfilment.%'
        ORDER BY 1, 2
        """,
    )


# --- schema ----------------------------------------------------------------------------------


def test_install_creates_every_agreed_table_and_column(seeded: SeedSummary, db: Engine) -> None:
    present: dict[str, set[str]] = {}
    for table, column in rows(
        db,
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'fulfilment'",
    ):
        present.setdefault(table, set()).add(column)
    for table, columns in AGREED_COLUMNS.items():
        assert columns <= present[table], f"{table} lacks {columns - present[table]}"


def test_install_twice_changes_nothing_and_keeps_the_rows(seeded: SeedSummary, db: Engine) -> None:
    before, data = catalog(db), fingerprint(db)
    with db.begin() as connection:
        fulfilment.install_schema(connection)
    with db.begin() as connection:
        fulfilment.install_schema(connection)
    assert catalog(db) == before
    assert fingerprint(db) == data


def test_install_adds_a_column_missing_from_an_older_table(seeded: SeedSummary, db: Engine) -> None:
    with db.begin() as connection:
        connection.execute(text("ALTER TABLE fulfilment.exceptions DROP COLUMN reported_by"))
    _seeded.clear()  # the column's values are gone
    with db.begin() as connection:
        fulfilment.install_schema(connection)
    assert scalar(
        db,
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'fulfilment' "
        "AND table_name = 'exceptions' AND column_name = 'reported_by'",
    )
    assert scalar(db, "SELECT count(*) FROM fulfilment.exceptions") == 1000


def test_foreign_keys_are_validated_after_seeding(seeded: SeedSummary, db: Engine) -> None:
    keys = rows(
        db,
        "SELECT conrelid::regclass::text, confrelid::regclass::text, convalidated "
        "FROM pg_constraint WHERE contype = 'f' AND connamespace = 'fulfilment'::regnamespace",
    )
    assert sorted(keys) == [
        ("fulfilment.exception_truth", "fulfilment.exceptions", True),
        ("fulfilment.exceptions", "fulfilment.customers", True),
        ("fulfilment.exceptions", "fulfilment.orders", True),
        ("fulfilment.messages", "fulfilment.exceptions", True),
        ("fulfilment.orders", "fulfilment.customers", True),
    ]


def test_a_message_of_an_unknown_exception_is_refused(seeded: SeedSummary, db: Engine) -> None:
    with pytest.raises(IntegrityError) as raised, db.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO fulfilment.messages (id, workspace_id, exception_id, sender, body) "
                "VALUES (999999, 'brightcart', 999999, 'customer', 'hello')"
            )
        )
    assert isinstance(raised.value.orig, psycopg.errors.ForeignKeyViolation)


def test_an_update_moves_updated_at_to_now_unless_it_sets_it(
    seeded: SeedSummary, db: Engine
) -> None:
    with db.connect() as connection, connection.begin():
        touched = connection.execute(
            text(
                "UPDATE fulfilment.exceptions SET ai_label = 'carrier_delay' WHERE id = 1 "
                "RETURNING updated_at = now()"
            )
        ).scalar_one()
        kept = connection.execute(
            text(
                "UPDATE fulfilment.exceptions SET ai_label = 'stock_out', "
                "updated_at = '2020-01-01 00:00+00' WHERE id = 2 RETURNING updated_at"
            )
        ).scalar_one()
        before = connection.execute(
            text("SELECT updated_at FROM fulfilment.exceptions WHERE id = 3")
        ).scalar_one()
        unchanged = connection.execute(
            text(
                "UPDATE fulfilment.exceptions SET severity = severity WHERE id = 3 "
                "RETURNING updated_at"
            )
        ).scalar_one()
        connection.rollback()
    assert touched is True
    assert kept == datetime(2020, 1, 1, tzinfo=UTC)
    assert unchanged == before


# --- determinism, sizes, re-seeding ----------------------------------------------------------


@pytest.mark.slow
def test_the_same_seed_gives_identical_rows(db: Engine) -> None:
    reseed(db, **STANDARD)
    first = fingerprint(db)
    reseed(db, **STANDARD)
    assert fingerprint(db) == first


@pytest.mark.slow
def test_another_seed_gives_other_rows(db: Engine) -> None:
    reseed(db, **STANDARD)
    first = fingerprint(db)
    reseed(db, **{**STANDARD, "seed": 8})
    second = fingerprint(db)
    assert all(first[name] != second[name] for name in TABLES)


def test_seeding_writes_the_requested_number_of_exceptions(seeded: SeedSummary, db: Engine) -> None:
    counts = {name: scalar(db, f"SELECT count(*) FROM fulfilment.{name}") for name in TABLES}
    assert counts["exceptions"] == counts["exception_truth"] == 1000
    assert 1300 <= counts["orders"] <= 1600  # orders with no exception, a few with two
    assert 1800 <= counts["messages"] <= 2700
    assert 300 <= counts["customers"] < counts["orders"]
    assert seeded.totals == {name: counts[name] for name in seeded.totals}


@pytest.mark.slow
def test_seeding_other_sizes_writes_those_sizes(db: Engine) -> None:
    summary = reseed(db, records=2500, workspaces=6, seed=3, now=NOW)
    assert scalar(db, "SELECT count(*) FROM fulfilment.exceptions") == 2500
    assert [w.workspace_id for w in summary.workspaces] == [p.slug for p in PROFILES[:6]]
    small = reseed(db, records=3, workspaces=3, seed=3, now=NOW)
    assert [(w.workspace_id, w.exceptions) for w in small.workspaces] == [
        (p.slug, 1) for p in PROFILES[:3]
    ]
    assert scalar(db, "SELECT count(*) FROM fulfilment.exception_truth") == 3


def test_reseeding_replaces_the_previous_rows(db: Engine) -> None:
    reseed(db, records=400, workspaces=4, seed=1, now=NOW)
    reseed(db, records=150, workspaces=2, seed=2, now=NOW)
    assert rows(db, "SELECT min(id), max(id), count(*) FROM fulfilment.exceptions") == [
        (1, 150, 150)
    ]
    assert rows(db, "SELECT DISTINCT workspace_id FROM fulfilment.customers ORDER BY 1") == [
        ("brightcart",),
        ("maison-lumiere",),
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"records": 0}, "records"),
        ({"records": "10"}, "records"),
        ({"workspaces": 0}, "workspaces"),
        ({"workspaces": 101}, "workspaces"),
        ({"records": 3, "workspaces": 4}, "workspaces"),
        ({"seed": 1.5}, "seed"),
        ({"now": datetime(2026, 1, 1)}, "now"),  # naive
    ],
)
def test_bad_parameters_are_refused_naming_the_field_and_keep_the_data(
    seeded: SeedSummary, db: Engine, params: dict[str, Any], field: str
) -> None:
    data = fingerprint(db)
    with pytest.raises(InvalidInput) as raised:
        fulfilment.seed(db, **params)
    assert raised.value.field == field
    assert fingerprint(db) == data


# --- consistency of the data -----------------------------------------------------------------


def test_an_exceptions_order_customer_messages_and_truth_share_its_workspace(
    seeded: SeedSummary, db: Engine
) -> None:
    mismatches = scalar(
        db,
        """
        SELECT count(*) FROM fulfilment.exceptions AS e
        JOIN fulfilment.orders AS o ON o.id = e.order_id
        JOIN fulfilment.customers AS c ON c.id = o.customer_id
        JOIN fulfilment.exception_truth AS t ON t.exception_id = e.id
        LEFT JOIN fulfilment.messages AS m ON m.exception_id = e.id
        WHERE e.workspace_id <> o.workspace_id OR o.workspace_id <> c.workspace_id
           OR t.workspace_id <> e.workspace_id OR m.workspace_id <> e.workspace_id
           OR e.customer_id IS DISTINCT FROM o.customer_id
        """,
    )
    assert mismatches == 0


def test_every_type_is_written_in_every_phrasing(seeded: SeedSummary, db: Engine) -> None:
    combinations = Counter(
        rows(db, "SELECT exception_type, phrasing FROM fulfilment.exception_truth")
    )
    for name in TYPE_NAMES:
        for phrasing in ("explicit", "implied", "ambiguous"):
            assert combinations[(name, phrasing)] >= 5, (name, phrasing)
    assert {t.name for t in EXCEPTION_TYPES} == set(TYPE_NAMES)


def test_workspaces_differ_greatly_in_size(seeded: SeedSummary) -> None:
    sizes = [w.exceptions for w in seeded.workspaces]
    assert len(sizes) == 4
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[0] >= 10 * sizes[-1] > 0


def test_each_recommended_action_is_from_its_types_playbook(
    seeded: SeedSummary, db: Engine
) -> None:
    pairs = rows(db, "SELECT exception_type, recommended_action FROM fulfilment.exception_truth")
    assert all(action in {a.name for a in PLAYBOOK[kind]} for kind, action in pairs)
    assert {action for _, action in pairs} == {a.name for acts in PLAYBOOK.values() for a in acts}


def test_only_ambiguous_descriptions_have_a_confusable_type(
    seeded: SeedSummary, db: Engine
) -> None:
    found = rows(
        db, "SELECT phrasing, exception_type, confusable_with FROM fulfilment.exception_truth"
    )
    for phrasing, kind, confusable in found:
        if phrasing == "ambiguous":
            assert confusable in TYPE_NAMES and confusable != kind
        else:
            assert confusable is None


def test_implied_and_ambiguous_descriptions_do_not_name_their_type(
    seeded: SeedSummary, db: Engine
) -> None:
    found = rows(
        db,
        "SELECT t.exception_type, e.description FROM fulfilment.exceptions AS e "
        "JOIN fulfilment.exception_truth AS t ON t.exception_id = e.id "
        "WHERE t.phrasing IN ('implied', 'ambiguous')",
    )
    assert len(found) > 300
    naming = [
        (kind, description)
        for kind, description in found
        if re.search(rf"\b(?:{KEYWORDS[kind]})\b", description, re.IGNORECASE)
    ]
    assert naming == []


def test_descriptions_are_varied_in_wording_and_length(seeded: SeedSummary, db: Engine) -> None:
    descriptions = [d for (d,) in rows(db, "SELECT description FROM fulfilment.exceptions")]
    lengths = sorted(len(d) for d in descriptions)
    assert len(set(descriptions)) >= 0.9 * len(descriptions)
    assert lengths[0] < 20 and lengths[-1] > 200
    assert sum(1 for d in descriptions if not d.isascii()) >= 5  # other languages, names


def test_carrier_delays_are_reported_after_the_promised_date(
    seeded: SeedSummary, db: Engine
) -> None:
    early = scalar(
        db,
        "SELECT count(*) FROM fulfilment.exceptions AS e "
        "JOIN fulfilment.exception_truth AS t ON t.exception_id = e.id "
        "JOIN fulfilment.orders AS o ON o.id = e.order_id "
        "WHERE t.exception_type = 'carrier_delay' AND e.reported_at <= o.promised_at",
    )
    assert early == 0
    assert seeded.sla_breaches >= seeded.exception_types["carrier_delay"]


def test_customs_holds_cross_a_customs_border(seeded: SeedSummary, db: Engine) -> None:
    warehouses = {w.name: w.country for p in PROFILES for w in p.warehouses}
    shipments = rows(
        db,
        "SELECT o.warehouse, o.destination_country FROM fulfilment.orders AS o "
        "JOIN fulfilment.exceptions AS e ON e.order_id = o.id "
        "JOIN fulfilment.exception_truth AS t ON t.exception_id = e.id "
        "WHERE t.exception_type = 'customs_hold'",
    )
    assert shipments
    for warehouse, destination in shipments:
        assert COUNTRIES[warehouses[warehouse]].customs != COUNTRIES[destination].customs


def test_order_states_follow_their_exceptions(seeded: SeedSummary, db: Engine) -> None:
    states = rows(
        db,
        "SELECT t.exception_type, o.shipped_at IS NOT NULL, o.delivered_at IS NOT NULL "
        "FROM fulfilment.orders AS o JOIN fulfilment.exceptions AS e ON e.order_id = o.id "
        "JOIN fulfilment.exception_truth AS t ON t.exception_id = e.id",
    )
    for kind, shipped, delivered in states:
        if kind == "stock_out":
            assert not shipped
        elif kind == "damaged_item":
            assert delivered
        elif kind in ("customs_hold", "address_invalid"):
            assert shipped


def test_times_are_recent_and_never_after_the_database_clock(db: Engine) -> None:
    summary = reseed(db, records=300, workspaces=3, seed=5)
    assert summary.anchor is not None
    assert scalar(db, "SELECT now()") - summary.anchor < timedelta(minutes=10)
    problems = scalar(
        db,
        """
        SELECT count(*) FROM fulfilment.exceptions AS e
        JOIN fulfilment.orders AS o ON o.id = e.order_id
        LEFT JOIN fulfilment.messages AS m ON m.exception_id = e.id
        WHERE e.reported_at > now() OR o.ordered_at > e.reported_at
           OR o.ordered_at < now() - interval '60 days'
           OR (SELECT max(reported_at) FROM fulfilment.exceptions WHERE order_id = o.id)
              < now() - interval '30 days'
           OR o.shipped_at < o.ordered_at OR o.delivered_at < o.shipped_at
           OR o.delivered_at > now()
           OR o.promised_at <> o.ordered_at + o.sla_hours * interval '1 hour'
           OR m.sent_at < e.reported_at OR m.sent_at > now()
           OR e.updated_at > now() OR o.updated_at > now()
        """,
    )
    assert problems == 0


def test_write_back_columns_are_empty_after_seeding(seeded: SeedSummary, db: Engine) -> None:
    assert (
        scalar(
            db,
            "SELECT count(*) FROM fulfilment.exceptions WHERE ai_label IS NOT NULL "
            "OR ai_confidence IS NOT NULL OR ai_action IS NOT NULL OR ai_summary IS NOT NULL",
        )
        == 0
    )


# --- personal data ---------------------------------------------------------------------------


def texts_by_exception(db: Engine) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for exception_id, body in rows(
        db,
        "SELECT id, description FROM fulfilment.exceptions UNION ALL "
        "SELECT exception_id, body FROM fulfilment.messages",
    ):
        found.setdefault(exception_id, []).append(body)
    return found


def test_messages_hold_personal_data_of_every_kind(seeded: SeedSummary, db: Engine) -> None:
    bodies = [body for (body,) in rows(db, "SELECT body FROM fulfilment.messages")]
    found = {
        "email": sum(len(EMAIL.findall(b)) for b in bodies),
        "phone": sum(len(PHONE.findall(b)) for b in bodies),
        "card": sum(len(cards(b)) for b in bodies),
        "iban": sum(len(ibans(b)) for b in bodies),
        "ip": sum(len(IPV4.findall(b)) + len(IPV6.findall(b)) for b in bodies),
        "token": sum(len(TOKEN.findall(b)) for b in bodies),
    }
    assert min(found.values()) >= 3, found
    assert found["token"] < 0.02 * len(bodies)  # pasted by mistake: rare
    addressed = scalar(
        db,
        "SELECT count(*) FROM fulfilment.messages AS m "
        "JOIN fulfilment.exceptions AS e ON e.id = m.exception_id "
        "JOIN fulfilment.customers AS c ON c.id = e.customer_id "
        "WHERE strpos(m.body, c.address) > 0",
    )
    assert addressed >= 20


def test_card_numbers_pass_luhn_and_ibans_their_checksum(seeded: SeedSummary, db: Engine) -> None:
    texts = [t for group in texts_by_exception(db).values() for t in group]
    found_cards = [c for t in texts for c in cards(t)]
    found_ibans = [i for t in texts for i in ibans(t)]
    assert len(found_cards) > 50 and len(found_ibans) > 50
    assert [c for c in found_cards if not luhn(c)] == []
    assert [i for i in found_ibans if not iban_ok(i)] == []


def test_planted_counts_match_the_personal_data_in_the_texts(
    seeded: SeedSummary, db: Engine
) -> None:
    texts = texts_by_exception(db)
    with db.connect() as connection:
        truth = fulfilment.truth_records(connection)
    for exception_id, group in texts.items():
        planted = truth[exception_id].planted_pii
        found = {
            "email": sum(len(EMAIL.findall(t)) for t in group),
            "card": sum(len(cards(t)) for t in group),
            "iban": sum(len(ibans(t)) for t in group),
            "token": sum(len(TOKEN.findall(t)) for t in group),
            "ip": sum(len(IPV4.findall(t)) + len(IPV6.findall(t)) for t in group),
        }
        expected = {kind: planted.get(kind, 0) for kind in found}
        assert found == expected, (exception_id, group)
    assert sum(seeded.planted_pii.values()) > 1000


# --- summary and truth -----------------------------------------------------------------------


def test_seed_summary_matches_what_describe_counts(seeded: SeedSummary, db: Engine) -> None:
    with db.connect() as connection:
        described = fulfilment.describe(connection, now=NOW)
    assert described == seeded
    assert sum(described.exception_types.values()) == 1000
    assert list(described.exception_types) == list(TYPE_NAMES)
    rendered = seeded.render()
    assert all(w.workspace_id in rendered for w in seeded.workspaces)
    assert "carrier_delay" in rendered


def test_truth_gives_every_exception_its_type(seeded: SeedSummary, db: Engine) -> None:
    with db.connect() as connection:
        types = fulfilment.truth(connection)
        records = fulfilment.truth_records(connection)
    assert sorted(types) == list(range(1, 1001))
    assert set(types.values()) == set(TYPE_NAMES)
    assert {key: record.exception_type for key, record in records.items()} == types


# --- as a pipeline source --------------------------------------------------------------------


def exceptions_source() -> SourceConfig:
    """The source a demo pipeline reads: exceptions with their order, customer and messages."""
    config = parse_config(
        {
            "sources": [
                {
                    "name": "fulfilment_exceptions",
                    "table": "fulfilment.exceptions",
                    "key_column": "id",
                    "workspace_column": "workspace_id",
                    "updated_at_column": "updated_at",
                    "columns": ["description", "severity", "reported_at"],
                    "entity": {
                        "type": "fulfilment_exception",
                        "category": "Fulfilment exception",
                        "attributes": {"description": "what happened"},
                        "relationships": {
                            "order": "The order the exception is about.",
                            "customer": "Who ordered.",
                            "messages": "The support conversation about it.",
                        },
                    },
                    "related": [
                        {
                            "name": "order",
                            "table": "fulfilment.orders",
                            "join": {"local": "order_id", "remote": "id"},
                            "fields": [
                                "order_number",
                                "carrier",
                                "warehouse",
                                "service_level",
                                "sla_hours",
                                "promised_at",
                                "shipped_at",
                                "delivered_at",
                                "destination_country",
                                "status",
                            ],
                            "entity_type": "order",
                        },
                        {
                            "name": "customer",
                            "table": "fulfilment.customers",
                            "join": {"local": "customer_id", "remote": "id"},
                            "fields": ["segment", "country"],
                            "entity_type": "customer",
                        },
                        {
                            "name": "messages",
                            "table": "fulfilment.messages",
                            "join": {"local": "id", "remote": "exception_id"},
                            "fields": ["sender", "body", "sent_at"],
                            "many": True,
                            "limit": 10,
                            "entity_type": "support_message",
                        },
                    ],
                    "privacy": "redact",
                    "stages": ["redact", "context"],
                }
            ]
        },
        path="<fulfilment test>",
    )
    return config.sources[0]


def test_a_source_over_the_exceptions_and_their_related_tables_passes_check_source(
    seeded: SeedSummary, db: Engine
) -> None:
    source = exceptions_source()
    with db.connect() as connection:
        key_type = check_source(connection, source, relations=source.related, updated_at=True)
    assert key_type == "bigint"


def events_of(db: Engine, source: str, action: str) -> set[str]:
    found = rows(
        db,
        "SELECT DISTINCT unnest(record_ids) FROM enrichment.events "
        "WHERE source = :source AND action = :action",
        source=source,
        action=action,
    )
    return {key for (key,) in found}


@pytest.fixture
def captured(db: Engine) -> Iterator[SourceConfig]:
    source = exceptions_source()
    with db.begin() as connection:
        capture.install(connection, source)
    try:
        yield source
    finally:
        with db.begin() as connection:
            capture.uninstall(connection, source)


def _clear_events(connection: Connection) -> None:
    connection.execute(text("DELETE FROM enrichment.events"))


@pytest.mark.slow
def test_capture_triggers_see_a_seed_and_a_reseed(db: Engine, captured: SourceConfig) -> None:
    reseed(db, records=200, workspaces=2, seed=1, now=NOW)
    assert events_of(db, captured.name, "CREATE") == {str(i) for i in range(1, 201)}
    with db.begin() as connection:
        _clear_events(connection)
    reseed(db, records=120, workspaces=2, seed=2, now=NOW)
    assert events_of(db, captured.name, "DELETE") == {str(i) for i in range(1, 201)}
    assert events_of(db, captured.name, "CREATE") == {str(i) for i in range(1, 121)}
    workspaces = {w for (w,) in rows(db, "SELECT DISTINCT workspace_id FROM enrichment.events")}
    assert workspaces == {"brightcart", "maison-lumiere"}
