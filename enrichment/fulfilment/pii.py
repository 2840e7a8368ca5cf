"""Personal data as people write it: e-mail addresses, phone numbers in international and
national formats, payment cards with a valid Luhn digit, IBANs with valid check digits, street
addresses, national ids, IP addresses and API tokens pasted by mistake.

Every value is random (no real person's data); the checksums are real, so detectors that check
them (Luhn, IBAN mod 97) see these as the real thing.
"""

from __future__ import annotations

import base64
import json
import random
import string
import unicodedata
from functools import lru_cache

from enrichment.fulfilment.world import COUNTRIES, Country

_DIGITS = string.digits
_UPPER = string.ascii_uppercase
_ALNUM = string.ascii_letters + string.digits
_URLSAFE = _ALNUM + "-_"


_ALPHABETS = {"L": _UPPER, "C": _ALNUM}


@lru_cache(maxsize=512)
def _compile(pattern: str) -> tuple[tuple[str, int], ...]:
    """A pattern as runs: ("#", n) digits, ("L" or "C", n) letters, (literal text, -1)."""
    runs: list[tuple[str, int]] = []
    for char in pattern:
        kind = char if char in "#LC" else ""
        if runs and runs[-1][1] >= 0 and runs[-1][0] == kind and kind:
            runs[-1] = (kind, runs[-1][1] + 1)
        elif kind:
            runs.append((kind, 1))
        elif runs and runs[-1][1] < 0:
            runs[-1] = (runs[-1][0] + char, -1)
        else:
            runs.append((char, -1))
    return tuple(runs)


def fill(pattern: str, rng: random.Random) -> str:
    """``#`` becomes a digit, ``L`` an upper-case letter, ``C`` a letter or digit."""
    out = []
    random_ = rng.random
    for kind, count in _compile(pattern):
        if count < 0:
            out.append(kind)
        elif kind == "#":
            while count > 0:  # up to 15 digits from one draw (a double has 53 bits)
                width = min(count, 15)
                out.append(f"{int(random_() * 10**width):0{width}d}")
                count -= width
        else:
            alphabet = _ALPHABETS[kind]
            size = len(alphabet)
            out.append("".join([alphabet[int(random_() * size)] for _ in range(count)]))
    return "".join(out)


def _random_string(alphabet: str, length: int, rng: random.Random) -> str:
    size = len(alphabet)
    return "".join(alphabet[int(rng.random() * size)] for _ in range(length))


# --- checksums ---------------------------------------------------------------------------------


def luhn_sum(digits: str) -> int:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10


def luhn_valid(number: str) -> bool:
    """True for a digit string (separators ignored) whose last digit is its Luhn check digit."""
    digits = "".join(char for char in number if char.isdigit())
    return len(digits) > 1 and luhn_sum(digits) == 0


def _luhn_complete(payload: str) -> str:
    return payload + str((10 - luhn_sum(payload + "0")) % 10)


def _iban_number(text: str) -> int:
    return int("".join(str(int(char, 36)) for char in text))


def iban_valid(iban: str) -> bool:
    """ISO 13616 check: country code, two check digits, BBAN; mod 97 of the rearranged number
    is 1 (spaces ignored)."""
    compact = iban.replace(" ", "").upper()
    if len(compact) < 15 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    if not compact.isalnum():
        return False
    return _iban_number(compact[4:] + compact[:4]) % 97 == 1


# --- values ------------------------------------------------------------------------------------


