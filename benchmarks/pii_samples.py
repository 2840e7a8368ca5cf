"""Seeded, generated examples for measuring redaction: personal data of every kind in the many
shapes it is written in, inside support and fulfilment sentences, and negatives made of the
numbers such text is full of (random order ids and references of every length, dates, amounts,
tracking numbers, versions, hashes) plus near misses of each kind (a card number whose Luhn
digit is wrong, an IBAN with a wrong checksum, an SSN from a range never issued).

Unlike the hand-written corpus of the tests, nothing here was picked to pass: values are drawn
at random from the formats, so the figures show what the detectors do with data they were not
written against. Each positive records where its values are, so scoring is by span.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from enrichment.pii import IBAN_LENGTHS


@dataclass(frozen=True)
class Sample:
    """A text, and the spans in it that are personal data, with their kind."""

    text: str
    spans: tuple[tuple[int, int, str], ...]
    category: str  # the generator it came from
    field: str | None = None  # the field the text is the value of, when that matters


class _Builder:
    """Assembles a text from pieces, remembering where the personal values went."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[tuple[int, int, str]] = []

    def add(self, text: str, kind: str | None = None) -> _Builder:
        if kind is not None:
            self.spans.append((self.length, self.length + len(text), kind))
        self.parts.append(text)
        self.length += len(text)
        return self

    def sample(self, category: str) -> Sample:
        return Sample("".join(self.parts), tuple(self.spans), category)


def _digits(rng: random.Random, count: int, first: str = string.digits) -> str:
    return rng.choice(first) + "".join(rng.choice(string.digits) for _ in range(count - 1))


def _luhn_digit(partial: str) -> str:
    total = 0
    for position, char in enumerate(reversed(partial)):
        value = int(char)
        if position % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str((10 - total % 10) % 10)


# --- personal data ---------------------------------------------------------------------------

_FIRST = ("maria", "john", "li", "fatima", "olga", "pierre", "anna", "raj", "kenji", "zoe")
_LAST = ("gonzalez", "smith", "wei", "khan", "ivanova", "dubois", "muller", "patel", "sato")
_DOMAINS = ("example.com", "mail.example.org", "corp.co.uk", "shop.de", "post.fr", "uni.edu")


def email(rng: random.Random) -> str:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first}_{last}",
            f"{first[0]}{last}",
            f"{first}+orders",
            f"{first}.{last}{rng.randint(1, 99)}",
        ]
    )
    address = f"{local}@{rng.choice(_DOMAINS)}"
    return address.upper() if rng.random() < 0.1 else address


def phone(rng: random.Random) -> tuple[str, str | None]:
    """A number, and the word in front of it when its format needs one."""
    area = _digits(rng, 3, "23456789")
    exchange, line = _digits(rng, 3, "23456789"), _digits(rng, 4)
    if rng.random() < 0.05:  # bare digits, no word saying what they are: out of reach
        return f"{area}{exchange}{line}", None
    shape = rng.randrange(12)
    if shape == 0:
        return f"+1 {area} {exchange} {line}", None
    if shape == 1:
        return f"+1{area}{exchange}{line}", None
    if shape == 2:
        return f"({area}) {exchange}-{line}", None
    if shape == 3:
        return f"{area}-{exchange}-{line}", None
    if shape == 4:
        return f"{area}.{exchange}.{line}", None
    if shape == 5:
        return f"+44 20 {_digits(rng, 4)} {_digits(rng, 4)}", None
    if shape == 6:
        return f"07{_digits(rng, 3)} {_digits(rng, 6)}", None
    if shape == 7:
        pairs = " ".join(_digits(rng, 2) for _ in range(4))
        return f"0{rng.choice('1234567')} {pairs}", None
    if shape == 8:
        return f"+49 {_digits(rng, 2, '123456789')} {_digits(rng, 7)}", None
    if shape == 9:
        return f"+33 {rng.choice('1234567')} " + " ".join(_digits(rng, 2) for _ in range(4)), None
    if shape == 10:
        return f"+81 {rng.randint(3, 9)}-{_digits(rng, 4)}-{_digits(rng, 4)}", None
    return f"{area}{exchange}{line}", rng.choice(["phone:", "call me at", "mobile", "tel."])


_ISSUERS = (("4", 16), ("51", 16), ("55", 16), ("2221", 16), ("34", 15), ("37", 15),
            ("6011", 16), ("65", 16), ("3530", 16), ("36", 14), ("62", 16), ("4", 13))  # fmt: skip


