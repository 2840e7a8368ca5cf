"""The seeded generator: customers, orders, exceptions, their messages and the ground truth, as
rows in the column order of ``schema``, produced in chunks so a million exceptions never sit in
memory at once.

Deterministic: the same records, workspaces, seed and ``now`` give the same rows, whatever the
caller does with them. Times are drawn as offsets before ``now`` (the database clock when
seeding), so the data always looks recent.
"""

from __future__ import annotations

import bisect
import math
import random
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from enrichment.fulfilment import phrasing, pii
from enrichment.fulfilment.phrasing import Phrase
from enrichment.fulfilment.playbook import recommended_action
from enrichment.fulfilment.world import (
    CARRIERS,
    COUNTRIES,
    PROFILES,
    SERVICE_LEVELS,
    SERVICE_WEIGHTS,
    Carrier,
    Country,
    Profile,
    Warehouse,
)

# Exceptions per chunk: the unit of generation and of loading.
CHUNK_EXCEPTIONS = 10_000
# Orders without an exception, and orders with two, per order with one (see _exception_count).
ORDERS_PER_EXCEPTION = 1 / 0.70
PHRASINGS = (("explicit", 0.55), ("implied", 0.30), ("ambiguous", 0.15))
MESSAGES_PER_EXCEPTION = ((0, 0.10), (1, 0.20), (2, 0.30), (3, 0.22), (4, 0.12), (5, 0.06))
SEVERITIES = ("low", "medium", "high", "critical")
_PAIRS = (
    (("customs_hold", "carrier_delay"), 0.35),
    (("address_invalid", "carrier_delay"), 0.35),
    (("carrier_delay", "damaged_item"), 0.30),
)
_COMPANY_WORDS = ("Atlas", "Summit", "Harbor", "Linden", "Falcon", "Meridian", "Cedar", "Orion")
_COMPANY_KINDS = ("Trading", "Supply", "Retail", "Studio", "Works", "Logistics", "Interiors")
_COMPANY_SUFFIX = {
    "GB": "Ltd",
    "IE": "Ltd",
    "FR": "SARL",
    "DE": "GmbH",
    "NL": "B.V.",
    "BE": "BV",
    "ES": "S.L.",
    "IT": "S.r.l.",
    "CH": "AG",
    "SE": "AB",
    "NO": "AS",
    "US": "LLC",
    "CA": "Inc.",
}
_TLD = {"GB": "co.uk", "US": "com", "CA": "ca"}
_CURRENCY_SIGN = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF ", "SEK": "SEK "}
_DATE_FORMATS = ("%d %b", "%Y-%m-%d", "%b %d", "%d/%m", "%A %d %B", "%a %d.%m")
_PII_SLOTS = {
    "email": "email",
    "phone": "phone",
    "support_phone": "phone",
    "depot_phone": "phone",
    "address": "address",
    "correct_address": "address",
    "depot_address": "address",
    "card": "card",
    "iban": "iban",
    "national_id": "national_id",
    "ip": "ip",
    "token": "token",
}
# Customers in countries without IBANs (US, CA) give a card, never an IBAN.
_NO_IBAN_ASKS = tuple(ask for ask in phrasing.CUSTOMER_ASK if "{iban}" not in ask)
_NO_IBAN_SLIPS = tuple(slip for slip in phrasing.AGENT_SLIPS if "{iban}" not in slip[0])

T = TypeVar("T")


class Weighted:
    """Draws from weighted choices with one random number and a bisect."""

    def __init__(self, pairs: Sequence[tuple[Any, float]]) -> None:
        self.items = [item for item, _ in pairs]
        self.cumulative: list[float] = []
        total = 0.0
        for _, weight in pairs:
            total += weight
            self.cumulative.append(total)
        self.total = total

    def draw(self, rng: random.Random) -> Any:
        index = bisect.bisect_right(self.cumulative, rng.random() * self.total)
        return self.items[min(index, len(self.items) - 1)]


def _choice(rng: random.Random, items: Sequence[T]) -> T:
    return items[int(rng.random() * len(items))]


@dataclass(frozen=True)
class WorkspacePlan:
    id: str
    profile: Profile
    share: float
    first_customer: int
    customers: int


def plan_workspaces(records: int, workspaces: int) -> list[WorkspacePlan]:
    """Workspaces of very different sizes: shares fall as 1/rank² (70/18/8/4 % for four), and
    customers follow each business's orders per customer."""
    weights = [1 / (rank + 1) ** 2 for rank in range(workspaces)]
    total = sum(weights)
    plans = []
    next_customer = 1
    for rank, weight in enumerate(weights):
        profile = PROFILES[rank % len(PROFILES)]
        suffix = "" if rank < len(PROFILES) else f"-{rank // len(PROFILES) + 1}"
        share = weight / total
        orders = records * ORDERS_PER_EXCEPTION * share
        customers = max(1, math.ceil(orders / profile.orders_per_customer))
        plans.append(WorkspacePlan(profile.slug + suffix, profile, share, next_customer, customers))
        next_customer += customers
    return plans