def ascii_name(name: str) -> str:
    """``Léa O'Sullivan`` -> ``leaosullivan``: what an e-mail local part can hold."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(char for char in decomposed if char.isascii() and char.isalnum())
    return plain.lower()


def email(first: str, last: str, domain: str, rng: random.Random) -> str:
    first, last = ascii_name(first), ascii_name(last)
    shape = int(rng.random() * 7)
    if shape == 0:
        local = f"{first}.{last}"
    elif shape == 1:
        local = f"{first[0]}.{last}"
    elif shape == 2:
        local = f"{first}{last}{int(rng.random() * 99) + 1}"
    elif shape == 3:
        local = f"{first}_{last}"
    elif shape == 4:
        local = f"{last}.{first}"
    elif shape == 5:
        local = f"{first}{int(rng.random() * 30) + 70}"
    else:
        local = f"{first}.{last}+orders"
    return f"{local}@{domain}"


def phone(country: Country, rng: random.Random) -> str:
    return fill(country.phones[int(rng.random() * len(country.phones))], rng)


def card(rng: random.Random) -> str:
    """A Visa, Mastercard, Amex or Discover number with a valid Luhn digit, written grouped
    (spaces or dashes) or as one run of digits."""
    brand = rng.random()
    if brand < 0.5:
        number = _luhn_complete("4" + fill("#" * 14, rng))
    elif brand < 0.8:
        number = _luhn_complete("5" + "12345"[int(rng.random() * 5)] + fill("#" * 13, rng))
    elif brand < 0.92:
        number = _luhn_complete("3" + "47"[int(rng.random() * 2)] + fill("#" * 12, rng))
    else:
        number = _luhn_complete("6011" + fill("#" * 11, rng))
    style = rng.random()
    if style < 0.35:
        return number
    separator = " " if style < 0.85 else "-"
    if len(number) == 15:
        return separator.join((number[:4], number[4:10], number[10:]))
    return separator.join(number[i : i + 4] for i in range(0, 16, 4))


def iban(country: Country, rng: random.Random) -> str:
    """An IBAN of the country (a German one where the country has none), valid check digits,
    grouped by four or written as one run."""
    if country.iban is None:
        country = COUNTRIES["DE"]
    assert country.iban is not None
    bban = fill(country.iban, rng)
    check = 98 - _iban_number(bban + country.code + "00") % 97
    value = f"{country.code}{check:02d}{bban}"
    if rng.random() < 0.6:
        return " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


def address(country: Country, rng: random.Random, *, defect: str | None = None) -> str:
    """A street address in the country's format. ``defect``: ``missing_number``,
    ``postcode_mismatch`` (postcode of another city) or ``truncated``."""
    city = country.cities[int(rng.random() * len(country.cities))]
    street = country.streets[int(rng.random() * len(country.streets))]
    number = str(int(rng.random() * 240) + 1)
    if rng.random() < 0.12:
        number += "ABC"[int(rng.random() * 3)]
    postcode_city = city
    if defect == "postcode_mismatch" and len(country.cities) > 1:
        while postcode_city is city:
            postcode_city = country.cities[int(rng.random() * len(country.cities))]
    if defect == "missing_number":
        number = ""
    prefix = ""
    if rng.random() < 0.18:  # a flat, apartment or unit, where the country writes it
        unit = country.unit.format(n=int(rng.random() * 40) + 1)
        if country.code in ("GB", "IE"):
            prefix = f"{unit}, "
        elif country.code in ("US", "CA"):
            street = f"{street} {unit}"
        elif country.address.startswith("{number}"):
            street = f"{street}, {unit}"
        else:
            number = f"{number}, {unit}" if number else unit
    text = prefix + country.address.format(
        number=number,
        street=street,
        postcode=fill(postcode_city.postcode, rng),
        city=city.name,
        region=city.region,
    )
    text = text.strip().replace(" ,", ",").replace("  ", " ")
    if defect == "truncated":
        text = text[: max(12, int(len(text) * (0.45 + rng.random() * 0.25)))].rstrip(", ")
    return text


def national_id(country: Country, rng: random.Random) -> str:
    """A national id or tax number in the country's format (with its check digit where the
    format has a simple one)."""
    code = country.code
    if code == "US":
        area = int(rng.random() * 664) + 1
        return f"{area:03d}-{int(rng.random() * 98) + 1:02d}-{int(rng.random() * 9998) + 1:04d}"
    if code == "GB":
        first = "ABCEGHJKLMNPRSTWXYZ"[int(rng.random() * 19)]
        second = "ABCEGHJKLMNPRSTWXYZ"[int(rng.random() * 19)]
        return f"{first}{second} {fill('## ## ##', rng)} {'ABCD'[int(rng.random() * 4)]}"
    if code == "FR":
        body = (
            f"{1 + int(rng.random() * 2)}{fill('##', rng)}{int(rng.random() * 12) + 1:02d}"
            f"{fill('##', rng)}{fill('###', rng)}{fill('###', rng)}"
        )
        key = 97 - int(body) % 97
        return f"{body[0]} {body[1:3]} {body[3:5]} {body[5:7]} {body[7:10]} {body[10:]} {key:02d}"
    if code == "ES":
        number = int(rng.random() * 99_999_999)
        return f"{number:08d}{'TRWAGMYFPDXBNJZSQVHLCKE'[number % 23]}"
    if code == "NL":
        while True:
            digits = fill("#########", rng)
            weights = (9, 8, 7, 6, 5, 4, 3, 2, -1)
            if (
                digits[0] != "0"
                and sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11 == 0
            ):
                return digits
    if code in ("SE", "NO"):
        date = f"{fill('##', rng)}{int(rng.random() * 12) + 1:02d}{int(rng.random() * 28) + 1:02d}"
        return f"{date}-{_luhn_complete(date + fill('###', rng))[6:]}"
    if code == "CH":
        body = "756" + fill("#########", rng)
        total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
        full = body + str((10 - total % 10) % 10)
        return f"{full[:3]}.{full[3:7]}.{full[7:11]}.{full[11:]}"
    if code == "CA":
        sin = _luhn_complete(str(int(rng.random() * 7) + 1) + fill("#######", rng))
        return f"{sin[:3]} {sin[3:6]} {sin[6:]}"
    if code == "IE":
        digits = fill("#######", rng)
        total = sum(int(d) * w for d, w in zip(digits, range(8, 1, -1), strict=True))
        return f"{digits}{'WABCDEFGHIJKLMNOPQRSTUV'[total % 23]}"
    if code == "BE":
        body = f"{fill('##', rng)}{int(rng.random() * 12) + 1:02d}{int(rng.random() * 28) + 1:02d}"
        body += fill("###", rng)
        key = 97 - int(body) % 97
        return f"{body[:2]}.{body[2:4]}.{body[4:6]}-{body[6:]}.{key:02d}"
    # DE (Steuer-ID), IT and the rest: an 11-digit tax number.
    return str(int(rng.random() * 9) + 1) + fill("##########", rng)


_PUBLIC_FIRST_OCTETS = (23, 31, 45, 62, 77, 81, 85, 91, 145, 178, 185, 193, 212, 217)


def ip_address(rng: random.Random) -> str:
    if rng.random() < 0.12:
        groups = ["2a02", "8108"] + [f"{int(rng.random() * 65536):x}" for _ in range(4)]
        return ":".join(groups[:3]) + "::" + ":".join(groups[3:])
    first = _PUBLIC_FIRST_OCTETS[int(rng.random() * len(_PUBLIC_FIRST_OCTETS))]
    rest = ".".join(str(int(rng.random() * 254) + 1) for _ in range(3))
    return f"{first}.{rest}"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(rng: random.Random) -> str:
    """An API key or token as it gets pasted: an ``sk-`` key, an AWS access key id, a JWT, a
    bearer header or a GitHub token."""
    kind = int(rng.random() * 5)
    if kind == 0:
        return "sk-" + ("proj-" if rng.random() < 0.5 else "") + _random_string(_ALNUM, 48, rng)
    if kind == 1:
        return "AKIA" + _random_string(_UPPER + "234567", 16, rng)
    if kind == 2 or kind == 3:
        header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
        payload = _b64url(
            json.dumps(
                {
                    "sub": f"svc-{int(rng.random() * 9999)}",
                    "iat": 1_760_000_000 + int(rng.random() * 9e6),
                },
                separators=(",", ":"),
            ).encode()
        )
        jwt = f"{header}.{payload}.{_random_string(_URLSAFE, 43, rng)}"
        return f"Bearer {jwt}" if kind == 3 else jwt
    return "ghp_" + _random_string(_ALNUM, 36, rng)
