"""Detectors of personal data and secrets in free text: one per kind, each a compiled pattern
that proposes candidates and a validator that rejects what only looks like one.

Precision matters as much as recall: a support message is full of numbers that are not
personal (order ids, dates, amounts, tracking numbers, versions), and a redaction that eats
them makes the text useless. So a candidate must pass the kind's own rule before it counts:
Luhn and an issuer prefix for cards, the mod-97 checksum and the country's length for IBANs,
the issuing rules for US social security numbers, the check letter or key for Spanish and
French ids, a valid address for IPs, a decodable header for JWTs. Bare digit runs without
such a rule (a 10-digit phone number, a 9-digit SSN) count only next to a word that says what
they are ("phone: 4155552671") or in a field named for them (``phone_number``).
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# --- kinds and their placeholders ------------------------------------------------------------

EMAIL = "EMAIL"
PHONE = "PHONE"
CARD = "CARD"
IBAN = "IBAN"
IP = "IP"
SECRET = "SECRET"
TOKEN = "TOKEN"
NATIONAL_ID = "NATIONAL_ID"

KINDS = (EMAIL, PHONE, CARD, IBAN, IP, SECRET, TOKEN, NATIONAL_ID)


@dataclass(frozen=True, slots=True)
class Finding:
    """A span of text detected as ``kind``."""

    kind: str
    start: int
    end: int


Spans = Iterator[tuple[int, int]]

_DIGIT = re.compile(r"\d")


def _digits(text: str) -> str:
    return "".join(ch for ch in text if ch.isdigit())


class Scan:
    """A text being scanned and what every detector asks of it, computed once: its lowercase
    form, whether it has a digit (most detectors need one), the kinds its field announces."""

    __slots__ = ("has_digit", "hints", "lower", "text")

    def __init__(self, text: str, hints: frozenset[str] = frozenset()) -> None:
        self.text = text
        self.hints = hints
        self.lower = text.lower()
        self.has_digit = _DIGIT.search(text) is not None

    def mentions(self, words: tuple[str, ...]) -> bool:
        """Contains one of ``words`` (lowercase) in any case: a fast filter before the
        patterns that need such a word."""
        return any(word in self.lower for word in words)


# "order 4111111111111111", "ref 0496 9061 9891": a number introduced as an identifier is one,
# whatever else it would pass for.
_ID_LABEL = re.compile(
    r"(?i)\b(?:order|ref|reference|tracking|invoice|shipment|parcel|sku|batch|lot|case|ticket"
    r"|awb|consignment|po|item|article|serial|id)\b[\s:#.\-]{0,4}(?:(?:no|nr|number|id)\b"
    r"[\s:#.\-]{0,4})?$"
)
# The groups of an IBAN before the candidate ("NL79 ABNA 0417 1643 00"): digits that continue
# an account number (valid or not) are not a card or a phone number of their own.
_IBAN_GROUPS = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: [A-Z0-9]{4})+ $")


def _introduced_as_id(scan: Scan, start: int) -> bool:
    if IDENTIFIER in scan.hints:
        return True
    before = scan.text[max(0, start - 40) : start]
    return bool(_ID_LABEL.search(before) or _IBAN_GROUPS.search(before))


# --- field names as context --------------------------------------------------------------------

# Not a kind: the field holds an identifier (``order_id``, ``tracking_number``), so a number in
# it is not a card or a phone number, like a number introduced by "order" in text.
IDENTIFIER = "IDENTIFIER"

_FIELD_WORD = re.compile(r"[a-z]+")
# A word anywhere in the name: the value must still have the kind's shape.
_FIELD_HINTS: dict[str, frozenset[str]] = {
    PHONE: frozenset({"phone", "telephone", "tel", "mobile", "cell", "cellphone", "fax", "msisdn"}),
    NATIONAL_ID: frozenset(
        {"ssn", "nino", "sin", "bsn", "dni", "nie", "nir", "passport", "aadhaar", "pesel"}
    ),
}
_FIELD_PAIRS: dict[tuple[str, str], str] = {
    ("social", "security"): NATIONAL_ID,
    ("national", "id"): NATIONAL_ID,
    ("tax", "id"): NATIONAL_ID,
}
# The last word (or two) of the name: any value is a secret, so "token_count" must not count.
_SECRET_LAST = frozenset(
    {"password", "passwd", "pwd", "secret", "apikey", "token", "credential", "credentials"}
)
_SECRET_LAST_PAIRS = frozenset(
    {("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("password", "hash")}
)
_IDENTIFIER_WORDS = frozenset(
    {"order", "ref", "reference", "tracking", "invoice", "shipment", "parcel", "sku", "batch",
     "lot", "case", "ticket", "awb", "consignment", "po", "item", "article", "serial"}
)  # fmt: skip


@functools.lru_cache(maxsize=4096)
def field_hints(field: str | None) -> frozenset[str]:
    """Kinds a field's name announces (``customer.phone_number`` → PHONE), so a bare value in
    it is judged as that kind; IDENTIFIER for fields holding ids."""
    if not field:
        return frozenset()
    words = _FIELD_WORD.findall(field.lower().rsplit(".", 1)[-1])
    hinted = {kind for kind, names in _FIELD_HINTS.items() if names.intersection(words)}
    hinted.update(kind for pair, kind in _FIELD_PAIRS.items() if _adjacent(words, pair))
    if words and (words[-1] in _SECRET_LAST or tuple(words[-2:]) in _SECRET_LAST_PAIRS):
        hinted.add(SECRET)
    if not hinted and words and (_IDENTIFIER_WORDS.intersection(words) or words[-1] == "id"):
        hinted.add(IDENTIFIER)
    return frozenset(hinted)


def _adjacent(words: list[str], pair: tuple[str, str]) -> bool:
    return any(words[i : i + 2] == list(pair) for i in range(len(words) - 1))


# --- e-mail addresses --------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+\-])"
    r"[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24})"
    r"(?![\w\-]|\.[A-Za-z0-9])"
)
# "logo@2x.png" is a file name, not an address.
_FILE_SUFFIXES = frozenset(
    {
        *("png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "pdf"),
        *("css", "js", "ts", "json", "yaml", "yml", "txt", "csv", "log", "xml", "html", "htm"),
        *("md", "zip", "gz", "tar"),
    }
)


def find_emails(scan: Scan) -> Spans:
    text = scan.text
    if "@" not in text:
        return
    for match in _EMAIL.finditer(text):
        local = match.group(0).split("@", 1)[0]
        if ".." in local or match.group(1).lower() in _FILE_SUFFIXES:
            continue
        yield match.span()


# --- phone numbers -----------------------------------------------------------------------------

# International: "+" or "00", a country code, then groups ("+44 (0)20 7946 0958").
_PHONE_INTERNATIONAL = re.compile(
    r"(?<![\w+])(?<!\d[ .\-])(?P<prefix>\+|00)"
    r"(?P<body>[1-9]\d{0,2}(?:[ .\-]?(?:\(\d{1,4}\)|\d{1,5})){1,8})(?!\w)"
)
# North American: (415) 555-2671, 415-555-2671, 415.555.2671, 1-800-555-0199.
_PHONE_NANP = re.compile(
    r"(?<![\w+.\-/])(?<!\d[ .\-])"
    r"(?:1[ .\-])?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .\-]?)\d{3}[ .\-]\d{4}"
    r"(?![\w\-])(?![.,]\d)(?! \d)"
)
# National with a trunk 0: 020 7946 0958, 06 12 34 56 78, 030-1234567, (030) 1234567.
_PHONE_NATIONAL = re.compile(
    r"(?<![\w+.\-/,])(?<!\d[ .\-])"
    r"(?:\(0[1-9]\d{0,3}\) ?|0[1-9]\d{0,3}[ .\-])\d{2,8}(?:[ .\-]\d{2,8}){0,4}"
    r"(?![\w\-])(?![.,]\d)"
)
# A number right after a word that says it is a phone number: "call me at 4155552671".
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|telephone|tel|mobile|cell(?:phone)?|fax|whats ?app|sms"
    r"|call(?: me)?(?: (?:at|on))?|text(?: me)?(?: (?:at|on))?|reach me (?:at|on))"
    r"\.?(?:\s*(?:number|no\.?|nr\.?|#))?\s*(?:is\s+|:\s*|=\s*|-\s*)?"
    r"(?P<number>\+?\(?\d[\d ().\-]{5,22}\d)(?![\w\-])"
)
_PHONE_WORDS = ("phone", "tel", "mobile", "cell", "fax", "whats", "sms", "call", "text", "reach")
_DATE_START = re.compile(r"^\(?\d{1,4}[./\-]\d{1,2}[./\-]\d{1,4}")
_HINTED_PHONE = re.compile(r"^\+?[\d ().\-/]{7,24}$")
_GROUP = re.compile(r"\(\d+\)|\d+")


def _plausible_phone(candidate: str, *, low: int = 7, high: int = 15) -> bool:
    digits = _digits(candidate)
    return (
        low <= len(digits) <= high
        and len(set(digits)) > 2  # 0000000, 1111111 and the like are placeholders
        and not _DATE_START.match(candidate)
    )


def _national_shape(candidate: str) -> bool:
    """Grouped like a national number: 9-11 digits with the trunk 0, one kind of separator
    besides spaces, and no short last group unless all groups are pairs (06 12 34 56 78)."""
    if len(set(re.findall(r"[.\-]", candidate))) > 1:
        return False
    groups = [len(group) for group in re.findall(r"\d+", candidate)]
    if groups[-1] < 3 and any(size != 2 for size in groups[1:]):
        return False
    return _plausible_phone(candidate, low=9, high=11)


def _international(scan: Scan, match: re.Match[str]) -> tuple[int, int] | None:
    """The longest run of the match's groups that is a plausible number (8-15 digits)."""
    body = match.group("body")
    separators = re.findall(r"[ .\-]", body)
    if match.group("prefix") == "00" and not separators:
        return None  # "0049301234567" is as likely an id as a number
    if separators == ["."] and "(" not in body:
        return None  # "+1234567.89" is an amount
    if match.group("prefix") == "00":
        # Without the "+", only a whole match of a phone's length counts: "0077 8729 1495 7857
        # 0738 88" is a tracking number, not a number followed by something else.
        if not 8 <= len(_digits(body)) <= 15 or _introduced_as_id(scan, match.start()):
            return None
        return match.span()
    end = None
    count = 0
    for group in _GROUP.finditer(body):
        count += len(_digits(group.group()))
        if count > 15:
            break
        if count >= 8:
            end = group.end()
    if end is None:
        return None
    return match.start(), match.start("body") + end