class Customer(NamedTuple):
    first: str
    last: str
    email: str
    phone: str
    country: str
    address: str
    segment: str


@dataclass
class Chunk:
    """Rows of each table but customers, in ``schema.LOADED`` column order, ready for COPY."""

    orders: list[tuple[Any, ...]] = field(default_factory=list)
    exceptions: list[tuple[Any, ...]] = field(default_factory=list)
    messages: list[tuple[Any, ...]] = field(default_factory=list)
    truth: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class Tally:
    """What was generated, counted on the way (the seed summary)."""

    workspaces: dict[str, Counter[str]] = field(default_factory=dict)
    types: Counter[str] = field(default_factory=Counter)
    phrasing: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    pii: Counter[str] = field(default_factory=Counter)
    sla_breaches: int = 0  # orders not delivered by their promised time (as of now)
    first_reported: datetime | None = None
    last_reported: datetime | None = None


@dataclass(slots=True)
class _Order:
    """One order's facts while its exceptions and messages are written."""

    number: str
    profile: Profile
    customer: Customer
    dest: Country
    carrier: Carrier
    warehouse: Warehouse
    service: str
    currency: str
    amount: str
    shipping_address: str
    promised: datetime
    tracking: str | None


class Slots(dict[str, str]):
    """The values a template can use, computed when first asked for and then kept, so one
    exception's description and messages agree (same ticket, same agent, same card)."""

    def __init__(
        self,
        rng: random.Random,
        now: datetime,
        order: _Order,
        exception_type: str,
        days: int,
        restock_days: int | None,
        duties: str,
    ) -> None:
        super().__init__()
        self.rng = rng
        self.now = now
        self.order = order
        self.exception_type = exception_type
        self.days = days
        self.restock_days = restock_days
        self.duties = duties
        self.date_format = _choice(rng, _DATE_FORMATS)
        self.item = _choice(rng, order.profile.items)

    def date(self, moment: datetime) -> str:
        return moment.strftime(self.date_format)

    def __missing__(self, key: str) -> str:
        value = self._compute(key)
        self[key] = value
        return value

    def _compute(self, key: str) -> str:  # one branch per slot
        rng, order = self.rng, self.order
        customer = order.customer
        if key == "carrier":
            return str(order.carrier.name)
        if key == "tracking":
            return order.tracking or "(not yet shipped)"
        if key == "order":
            return str(order.number)
        if key == "days":
            return str(self.days)
        if key == "hours":
            return str(24 + int(rng.random() * 72))
        if key == "hub":
            return _choice(rng, order.carrier.hubs)
        if key == "item":
            return self.item
        if key == "sku":
            return f"{order.profile.sku_prefix}-{10000 + int(rng.random() * 89999)}"
        if key == "qty":
            return str(1 + int(rng.random() ** 3 * 12))
        if key == "stock_qty":
            return str(1 + int(rng.random() * 5))
        if key == "dest_country":
            return order.dest.name
        if key == "dest_city":
            return _choice(rng, order.dest.cities).name
        if key == "warehouse":
            return str(order.warehouse.name)
        if key == "eta":
            return self.date(self.now + timedelta(days=1 + int(rng.random() * 5)))
        if key == "promised":
            return self.date(order.promised)
        if key == "address":
            return str(order.shipping_address)
        if key == "correct_address":
            return customer.address
        if key == "street":
            return _choice(rng, order.dest.streets)
        if key == "number":
            return str(1 + int(rng.random() * 240))
        if key == "postcode":
            return pii.fill(_choice(rng, order.dest.cities).postcode, rng)
        if key in ("unit", "unit2"):
            return order.dest.unit.format(n=1 + int(rng.random() * 40))
        if key == "email":
            return customer.email
        if key == "phone":
            return customer.phone
        if key == "name":
            return customer.first
        if key == "full_name":
            return f"{customer.first} {customer.last}"
        if key == "agent":
            return _choice(rng, phrasing.AGENTS)
        if key == "company":
            return order.profile.company
        if key == "ticket":
            return f"#{100000 + int(rng.random() * 899999)}"
        if key == "claim":
            return "CLM-" + pii.fill("########", rng)
        if key == "amount":
            return f"{_CURRENCY_SIGN[order.currency]}{order.amount}"
        if key == "duties":
            return self.duties
        if key == "restock":
            return self.date(self.now + timedelta(days=self.restock_days or 45))
        if key == "restock_days":
            return str(self.restock_days or 45)
        if key == "service":
            return str(order.service)
        if key == "weekday":
            return _choice(rng, phrasing.WEEKDAYS)
        if key == "bin":
            return pii.fill("L-##-##", rng)
        if key == "card":
            return pii.card(rng)
        if key == "iban":
            return pii.iban(COUNTRIES[customer.country], rng)
        if key == "national_id":
            return pii.national_id(order.dest, rng)
        if key == "ip":
            return pii.ip_address(rng)
        if key == "token":
            return pii.token(rng)
        if key == "depot_phone":
            return pii.phone(order.dest, rng)
        if key == "depot_address":
            return pii.address(order.dest, rng)
        if key == "support_phone":
            return pii.phone(COUNTRIES[order.warehouse.country], rng)
        raise KeyError(key)