def card_number(rng: random.Random, *, valid: bool = True) -> str:
    prefix, length = rng.choice(_ISSUERS)
    partial = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    check = _luhn_digit(partial)
    if not valid:
        check = str((int(check) + rng.randint(1, 9)) % 10)
    return partial + check


def card(rng: random.Random, *, valid: bool = True) -> str:
    digits = card_number(rng, valid=valid)
    if rng.random() < 0.05 and len(digits) == 16:  # grouped as no card is printed: out of reach
        return f"{digits[:3]} {digits[3:8]} {digits[8:12]} {digits[12:]}"
    shape = rng.randrange(3)
    if shape == 0 or len(digits) not in (15, 16):
        return digits
    separator = rng.choice(" -.") if len(digits) == 16 else rng.choice(" -")
    if len(digits) == 15:
        return separator.join((digits[:4], digits[4:10], digits[10:]))
    return separator.join(digits[i : i + 4] for i in range(0, 16, 4))


_IBAN_COUNTRIES = ("DE", "GB", "FR", "NL", "ES", "IT", "BE", "CH", "AT", "PL", "SE", "IE", "PT",
                   "NO", "DK", "FI")  # fmt: skip


def iban(rng: random.Random, *, valid: bool = True) -> str:
    country = rng.choice(_IBAN_COUNTRIES)
    length = IBAN_LENGTHS[country]
    letters = 4 if country in ("GB", "NL", "IE") else 0
    bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(letters))
    bban += "".join(rng.choice(string.digits) for _ in range(length - 4 - letters))
    numeric = "".join(str(int(char, 36)) for char in bban + country + "00")
    check = 98 - int(numeric) % 97
    if not valid:
        check = rng.choice([other for other in range(2, 99) if other != check])
    compact = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        return compact
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def ip(rng: random.Random) -> tuple[str, str]:
    """An address, and what follows it (a port is not personal data)."""
    address = _ip(rng)
    port = f":{rng.randint(1, 65535)}" if "." in address and rng.random() < 0.3 else ""
    return address, port


def _ip(rng: random.Random) -> str:
    shape = rng.randrange(4)
    if shape == 0:
        return str(ipaddress.IPv4Address(rng.randint(0x01000000, 0xDFFFFFFF)))
    if shape == 1:
        prefix = rng.choice(["10", "192.168", "172.16"])
        rest = ".".join(str(rng.randint(0, 255)) for _ in range(4 - len(prefix.split("."))))
        return f"{prefix}.{rest}"
    address = ipaddress.IPv6Address(rng.getrandbits(128))
    if shape == 2:
        return address.exploded
    compressed = ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(32))
    return compressed.compressed


def _token(
    rng: random.Random, count: int, alphabet: str = string.ascii_letters + string.digits
) -> str:
    return "".join(rng.choice(alphabet) for _ in range(count))