def find_phones(scan: Scan) -> Spans:
    text = scan.text
    if not scan.has_digit:
        return
    if PHONE in scan.hints:
        stripped = text.strip()
        if _HINTED_PHONE.match(stripped) and _plausible_phone(stripped):
            start = text.index(stripped)
            yield start, start + len(stripped)
            return
    for match in _PHONE_INTERNATIONAL.finditer(text):
        span = _international(scan, match)
        if span is not None:
            yield span
    for match in _PHONE_NANP.finditer(text):
        yield match.span()
    for match in _PHONE_NATIONAL.finditer(text):
        if _national_shape(match.group(0)) and not _introduced_as_id(scan, match.start()):
            yield match.span()
    if scan.mentions(_PHONE_WORDS):
        for match in _PHONE_CONTEXT.finditer(text):
            if _plausible_phone(match.group("number")):
                yield match.span("number")


# --- payment cards -----------------------------------------------------------------------------

_CARD = re.compile(r"(?<![\w\-.])(?<!\d[ \-])\d(?:[ \-.]?\d){12,18}(?![\w\-])(?![ \-.]?\d)")
# (lowest prefix, highest prefix, lengths): Visa, Mastercard, Amex, Discover, JCB, Diners,
# UnionPay, Maestro, Mir, RuPay.
_ISSUERS: tuple[tuple[int, int, frozenset[int]], ...] = tuple(
    (low, high, frozenset(lengths))
    for low, high, lengths in (
        (4, 4, (13, 16, 19)),
        (51, 55, (16,)),
        (2221, 2720, (16,)),
        (34, 34, (15,)),
        (37, 37, (15,)),
        (6011, 6011, (16, 17, 18, 19)),
        (644, 649, (16, 17, 18, 19)),
        (65, 65, (16, 17, 18, 19)),
        (3528, 3589, (16, 17, 18, 19)),
        (300, 305, (14, 15, 16, 17, 18, 19)),
        (3095, 3095, (14, 15, 16, 17, 18, 19)),
        (36, 36, (14, 15, 16, 17, 18, 19)),
        (38, 39, (16, 17, 18, 19)),
        (62, 62, (16, 17, 18, 19)),
        (50, 50, (13, 14, 15, 16, 17, 18, 19)),
        (56, 58, (13, 14, 15, 16, 17, 18, 19)),
        (63, 63, (13, 14, 15, 16, 17, 18, 19)),
        (67, 67, (13, 14, 15, 16, 17, 18, 19)),
        (2200, 2204, (16, 17, 18, 19)),
        (60, 60, (16,)),
        (81, 82, (16,)),
    )
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _issued(digits: str) -> bool:
    for low, high, lengths in _ISSUERS:
        prefix = int(digits[: len(str(low))])
        if low <= prefix <= high and len(digits) in lengths:
            return True
    return False


def _card_grouping(candidate: str) -> bool:
    """Unseparated, or grouped the way cards are printed (4-4-4-4, 4-6-5, 4-4-4-4-3; dots
    only as 4-4-4-4)."""
    separators = set(re.findall(r"[ \-.]", candidate))
    if not separators:
        return True
    if len(separators) > 1:
        return False
    groups = [len(group) for group in re.split(r"[ \-.]", candidate)]
    if separators == {"."}:
        return groups == [4, 4, 4, 4]
    if groups[:2] == [4, 6] and len(groups) == 3 and groups[2] in (4, 5):
        return True
    return all(size == 4 for size in groups[:-1]) and 1 <= groups[-1] <= 4


def find_cards(scan: Scan) -> Spans:
    text = scan.text
    if not scan.has_digit:
        return
    for match in _CARD.finditer(text):
        candidate = match.group(0)
        digits = _digits(candidate)
        if not (_card_grouping(candidate) and _issued(digits) and luhn_valid(digits)):
            continue
        if not _introduced_as_id(scan, match.start()):
            yield match.span()


# --- IBANs -------------------------------------------------------------------------------------

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})\d{2}")