_PII_SLOT = re.compile(r"\{(" + "|".join(_PII_SLOTS) + r")\}")
_planted_by_template: dict[str, tuple[str, ...]] = {}


def _plant(template: str, counts: Counter[str]) -> None:
    """Count the personal data a template writes, by kind (each slot is one value)."""
    kinds = _planted_by_template.get(template)
    if kinds is None:
        kinds = tuple(_PII_SLOTS[slot] for slot in _PII_SLOT.findall(template))
        if len(_planted_by_template) < 50_000:  # templates with typos are mostly one-offs
            _planted_by_template[template] = kinds
    for kind in kinds:
        counts[kind] += 1


def _keep_unnamed(pool: Sequence[T], exception_type: str, text: Any) -> list[T]:
    return [entry for entry in pool if not phrasing.names_type(text(entry), exception_type)]


class Generator:
    """``batches()`` gives every row, table by table and chunk by chunk; ``tally`` counts
    them as they go. The customers are kept in memory (the orders refer back to them), the
    rest only a chunk at a time."""

    def __init__(self, *, records: int, workspaces: int, seed: int, now: datetime) -> None:
        self.records = records
        self.seed = seed
        self.now = now
        self.plans = plan_workspaces(records, workspaces)
        self.tally = Tally(workspaces={plan.id: Counter() for plan in self.plans})
        self.customers: list[Customer] = []
        self.by_country: list[dict[str, list[int]]] = []
        self._workspace = Weighted([(index, plan.share) for index, plan in enumerate(self.plans)])
        self._types = {p.slug: Weighted(p.types) for p in PROFILES}
        self._destinations = {p.slug: Weighted(p.destinations) for p in PROFILES}
        self._segments = {p.slug: Weighted(p.segments) for p in PROFILES}
        self._service = Weighted(SERVICE_WEIGHTS)
        self._phrasing = Weighted(PHRASINGS)
        self._pairs = Weighted(_PAIRS)
        self._message_count = Weighted(MESSAGES_PER_EXCEPTION)
        self._carriers: dict[tuple[str, str, bool, bool], list[Carrier]] = {}
        # Pools for implied and ambiguous descriptions hold no note that names the type.
        self._notes = {
            (name, strict): (
                _keep_unnamed(phrasing.NOTES, name, str) if strict else list(phrasing.NOTES),
                _keep_unnamed(phrasing.PII_NOTES, name, lambda n: n[0])
                if strict
                else list(phrasing.PII_NOTES),
                _keep_unnamed(phrasing.TYPE_NOTES[name], name, str)
                if strict
                else list(phrasing.TYPE_NOTES[name]),
            )
            for name in phrasing.TYPE_NOTES
            for strict in (False, True)
        }

    def batches(self) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        """(table, rows) in an order that loads parents before children: the customers, then
        per chunk its orders, exceptions, messages and truth."""
        for rows in self.customer_chunks():
            yield "customers", rows
        for chunk in self.chunks():
            yield "orders", chunk.orders
            yield "exceptions", chunk.exceptions
            yield "messages", chunk.messages
            yield "exception_truth", chunk.truth

    # --- customers ----------------------------------------------------------------------------

    def customer_chunks(self) -> Iterator[list[tuple[Any, ...]]]:
        """The customers of every workspace, in id order; kept in memory for the orders."""
        rng = random.Random(f"fulfilment/customers/{self.seed}")
        rows: list[tuple[Any, ...]] = []
        for plan in self.plans:
            profile = plan.profile
            by_country: dict[str, list[int]] = {}
            counts = self.tally.workspaces[plan.id]
            for customer_id in range(plan.first_customer, plan.first_customer + plan.customers):
                country = COUNTRIES[self._destinations[profile.slug].draw(rng)]
                segment = self._segments[profile.slug].draw(rng)
                customer, name = self._customer(rng, country, segment)
                self.customers.append(customer)
                by_country.setdefault(country.code, []).append(customer_id)
                updated = self.now - timedelta(seconds=int(3600 + rng.random() * 400 * 86400))
                rows.append(
                    (
                        customer_id,
                        plan.id,
                        name,
                        customer.email,
                        customer.phone,
                        segment,
                        country.code,
                        customer.address,
                        updated,
                    )
                )
                counts["customers"] += 1
                if len(rows) >= CHUNK_EXCEPTIONS:
                    yield rows
                    rows = []
            self.by_country.append(by_country)
        if rows:
            yield rows

    def _customer(self, rng: random.Random, country: Country, segment: str) -> tuple[Customer, str]:
        first = _choice(rng, country.first_names)
        last = _choice(rng, country.last_names)
        if segment == "Consumer":
            name = f"{first} {last}"
            domain = _choice(rng, country.email_domains)
        else:
            word, kind = _choice(rng, _COMPANY_WORDS), _choice(rng, _COMPANY_KINDS)
            name = f"{word} {kind} {_COMPANY_SUFFIX[country.code]}"
            tld = _TLD.get(country.code, country.code.lower())
            domain = f"{word.lower()}-{kind.lower()}.{tld}"
        customer = Customer(
            first,
            last,
            pii.email(first, last, domain, rng),
            pii.phone(country, rng),
            country.code,
            pii.address(country, rng),
            segment,
        )
        return customer, name

    # --- orders, exceptions, messages ---------------------------------------------------------

    def chunks(self) -> Iterator[Chunk]:
        """Orders with their exceptions, messages and truth, about CHUNK_EXCEPTIONS exceptions
        per chunk. Requires the customers (``customer_chunks``) to have been generated."""
        if not self.by_country:
            for _ in self.customer_chunks():
                pass
        rng = random.Random(f"fulfilment/orders/{self.seed}")
        ids = {"order": 0, "exception": 0, "message": 0}
        remaining = self.records
        unit = 0
        chunk = Chunk()
        while remaining > 0:
            if unit < len(self.plans):  # every workspace gets an exception first
                workspace, count = unit, 1
            else:
                workspace, count = self._workspace.draw(rng), self._exception_count(rng)
            count = min(count, remaining)
            self._order(rng, chunk, ids, self.plans[workspace], workspace, count)
            remaining -= count
            unit += 1
            if len(chunk.exceptions) >= CHUNK_EXCEPTIONS:
                yield chunk
                chunk = Chunk()
        if chunk.orders:
            yield chunk

    @staticmethod
    def _exception_count(rng: random.Random) -> int:
        draw = rng.random()
        return 0 if draw < 0.35 else (1 if draw < 0.95 else 2)

    def _draw_types(self, rng: random.Random, profile: Profile, count: int) -> tuple[str, ...]:
        if count == 0:
            return ()
        if count == 1:
            return (self._types[profile.slug].draw(rng),)
        pair: tuple[str, ...] = self._pairs.draw(rng)
        return pair

    def _order(
        self,
        rng: random.Random,
        chunk: Chunk,
        ids: dict[str, int],
        plan: WorkspacePlan,
        workspace: int,
        count: int,
    ) -> None:
        profile = plan.profile
        types = self._draw_types(rng, profile, count)
        warehouse = _choice(rng, profile.warehouses)
        home = COUNTRIES[warehouse.country].customs
        destinations = self._destinations[profile.slug]
        if "customs_hold" in types:
            abroad = [code for code, _ in profile.destinations if COUNTRIES[code].customs != home]
            dest = COUNTRIES[_choice(rng, abroad)]
        else:
            dest = COUNTRIES[destinations.draw(rng)]
        customer_id = self._pick_customer(rng, plan, workspace, dest.code)
        customer = self.customers[customer_id - 1]
        service = self._service.draw(rng)
        sla = _choice(rng, SERVICE_LEVELS[service])
        carrier = self._carrier(rng, profile, dest.code, service)

        ids["order"] += 1
        order_id = ids["order"]
        mu, sigma = profile.amount
        amount = f"{min(rng.lognormvariate(mu, sigma), 99_999.0):.2f}"
        if "address_invalid" in types:
            defect = _choice(rng, ("missing_number", "postcode_mismatch", "truncated"))
            shipping_address = pii.address(dest, rng, defect=defect)
        elif customer.country == dest.code and rng.random() < 0.92:
            shipping_address = customer.address
        else:
            shipping_address = pii.address(dest, rng)

        times = _timeline(rng, types, sla, service)
        now = self.now
        ordered = now + timedelta(seconds=round(times.ordered * 3600))
        shipped = delivered = None
        updated = ordered
        tracking = None
        if times.shipped is not None:
            shipped = updated = now + timedelta(seconds=round(times.shipped * 3600))
            tracking = _tracking(rng, carrier)
        if times.delivered is not None:
            delivered = updated = now + timedelta(seconds=round(times.delivered * 3600))
        order = _Order(
            number=f"{profile.order_prefix}-{100000 + order_id}",
            profile=profile,
            customer=customer,
            dest=dest,
            carrier=carrier,
            warehouse=warehouse,
            service=service,
            currency=profile.currency,
            amount=amount,
            shipping_address=shipping_address,
            promised=ordered + timedelta(hours=sla),
            tracking=tracking,
        )
        counts = self.tally.workspaces[plan.id]
        for exception_type, reported_hours in zip(types, times.reported, strict=True):
            if exception_type == "carrier_delay":
                days = max(1, round(times.late_hours / 24))  # days past the promised date
            else:  # days since the order left the warehouse (or was placed)
                start = times.ordered if times.shipped is None else times.shipped
                days = max(1, round((reported_hours - start) / 24))
            last = self._exception(
                rng,
                chunk,
                ids,
                plan,
                order,
                order_id,
                customer_id,
                exception_type,
                now + timedelta(seconds=round(reported_hours * 3600)),
                days,
            )
            updated = max(updated, last)
            counts["exceptions"] += 1
        chunk.orders.append(
            (
                order_id,
                plan.id,
                customer_id,
                order.number,
                carrier.name,
                warehouse.name,
                service,
                sla,
                ordered,
                order.promised,
                shipped,
                delivered,
                dest.code,
                order.amount,
                order.currency,
                times.status,
                order.tracking,
                order.shipping_address,
                updated,
            )
        )
        counts["orders"] += 1
        if (delivered or now) > order.promised:
            self.tally.sla_breaches += 1

    def _pick_customer(
        self, rng: random.Random, plan: WorkspacePlan, workspace: int, country: str
    ) -> int:
        """A customer of the workspace living in the destination country when there is one;
        the first customers of a list order more often (repeat buyers)."""
        local = self.by_country[workspace].get(country)
        if local:
            return local[int(len(local) * rng.random() ** 1.6)]
        return plan.first_customer + int(plan.customers * rng.random() ** 1.6)

    def _carrier(self, rng: random.Random, profile: Profile, dest: str, service: str) -> Carrier:
        """Express parcels go with an express carrier; most others with a domestic network of
        the destination, the rest with an international carrier."""
        domestic = rng.random() < 0.8
        key = (profile.slug, dest, service == "express", domestic)
        candidates = self._carriers.get(key)
        if candidates is None:
            serving = [
                CARRIERS[name]
                for name in profile.carriers
                if CARRIERS[name].countries is None or dest in (CARRIERS[name].countries or ())
            ]
            if service == "express":
                candidates = [c for c in serving if c.express] or serving
            elif domestic:
                candidates = [c for c in serving if c.countries is not None] or serving
            else:
                candidates = serving
            self._carriers[key] = candidates
        return candidates[int(rng.random() * len(candidates))]

    def _exception(
        self,
        rng: random.Random,
        chunk: Chunk,
        ids: dict[str, int],
        plan: WorkspacePlan,
        order: _Order,
        order_id: int,
        customer_id: int,
        exception_type: str,
        reported: datetime,
        days: int,
    ) -> datetime:
        """Write one exception, its messages and its truth; returns its last change."""
        ids["exception"] += 1
        exception_id = ids["exception"]
        planted: Counter[str] = Counter()
        flavor, restock_days = _flavor(rng, exception_type)
        amount = float(order.amount)
        duties_value = amount * (0.08 + rng.random() * 0.2) + 12
        duties = f"{_CURRENCY_SIGN[order.currency]}{duties_value:.2f}"
        slots = Slots(rng, self.now, order, exception_type, days, restock_days, duties)

        phrasing_kind = self._phrasing.draw(rng)
        description, voice, confusable, flavor = self._description(
            rng, slots, order, exception_type, phrasing_kind, flavor, planted
        )
        action = recommended_action(
            exception_type,
            days_late=days,
            amount=amount,
            restock_days=restock_days,
            duties=flavor == "duties",
        )
        severity = _severity(rng, exception_type, days, amount, order.customer.segment)
        last = self._messages(
            rng,
            chunk,
            ids,
            plan,
            slots,
            exception_id,
            exception_type,
            flavor,
            action,
            reported,
            planted,
        )
        chunk.exceptions.append(
            (
                exception_id,
                plan.id,
                order_id,
                customer_id,
                description,
                reported,
                severity,
                voice,
                last,
            )
        )
        chunk.truth.append(
            (
                exception_id,
                plan.id,
                exception_type,
                action,
                phrasing_kind,
                confusable,
                "{" + ",".join(f'"{kind}":{n}' for kind, n in sorted(planted.items())) + "}",
                reported,
            )
        )
        tally = self.tally
        tally.types[exception_type] += 1
        tally.phrasing[phrasing_kind] += 1
        tally.actions[action] += 1
        tally.pii.update(planted)
        if tally.first_reported is None or reported < tally.first_reported:
            tally.first_reported = reported
        if tally.last_reported is None or reported > tally.last_reported:
            tally.last_reported = reported
        return last

    def _description(
        self,
        rng: random.Random,
        slots: Slots,
        order: _Order,
        exception_type: str,
        kind: str,
        flavor: str | None,
        planted: Counter[str],
    ) -> tuple[str, str, str | None, str | None]:
        """(text, voice, confusable type, flavor). Typos, lower case, a prefix and notes are
        added to the template before its slots are filled, so values stay intact."""
        strict = kind != "explicit"
        local = phrasing.LOCAL_FEED.get((exception_type, order.carrier.language))
        if kind == "explicit" and local and rng.random() < 0.3:
            phrase = Phrase(_choice(rng, local), phrasing.CARRIER_FEED)
        else:
            pool = {
                "explicit": phrasing.EXPLICIT,
                "implied": phrasing.IMPLIED,
                "ambiguous": phrasing.AMBIGUOUS,
            }[kind][exception_type]
            phrase = _choice(rng, pool)
        if phrase.flavor is not None:
            flavor = phrase.flavor
        parts = []
        prefixes = phrasing.PREFIXES[phrase.voice]
        if rng.random() < 0.2:
            parts.append(_choice(rng, prefixes))
        parts.append(phrase.text)
        notes, pii_notes, type_notes = self._notes[(exception_type, strict)]
        extra = rng.random()
        if phrase.voice == phrasing.CARRIER_FEED:  # systems append references, not remarks
            if extra < 0.2:
                parts.append(" " + _choice(rng, type_notes))
            if rng.random() < 0.2:
                parts.append(" " + _choice(rng, phrasing.CARRIER_NOTES)[0])
        else:
            if extra < 0.25:
                parts.append(" " + _choice(rng, notes))
            elif extra < 0.4:
                parts.append(" " + _choice(rng, type_notes))
            if rng.random() < 0.22:
                parts.append(" " + _choice(rng, pii_notes)[0])
            if rng.random() < 0.12:
                parts.append(" " + _choice(rng, notes))
        if flavor is not None and phrase.flavor is None:
            wanted = 0.35 if kind == "ambiguous" else 0.75
            if rng.random() < wanted:
                parts.append(" " + _choice(rng, phrasing.FLAVOR_NOTES[(exception_type, flavor)]))
        template = parts[0] + "".join(parts[1:]) if len(parts) > 1 else parts[0]
        if phrase.voice != phrasing.CARRIER_FEED:
            if rng.random() < (0.25 if phrase.voice == phrasing.PORTAL else 0.12):
                template = phrasing.with_typos(template, 1 + int(rng.random() * 3), rng)
            if rng.random() < 0.08:
                template = template.lower()
        _plant(template, planted)
        text = _one_day(template.format_map(slots), slots)
        return text, phrase.voice, phrase.confusable, flavor

    def _messages(
        self,
        rng: random.Random,
        chunk: Chunk,
        ids: dict[str, int],
        plan: WorkspacePlan,
        slots: Slots,
        exception_id: int,
        exception_type: str,
        flavor: str | None,
        action: str,
        reported: datetime,
        planted: Counter[str],
    ) -> datetime:
        count: int = self._message_count.draw(rng)
        if count == 0:
            return reported
        gaps = [0.05 + rng.random() * 3] + [0.1 + rng.random() * 20 for _ in range(count - 1)]
        room = (self.now - reported).total_seconds() / 3600 - 0.01
        total = sum(gaps)
        if total > room:
            gaps = [gap * room / total for gap in gaps]
        sender = _first_sender(rng, exception_type)
        has_iban = COUNTRIES[slots.order.customer.country].iban is not None
        moment = reported
        counts = self.tally.workspaces[plan.id]
        for gap in gaps:
            moment = moment + timedelta(seconds=round(gap * 3600))
            if sender == "customer":
                template, channel = _customer_message(rng, exception_type, flavor, has_iban)
            elif sender == "agent":
                template, channel = _agent_message(rng, exception_type, flavor, action, has_iban)
            else:
                template, channel = _carrier_message(rng, exception_type, flavor)
            _plant(template, planted)
            ids["message"] += 1
            chunk.messages.append(
                (
                    ids["message"],
                    plan.id,
                    exception_id,
                    sender,
                    channel,
                    _one_day(template.format_map(slots), slots),
                    moment,
                    moment,
                )
            )
            counts["messages"] += 1
            sender = _next_sender(rng, sender)
        return moment