def secret(rng: random.Random) -> tuple[str, str]:
    """A secret and the words in front of it."""
    shape = rng.randrange(8)
    if shape == 0:
        return f"sk-proj-{_token(rng, 40)}", "key"
    if shape == 1:
        return f"sk-{_token(rng, 32)}", "the key"
    if shape == 2:
        return "AKIA" + _token(rng, 16, string.ascii_uppercase + string.digits), "AWS key"
    if shape == 3:
        return "ghp_" + _token(rng, 36), "token"
    if shape == 4:
        return "xoxb-" + _digits(rng, 12) + "-" + _token(rng, 24), "slack"
    if shape == 5:
        return "AIza" + _token(rng, 35, string.ascii_letters + string.digits + "-_"), "maps key"
    if shape == 6:
        word = rng.choice(["Summer", "winter", "Blue", "hunter"])
        return f"{word}{rng.randint(10, 9999)}{rng.choice(['', '!', '#'])}", "my password is"
    return _token(rng, 24, "0123456789abcdef"), "api_key="


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def token(rng: random.Random) -> tuple[str, str]:
    shape = rng.randrange(3)
    if shape == 0:
        header = _b64url(json.dumps({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"}).encode())
        payload = _b64url(
            json.dumps({"sub": _digits(rng, 8), "exp": rng.randint(1, 2**31)}).encode()
        )
        return f"{header}.{payload}.{_b64url(rng.randbytes(32))}", "jwt"
    if shape == 1:
        return _token(
            rng, 32, string.ascii_letters + string.digits + "-._"
        ), "Authorization: Bearer"
    return base64.b64encode(f"{rng.choice(_FIRST)}:{_token(rng, 10)}".encode()).decode(), (
        "Authorization: Basic"
    )


_SPANISH = "TRWAGMYFPDXBNJZSQVHLCKE"
_NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
_NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"


def ssn(rng: random.Random, *, valid: bool = True) -> str:
    if valid:
        area = str(rng.choice([a for a in range(1, 900) if a != 666])).zfill(3)
        return f"{area}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
    area = rng.choice(["000", "666", str(rng.randint(900, 999))])
    return f"{area}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def national_id(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.05:  # nine bare digits after an unrelated word: out of reach
        return ssn(rng).replace("-", ""), "the number"
    shape = rng.randrange(6)
    if shape == 0:
        return ssn(rng), "SSN"
    if shape == 1:
        return ssn(rng).replace("-", ""), "social security number:"
    if shape == 2:
        prefix = rng.choice(_NINO_FIRST) + rng.choice(_NINO_SECOND)
        while prefix in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
            prefix = rng.choice(_NINO_FIRST) + rng.choice(_NINO_SECOND)
        return f"{prefix}{_digits(rng, 6)}{rng.choice('ABCD')}", "NI number"
    if shape == 3:
        number = rng.randint(10_000_000, 99_999_999)
        return f"{number}{_SPANISH[number % 23]}", "DNI"
    if shape == 4:
        body = f"{rng.randint(1, 2)}{rng.randint(0, 99):02d}{rng.randint(1, 12):02d}"
        body += f"{rng.randint(1, 95):02d}{rng.randint(1, 999):03d}{rng.randint(1, 999):03d}"
        return f"{body}{97 - int(body) % 97:02d}", "numéro de sécurité sociale"
    return _token(rng, 2, string.ascii_uppercase) + _digits(rng, 7), "passport number"


# --- sentences -------------------------------------------------------------------------------

_OPENINGS = (
    "Order {order} has not arrived.",
    "Parcel {tracking} is stuck at the hub since {date}.",
    "I was charged {amount} twice on {date}.",
    "Stock-out of SKU {sku}, restock expected {date}.",
    "Invoice {invoice} for {amount} is wrong.",
    "Customs hold on shipment {tracking}.",
)
_CONTACT = {
    "EMAIL": ("Please reply to {value}.", "My e-mail is {value}, thanks.", "cc {value}"),
    "PHONE": ("You can reach me on {value}.", "Call {value} after 5pm.", "Number: {value}"),
    "CARD": ("The card was {value}.", "Charged to {value} by mistake.", "card {value}"),
    "IBAN": ("Refund to IBAN {value} please.", "Bank account {value}.", "IBAN: {value}"),
    "IP": ("The request came from {value}.", "Blocked address {value} again.", "from {value}"),
    "SECRET": ("{lead} {value} is in the log.", "We leaked {lead} {value} yesterday."),
    "TOKEN": ("Header {lead} {value} fails.", "Request with {lead} {value} returns 401."),
    "NATIONAL_ID": ("For the customs form: {lead} {value}.", "{lead} {value}, as requested."),
}


def _ordinary(rng: random.Random) -> dict[str, str]:
    year = rng.randint(2019, 2026)
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    return {
        "order": rng.choice(
            [
                f"ORD-{year}-{_digits(rng, 6)}",
                f"#{_digits(rng, rng.randint(5, 8))}",
                _digits(rng, rng.randint(8, 12), "123456789"),
            ]
        ),
        "tracking": rng.choice(
            [
                "1Z" + _token(rng, 6, string.ascii_uppercase + string.digits) + _digits(rng, 10),
                " ".join(_digits(rng, 4) for _ in range(5)) + " " + _digits(rng, 2),
                _digits(rng, 12),
                _digits(rng, 10),
                f"JD{_digits(rng, 18)}",
                f"{_token(rng, 2, string.ascii_uppercase)}{_digits(rng, 9)}GB",
            ]
        ),
        "date": rng.choice(
            [
                f"{year}-{month:02d}-{day:02d}",
                f"{day:02d}/{month:02d}/{year}",
                f"{day:02d}.{month:02d}.{year}",
                f"{month}/{day}/{year}",
                f"{year}-{month:02d}-{day:02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
            ]
        ),
        "amount": rng.choice(
            [
                f"${rng.randint(1, 9999):,}.{rng.randint(0, 99):02d}",
                f"EUR {rng.randint(1, 9999)},{rng.randint(0, 99):02d}",
                f"{rng.randint(1, 999)} {rng.randint(100, 999)},{rng.randint(0, 99):02d} EUR",
                f"+{rng.randint(1, 99)}.{rng.randint(0, 99):02d}",
                f"-{rng.randint(1, 90)}%",
            ]
        ),
        "sku": f"{_digits(rng, 6)}-{rng.choice(['XL', 'BLK', 'S', '10'])}",
        "invoice": f"INV-{year}-{_digits(rng, 4)}",
    }


def _opening(rng: random.Random) -> str:
    return rng.choice(_OPENINGS).format(**_ordinary(rng))


def positive(rng: random.Random, kind: str) -> Sample:
    lead, template = "", None
    if kind == "EMAIL":
        value = email(rng)
    elif kind == "PHONE":
        value, context = phone(rng)
        if context:
            template = f"{context} {{value}}."
    elif kind == "CARD":
        value = card(rng)
    elif kind == "IBAN":
        value = iban(rng)
    elif kind == "IP":
        value, port = ip(rng)
        template = rng.choice(_CONTACT[kind]).replace("{value}", "{value}" + port)
    elif kind == "SECRET":
        value, lead = secret(rng)
    elif kind == "TOKEN":
        value, lead = token(rng)
    else:
        value, lead = national_id(rng)
    before, after = (template or rng.choice(_CONTACT[kind])).split("{value}")
    builder = _Builder().add(_opening(rng) + " " + before.replace("{lead}", lead))
    return builder.add(value, kind).add(after).sample(kind)


_NEAR_MISSES: dict[str, Callable[[random.Random], str]] = {
    "card, wrong Luhn digit": lambda rng: f"Card {card(rng, valid=False)} was declined.",
    "IBAN, wrong checksum": lambda rng: f"IBAN {iban(rng, valid=False)} was rejected.",
    "SSN, never issued": lambda rng: f"Form shows {ssn(rng, valid=False)}.",
    "reference, 6-20 digits": lambda rng: f"Reference {_digits(rng, rng.randint(6, 20))} noted.",
    "reference, grouped digits": lambda rng: (
        "Ref "
        + rng.choice(" -").join(_digits(rng, 4) for _ in range(rng.randint(2, 5)))
        + " noted."
    ),
    "digits without a label, 6-20": lambda rng: (
        f"Then {_digits(rng, rng.randint(6, 20))} came back."
    ),
    "grouped digits without a label": lambda rng: (
        "Then "
        + rng.choice(" -").join(_digits(rng, 4) for _ in range(rng.randint(2, 5)))
        + " came back."
    ),
    "dotted numbers without a label": lambda rng: (
        "See " + ".".join(str(rng.randint(1, 30)) for _ in range(4)) + " in the manual."
    ),
    "version or build": lambda rng: (
        f"Updated to version {rng.randint(1, 20)}.{rng.randint(0, 30)}"
        f".{rng.randint(0, 99)}.{rng.randint(0, 999)} yesterday."
    ),
    "hash or uuid": lambda rng: rng.choice(
        [f"Commit {_token(rng, 40, '0123456789abcdef')}.", f"Request id {_uuid(rng)}."]
    ),
    "time": lambda rng: (
        f"At {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
        f"{rng.randint(0, 59):02d} the scan failed."
    ),
}


def _uuid(rng: random.Random) -> str:
    hexes = _token(rng, 32, "0123456789abcdef")
    return f"{hexes[:8]}-{hexes[8:12]}-{hexes[12:16]}-{hexes[16:20]}-{hexes[20:]}"


def negative(rng: random.Random, category: str) -> Sample:
    if category == "ordinary sentence":
        parts = _ordinary(rng)
        text = (
            f"{_opening(rng)} Order {parts['order']} of {parts['date']}, {parts['amount']}, "
            f"tracking {parts['tracking']}."
        )
    else:
        text = _opening(rng) + " " + _NEAR_MISSES[category](rng)
    return Sample(text, (), category)


NEGATIVE_CATEGORIES = ("ordinary sentence", *_NEAR_MISSES)
KINDS = tuple(_CONTACT)


def samples(seed: int, per_kind: int, per_negative: int) -> list[Sample]:
    rng = random.Random(seed)
    generated = [positive(rng, kind) for kind in KINDS for _ in range(per_kind)]
    generated += [
        negative(rng, category) for category in NEGATIVE_CATEGORIES for _ in range(per_negative)
    ]
    return generated