def iban_valid(compact: str) -> bool:
    """Country length and the ISO 7064 mod-97 check of an IBAN without spaces."""
    compact = compact.upper()
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def find_ibans(scan: Scan) -> Spans:
    text = scan.text
    if not scan.has_digit:
        return
    for match in _IBAN_START.finditer(text):
        length = IBAN_LENGTHS.get(match.group(1).upper())
        if length is None:
            continue
        # Take exactly the country's length of characters, written as one run or in the
        # printed groups of four ("DE89 3704 0044 0532 0130 00").
        position = match.start()
        chars: list[str] = []
        grouped = text[position + 4 : position + 5] == " "
        while position < len(text) and len(chars) < length:
            char = text[position]
            if char.isascii() and char.isalnum():
                chars.append(char)
            elif not (char == " " and grouped and len(chars) % 4 == 0):
                break
            position += 1
        following = text[position : position + 1]
        bounded = not (following.isascii() and following.isalnum())
        if len(chars) == length and bounded and iban_valid("".join(chars)):
            yield match.start(), position


# --- IP addresses ------------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.])(?:{_OCTET}\.){{3}}{_OCTET}(?!\w|\.\d)")
# "version 10.2.3.4", "build 5.1.0.12": a version number, not an address.
_VERSION_LABEL = re.compile(
    r"(?i)(?:\b(?:version|ver|release|build|firmware|update[sd]?|upgrade[sd]?)\b\.?"
    r"(?:\s+to)?\s*:?\s*v?|\bv)$"
)
_IPV6 = re.compile(
    rf"(?<![\w:.])(?:[0-9A-Fa-f]{{0,4}}:){{2,7}}(?:(?:{_OCTET}\.){{3}}{_OCTET}|[0-9A-Fa-f]{{1,4}}|:)?"
    r"(?:%[\w.]+)?(?![\w:]|\.\d)"
)