# --- time --------------------------------------------------------------------------------------


class _Times(NamedTuple):
    """Hours relative to now (negative: in the past)."""

    ordered: float
    shipped: float | None
    delivered: float | None
    reported: tuple[float, ...]
    status: str
    late_hours: float


_HANDLING = {"express": (1.0, 10.0), "standard": (4.0, 36.0), "economy": (8.0, 60.0)}


def _timeline(rng: random.Random, types: tuple[str, ...], sla: int, service: str) -> _Times:
    """An order's life from its exceptions: a delay is reported after the promised date, a
    customs hold or a failed delivery before it, damage after delivery, a stock-out before
    shipping. The last report is recent (days, at most a month ago)."""
    low, high = _HANDLING[service]
    handling = low + rng.random() * (high - low)
    age = 0.3 + min(rng.expovariate(1 / 120), 30 * 24 - 1)  # hours since the last report
    late = 3 + min(rng.expovariate(1 / 60), 14 * 24)
    transit = max(2.0, sla - handling)
    if not types:
        ordered = -(2 + rng.random() * 45 * 24)
        shipped: float | None = ordered + handling
        speed = 0.5 + rng.random() * 0.55 if rng.random() < 0.95 else 1.05 + rng.random() * 0.35
        delivered: float | None = ordered + handling + transit * speed
        assert shipped is not None and delivered is not None
        if shipped > 0:
            return _Times(ordered, None, None, (), "processing", 0.0)
        if delivered > 0:
            status = "out_for_delivery" if delivered < 12 else "in_transit"
            return _Times(ordered, shipped, None, (), status, 0.0)
        return _Times(ordered, shipped, delivered, (), "delivered", 0.0)
    if types == ("stock_out",):
        after = 0.5 + rng.random() * 60
        return _Times(-age - after, None, None, (-age,), "backordered", 0.0)
    if types == ("carrier_delay",):
        ordered = -age - late - sla
        delivered = None
        status = "in_transit"
        if age > 12 and rng.random() < 0.25:
            delivered = -age + 4 + rng.random() * min(age - 5, 72)
            status = "delivered"
        return _Times(ordered, ordered + handling, delivered, (-age,), status, late)
    if types in (("customs_hold",), ("address_invalid",)):
        before = 12 + rng.random() * max(1.0, transit * 0.85 - 12)
        ordered = -age - before - handling
        if types[0] == "customs_hold":
            status = "held"
        else:
            status = "returned" if age > 120 and rng.random() < 0.5 else "delivery_failed"
        return _Times(ordered, ordered + handling, None, (-age,), status, 0.0)
    if types == ("damaged_item",):
        speed = 0.5 + rng.random() * 0.55 if rng.random() < 0.9 else 1.05 + rng.random() * 0.3
        after = 1 + rng.random() * 96
        delivered = -age - after
        ordered = delivered - transit * speed - handling
        status = "returned" if age > 72 and rng.random() < 0.15 else "delivered"
        return _Times(ordered, ordered + handling, delivered, (-age,), status, 0.0)
    if types[1] == "carrier_delay":  # customs hold or failed delivery, then late
        ordered = -age - late - sla
        first = ordered + handling + 12 + rng.random() * max(1.0, transit * 0.8 - 12)
        status = "held" if types[0] == "customs_hold" else "in_transit"
        return _Times(ordered, ordered + handling, None, (first, -age), status, late)
    # late, then delivered damaged
    after = 1 + rng.random() * 48
    delivered = -age - after
    reported_late = delivered - 6 - rng.random() * 90
    ordered = reported_late - late - sla
    return _Times(ordered, ordered + handling, delivered, (reported_late, -age), "delivered", late)