def find_ips(scan: Scan) -> Spans:
    text = scan.text
    if "." in text and scan.has_digit:
        for match in _IPV4.finditer(text):
            if not _VERSION_LABEL.search(text[max(0, match.start() - 20) : match.start()]):
                yield match.span()
    if "::" in text or text.count(":") >= 7:
        for match in _IPV6.finditer(text):
            candidate = match.group(0).split("%", 1)[0]
            # At least two groups: "::1" alone and "12:30::" times are left alone.
            if sum(1 for group in re.split(r":+", candidate) if group) < 2:
                continue
            try:
                ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            yield match.span()


# --- API keys and other secrets ----------------------------------------------------------------

_AWS_PREFIXES = ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "APKA",
                 "AROA", "ASCA")  # fmt: skip
# (substrings one of which the text must contain, pattern): the substring test is a fast
# filter, so most texts never run the patterns at all.
_SECRET_PATTERNS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    # OpenAI, Anthropic ("sk-ant-..."): at least one digit, as generated keys have.
    (("sk-",), re.compile(r"(?<![\w\-])sk-(?=[A-Za-z0-9_\-]*\d)[A-Za-z0-9_\-]{6,}")),
    # Stripe secret and restricted keys.
    (("sk_live_", "sk_test_", "rk_live_", "rk_test_"),
     re.compile(r"(?<!\w)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}")),
    (_AWS_PREFIXES,
     re.compile(rf"(?<![A-Z0-9])(?:{'|'.join(_AWS_PREFIXES)})[A-Z0-9]{{16}}(?![A-Z0-9])")),
    (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
     re.compile(r"(?<!\w)gh[pousr]_[A-Za-z0-9]{36,}(?!\w)|(?<!\w)github_pat_[A-Za-z0-9_]{22,}")),
    (("xox",), re.compile(r"(?<!\w)xox[abposr]-[A-Za-z0-9\-]{10,}")),  # Slack
    (("AIza",), re.compile(r"(?<![\w\-])AIza[0-9A-Za-z_\-]{35}(?![\w\-])")),  # Google
    (("PRIVATE KEY-----",), re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
        re.DOTALL,
    )),
)  # fmt: skip
# "password: hunter22", "api_key=...", "aws_secret_access_key = ...": the value only.
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)(?<![a-z0-9])(?:api[_\- ]?key|apikey|secret(?:[_\- ]?(?:access[_\- ]?)?key)?"
    r"|client[_\- ]?secret|access[_\- ]?key(?:[_\- ]?id)?|private[_\- ]?key"
    r"|password|passwd|pwd|passcode|credentials?)"
    r"[\"']?\s*(?:[:=]|\bis\b)\s*[\"']?(?P<value>[^\s\"',;<>]{6,})"
)
_SECRET_WORDS = ("key", "secret", "pass", "pwd", "credential")
_URL_PASSWORD = re.compile(r"://[^\s/:@]+:(?P<value>[^\s/@]+)@")


def _secret_like(value: str) -> bool:
    """A value after "password:" that is a secret rather than a word ("reset", "expired")."""
    if value.startswith("[") and value.endswith("]"):
        return False  # already a placeholder
    has_digit = any(char.isdigit() for char in value)
    has_symbol = any(not char.isalnum() for char in value)
    mixed_case = value.lower() != value and value.upper() != value
    return has_digit or has_symbol or mixed_case or len(value) >= 20


def find_secrets(scan: Scan) -> Spans:
    text = scan.text
    if SECRET in scan.hints:
        stripped = text.strip()
        if len(stripped) >= 4 and not (stripped.startswith("[") and stripped.endswith("]")):
            start = text.index(stripped)
            yield start, start + len(stripped)
            return
    for triggers, pattern in _SECRET_PATTERNS:
        if any(trigger in text for trigger in triggers):
            for match in pattern.finditer(text):
                yield match.span()
    if scan.mentions(_SECRET_WORDS):
        for match in _SECRET_ASSIGNMENT.finditer(text):
            if _secret_like(match.group("value")):
                yield match.span("value")
    if "://" in text:
        for match in _URL_PASSWORD.finditer(text):
            yield match.span("value")


# --- tokens ------------------------------------------------------------------------------------

_JWT = re.compile(
    r"(?<![\w\-])eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*(?![\w\-])"
)
_BEARER = re.compile(
    r"(?i)\b(?:bearer|token)\s+(?P<value>[A-Za-z0-9\-._~+/]{16,}=*)"
    r"|(?i:\bauthorization)\s*:\s*(?i:basic)\s+(?P<basic>[A-Za-z0-9+/]{8,}={0,2})"
    r"|(?i:\b(?:access|refresh|auth|session|id)[_\- ]?token)[\"']?\s*[:=]\s*[\"']?"
    r"(?P<assigned>[A-Za-z0-9\-._~+/]{12,}=*)"
)