# --- small draws -------------------------------------------------------------------------------


def _flavor(rng: random.Random, exception_type: str) -> tuple[str | None, int | None]:
    """What decides the action besides the order's data: restock for a stock-out, documents
    or duties for a customs hold."""
    if exception_type == "stock_out":
        draw = rng.random()
        if draw < 0.55:
            return "known", 2 + int(rng.random() * 19)
        if draw < 0.8:
            return "far", 28 + int(rng.random() * 40)
        return "none", None
    if exception_type == "customs_hold":
        return ("duties" if rng.random() < 0.35 else "documents"), None
    return None, None


def _severity(
    rng: random.Random, exception_type: str, days: int, amount: float, segment: str
) -> str | None:
    if rng.random() < 0.2:
        return None  # not triaged yet
    level = 1
    if (exception_type == "carrier_delay" and days >= 5) or (
        exception_type == "damaged_item" and amount >= 250
    ):
        level = 2
    elif exception_type == "address_invalid":
        level = 0 if rng.random() < 0.4 else 1
    if segment == "Enterprise":
        level += 1
    level += (rng.random() < 0.15) - (rng.random() < 0.15)
    return SEVERITIES[max(0, min(3, level))]


def _tracking(rng: random.Random, carrier: Carrier) -> str:
    if carrier.tracking == "S10":
        serial = pii.fill("########", rng)
        total = sum(int(d) * w for d, w in zip(serial, (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
        check = 11 - total % 11
        digit = 5 if check == 11 else (0 if check == 10 else check)
        prefix = _choice(rng, ("RR", "LX", "CP", "LA", "EE"))
        return f"{prefix}{serial}{digit}{carrier.origin}"
    number = pii.fill(carrier.tracking, rng)
    digits = number.replace(".", "")
    if digits.isdigit() and 13 <= len(digits) <= 19 and pii.luhn_valid(digits):
        # A tracking number is not a card number: keep it from passing the Luhn check.
        number = number[:-1] + str((int(number[-1]) + 1) % 10)
    return number


def _first_sender(rng: random.Random, exception_type: str) -> str:
    draw = rng.random()
    if exception_type in ("carrier_delay", "customs_hold"):
        return "carrier" if draw < 0.3 else ("customer" if draw < 0.8 else "agent")
    if exception_type == "stock_out":
        return "agent" if draw < 0.6 else "customer"
    return "customer" if draw < 0.6 else ("agent" if draw < 0.9 else "carrier")


def _next_sender(rng: random.Random, sender: str) -> str:
    draw = rng.random()
    if sender == "customer":
        return "agent" if draw < 0.8 else ("carrier" if draw < 0.9 else "customer")
    if sender == "agent":
        return "customer" if draw < 0.7 else ("carrier" if draw < 0.9 else "agent")
    return "agent" if draw < 0.5 else "customer"


def _join(*parts: str, separator: str = "\n") -> str:
    return separator.join(part for part in parts if part)


def _one_day(text: str, slots: Slots) -> str:
    return text.replace(" 1 days", " 1 day") if slots.days == 1 else text


def _customer_message(
    rng: random.Random, exception_type: str, flavor: str | None, has_iban: bool
) -> tuple[str, str]:
    channel = "email" if rng.random() < 0.6 else ("chat" if rng.random() < 0.75 else "portal")
    lines = phrasing.CUSTOMER_FLAVOR.get((exception_type, flavor or ""))
    if lines is None or rng.random() < 0.25:
        lines = phrasing.CUSTOMER_BODY[exception_type]
    body = _choice(rng, lines)
    asks = phrasing.CUSTOMER_ASK if has_iban else _NO_IBAN_ASKS
    ask = _choice(rng, asks)
    if rng.random() < 0.3:
        ask = _join(ask, _choice(rng, asks), separator=" ")
    if channel == "chat":
        template = _join(body, ask, separator=" ")
        if rng.random() < 0.4:
            template = template.lower()
    else:
        opening = _choice(rng, phrasing.CUSTOMER_OPEN)
        closing = _choice(rng, phrasing.CUSTOMER_CLOSE)
        template = _join(opening, _join(body, ask, separator=" "), closing)
    if rng.random() < 0.2:
        template = phrasing.with_typos(template, 1 + int(rng.random() * 3), rng)
    return template, channel


def _agent_message(
    rng: random.Random, exception_type: str, flavor: str | None, action: str, has_iban: bool
) -> tuple[str, str]:
    channel = "email" if rng.random() < 0.6 else ("chat" if rng.random() < 0.6 else "phone_note")
    lines = [_choice(rng, phrasing.AGENT_BODY[exception_type])]
    if flavor is not None and rng.random() < 0.7:
        lines.append(_choice(rng, phrasing.AGENT_FLAVOR[(exception_type, flavor)]))
    if rng.random() < 0.6:
        lines.append(_choice(rng, phrasing.AGENT_ACTION[action]))
    if rng.random() < 0.03:
        lines.append(_choice(rng, phrasing.AGENT_SLIPS if has_iban else _NO_IBAN_SLIPS)[0])
    body = " ".join(lines)
    if channel == "phone_note":
        return _join("Internal note:", body, separator=" "), channel
    opening = _choice(rng, phrasing.AGENT_OPEN)
    closing = _choice(rng, phrasing.AGENT_CLOSE)
    return _join(opening, body, closing), channel


def _carrier_message(
    rng: random.Random, exception_type: str, flavor: str | None
) -> tuple[str, str]:
    channel = "carrier_api" if rng.random() < 0.7 else "email"
    lines = phrasing.CARRIER_FLAVOR.get((exception_type, flavor or ""))
    if lines is None or rng.random() < 0.25:
        lines = phrasing.CARRIER_BODY[exception_type]
    body = _choice(rng, lines)
    extra = _choice(rng, phrasing.CARRIER_EXTRA)[0]
    if rng.random() < 0.01:
        extra = _join(extra, "API token for the tracking feed: {token}", separator=" ")
    return _join(body, extra, separator=" "), channel


__all__ = [
    "CHUNK_EXCEPTIONS",
    "Chunk",
    "Customer",
    "Generator",
    "Slots",
    "Tally",
    "WorkspacePlan",
    "plan_workspaces",
]