def _jwt_header(segment: str) -> bool:
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(decoded)
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and ("alg" in header or "typ" in header)


def find_tokens(scan: Scan) -> Spans:
    text = scan.text
    if "eyJ" in text:
        for match in _JWT.finditer(text):
            if _jwt_header(match.group(0).split(".", 1)[0]):
                yield match.span()
    if not scan.mentions(("bearer", "token", "authorization")):
        return
    for match in _BEARER.finditer(text):
        for group in ("value", "basic", "assigned"):
            if match.group(group) is not None:
                value = match.group(group)
                if group != "value" or _secret_like(value):
                    yield match.span(group)


# --- national identifiers ----------------------------------------------------------------------

_SSN = re.compile(
    r"(?<![\w\-])(?<!\d )(?P<area>\d{3})(?P<sep>[\- ])(?P<group>\d{2})(?P=sep)(?P<serial>\d{4})"
    r"(?![\w\-])(?! \d)"
)
_SSN_CONTEXT = re.compile(
    r"(?i)\b(?:ssn|ss#|social security(?: number| no\.?| #)?)(?:\s*(?:is\s+|:\s*|=\s*|#\s*))?"
    r"(?P<value>\d{9}|\d{3}[\- ]\d{2}[\- ]\d{4})(?!\w)"
)
_NINO = re.compile(
    r"(?<![\w])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"(?P<sep> ?)\d{2}(?P=sep)\d{2}(?P=sep)\d{2}(?P=sep)[A-D](?!\w)"
)
_SPANISH_ID = re.compile(
    r"(?<![\w\-])(?P<prefix>[XYZ]-?)?(?P<number>\d{7,8})-?(?P<letter>[A-Z])(?!\w)"
)
_SPANISH_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_NIR = re.compile(
    r"(?<![\w])(?P<body>[12](?P<sep> ?)\d{2}(?P=sep)(?:0[1-9]|1[0-2]|[2-9]\d)(?P=sep)"
    r"(?:\d{2}|2[AB])(?P=sep)\d{3}(?P=sep)\d{3})(?P=sep)(?P<key>\d{2})(?!\w)"
)
# A number right after a word that names an identity document.
_ID_CONTEXT = re.compile(
    r"(?:(?i:\b(?:passport|national id(?:entity)?|identity card|id card|tax id|personal id"
    r"|national insurance|social insurance|personnummer|aadhaar|pesel)(?: number| no\.?| #)?)"
    r"|\b(?:NINO|SIN|TIN|BSN|DNI|NIE|NIR)\b)"
    r"\s*(?:is\s+|:\s*|=\s*|#\s*|-\s*)?"
    r"(?P<value>[A-Z0-9](?:[A-Z0-9]|[ \-](?=[A-Z0-9])){4,19})(?!\w)"
)
_ID_WORDS = ("passport", "national id", "identity", "id card", "tax id", "personal id",
             "insurance", "personnummer", "aadhaar", "pesel")  # fmt: skip
_ID_ACRONYMS = ("NINO", "SIN", "TIN", "BSN", "DNI", "NIE", "NIR")
_HINTED_ID = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|[ \-](?=[A-Za-z0-9])){3,24}$")


def ssn_valid(area: str, group: str, serial: str) -> bool:
    """Issued numbers: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    if area in ("000", "666") or area.startswith("9") or group == "00" or serial == "0000":
        return False
    return f"{area}{group}{serial}" not in ("078051120", "219099999")  # advertised samples


def _spanish_id_valid(match: re.Match[str]) -> bool:
    prefix = (match.group("prefix") or "").rstrip("-")
    number = match.group("number")
    if prefix:
        if len(number) != 7:
            return False
        number = str("XYZ".index(prefix)) + number
    elif len(number) != 8:
        return False
    return _SPANISH_LETTERS[int(number) % 23] == match.group("letter")


def _nir_valid(match: re.Match[str]) -> bool:
    body = match.group("body").replace(" ", "")
    body = body.replace("2A", "19").replace("2B", "18")
    return 97 - int(body) % 97 == int(match.group("key"))


def find_national_ids(scan: Scan) -> Spans:
    text = scan.text
    if not scan.has_digit:
        return
    if NATIONAL_ID in scan.hints:
        stripped = text.strip()
        if (
            _HINTED_ID.match(stripped)
            and len(_digits(stripped)) >= 4
            and not _DATE_START.match(stripped)
        ):
            start = text.index(stripped)
            yield start, start + len(stripped)
            return
    for match in _SSN.finditer(text):
        if ssn_valid(match.group("area"), match.group("group"), match.group("serial")):
            yield match.span()
    if scan.mentions(("ssn", "ss#", "social security")):
        for match in _SSN_CONTEXT.finditer(text):
            digits = _digits(match.group("value"))
            if ssn_valid(digits[:3], digits[3:5], digits[5:]):
                yield match.span("value")
    for match in _NINO.finditer(text):
        yield match.span()
    for match in _SPANISH_ID.finditer(text):
        if _spanish_id_valid(match):
            yield match.span()
    for match in _NIR.finditer(text):
        if _nir_valid(match):
            yield match.span()
    if scan.mentions(_ID_WORDS) or any(word in text for word in _ID_ACRONYMS):
        for match in _ID_CONTEXT.finditer(text):
            if len(_digits(match.group("value"))) >= 5:
                yield match.span("value")


# --- the built-in detectors --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Detector:
    """``name`` is how the configuration selects it; ``priority`` decides overlaps (lower wins:
    a bearer token that contains digits is a token, not a phone number)."""

    name: str
    kind: str
    priority: int
    find: Callable[[Scan], Spans]


DETECTORS: dict[str, Detector] = {
    detector.name: detector
    for detector in (
        Detector("secret", SECRET, 10, find_secrets),
        Detector("token", TOKEN, 10, find_tokens),
        Detector("email", EMAIL, 20, find_emails),
        Detector("iban", IBAN, 30, find_ibans),
        Detector("card", CARD, 40, find_cards),
        Detector("national_id", NATIONAL_ID, 50, find_national_ids),
        Detector("ip", IP, 60, find_ips),
        Detector("phone", PHONE, 70, find_phones),
    )
}
