"""Positive and negative examples per detector, in the sentences they come in.

A positive names the values that must disappear and the kind they are counted as; a negative
must come out of the redactor unchanged. The negatives are the numbers a fulfilment and support
dataset is full of (order ids, dates, amounts, tracking numbers) and near misses of each kind (a
card number whose Luhn check fails, an IBAN with a wrong checksum). Used by
tests/test_redaction.py and, for precision and recall, by benchmarks/redaction.py.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Positive:
    text: str
    values: tuple[str, ...]  # each must be gone, replaced by [kind]
    kind: str
    field: str | None = None  # the field the text is the value of, when that matters


PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"


def _p(kind: str, text: str, *values: str, field: str | None = None) -> Positive:
    return Positive(text, values, kind, field)


POSITIVES: dict[str, list[Positive]] = {
    "email": [
        _p("EMAIL", "User john.doe@company.com submitted PR", "john.doe@company.com"),
        _p("EMAIL", "write to jane+orders@example.co.uk today", "jane+orders@example.co.uk"),
        _p("EMAIL", "cc: first_last@mail.sub.domain.org.", "first_last@mail.sub.domain.org"),
        _p("EMAIL", "REPLY TO SUPPORT.DESK@EXAMPLE.COM", "SUPPORT.DESK@EXAMPLE.COM"),
        _p("EMAIL", "<m.muller-schmidt@firma.de>", "m.muller-schmidt@firma.de"),
        _p("EMAIL", "contact: a1@x.io, b2@y.io", "a1@x.io", "b2@y.io"),
        _p("EMAIL", "mailto:orders@shop.example.com?subject=hi", "orders@shop.example.com"),
        _p("EMAIL", "(reach me via li.wei@corp.cn)", "li.wei@corp.cn"),
        _p("EMAIL", "sent from carlos_2019@outlook.es on Monday", "carlos_2019@outlook.es"),
        _p("EMAIL", "email=o.brien%test@example.ie", "o.brien%test@example.ie"),
    ],
    "phone": [
        _p("PHONE", "call +1 415 555 2671 after 5", "+1 415 555 2671"),
        _p("PHONE", "my number is +14155552671", "+14155552671"),
        _p("PHONE", "London office +44 20 7946 0958.", "+44 20 7946 0958"),
        _p("PHONE", "tel +44 (0)20 7946 0958", "+44 (0)20 7946 0958"),
        _p("PHONE", "Berlin: +49 30 1234567", "+49 30 1234567"),
        _p("PHONE", "Paris +33 1 23 45 67 89", "+33 1 23 45 67 89"),
        _p("PHONE", "Tokyo +81 3-1234-5678", "+81 3-1234-5678"),
        _p("PHONE", "Sydney +61 2 9876 5432", "+61 2 9876 5432"),
        _p("PHONE", "São Paulo +55 11 91234-5678", "+55 11 91234-5678"),
        _p("PHONE", "dial 0044 20 7946 0958 from abroad", "0044 20 7946 0958"),
        _p("PHONE", "office (415) 555-2671", "(415) 555-2671"),
        _p("PHONE", "cell 415-555-2671 or 415.555.2672", "415-555-2671", "415.555.2672"),
        _p("PHONE", "toll free 1-800-555-0199", "1-800-555-0199"),
        _p("PHONE", "ring 020 7946 0958 please", "020 7946 0958"),
        _p("PHONE", "portable 06 12 34 56 78", "06 12 34 56 78"),
        _p("PHONE", "Festnetz 030 1234567", "030 1234567"),
        _p("PHONE", "phone: 4155552671", "4155552671"),
        _p("PHONE", "call me at 07700900123 tomorrow", "07700900123"),
        _p("PHONE", "Mobile no. 612345678", "612345678"),
        _p("PHONE", "4155552671", "4155552671", field="customer.phone"),
        _p("PHONE", "(555) 123-4567", "(555) 123-4567"),
    ],
    "card": [
        _p("CARD", "card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111"),
        _p("CARD", "paid with 4012888888881881.", "4012888888881881"),
        _p("CARD", "old visa 4222222222222", "4222222222222"),
        _p("CARD", "MC 5555-5555-5555-4444", "5555-5555-5555-4444"),
        _p("CARD", "mastercard 5105105105105100", "5105105105105100"),
        _p("CARD", "new MC 2223 0031 2200 3222", "2223 0031 2200 3222"),
        _p("CARD", "amex 3782 822463 10005", "3782 822463 10005"),
        _p("CARD", "AMEX:371449635398431", "371449635398431"),
        _p("CARD", "discover 6011 1111 1111 1117", "6011 1111 1111 1117"),
        _p("CARD", "JCB 3530111333300000", "3530111333300000"),
        _p("CARD", "diners 3056 9309 0259 04", "3056 9309 0259 04"),
        _p("CARD", "UnionPay 6200000000000005", "6200000000000005"),
        _p("CARD", "maestro 6759649826438453", "6759649826438453"),
    ],
    "iban": [
        _p("IBAN", "IBAN DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00"),
        _p("IBAN", "refund to GB82WEST12345698765432", "GB82WEST12345698765432"),
        _p("IBAN", "FR14 2004 1010 0505 0001 3M02 606.", "FR14 2004 1010 0505 0001 3M02 606"),
        _p("IBAN", "account NL91ABNA0417164300", "NL91ABNA0417164300"),
        _p("IBAN", "ES91 2100 0418 4502 0005 1332", "ES91 2100 0418 4502 0005 1332"),
        _p("IBAN", "IT60X0542811101000000123456 (Milano)", "IT60X0542811101000000123456"),
        _p("IBAN", "BE68 5390 0754 7034 is mine", "BE68 5390 0754 7034"),
        _p("IBAN", "CH93 0076 2011 6238 5295 7", "CH93 0076 2011 6238 5295 7"),
        _p("IBAN", "Norway NO9386011117947", "NO9386011117947"),
        _p("IBAN", "pl61109010140000071219812874", "pl61109010140000071219812874"),
        _p("IBAN", "DE89370400440532013000 AND more", "DE89370400440532013000"),
    ],
    "ip": [
        _p("IP", "login from 192.168.1.10 failed", "192.168.1.10"),
        _p("IP", "proxy 10.0.0.5:8080", "10.0.0.5"),
        _p("IP", "DNS 8.8.8.8.", "8.8.8.8"),
        _p("IP", "client=203.0.113.195", "203.0.113.195"),
        _p("IP", "subnet 172.16.0.0/12", "172.16.0.0"),
        _p("IP", "v6 2001:db8::8a2e:370:7334", "2001:db8::8a2e:370:7334"),
        _p(
            "IP",
            "[2001:0db8:85a3:0000:0000:8a2e:0370:7334]",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        ),
        _p("IP", "link-local fe80::1ff:fe23:4567:890a%eth0", "fe80::1ff:fe23:4567:890a%eth0"),
        _p("IP", "mapped ::ffff:192.0.2.128 seen", "::ffff:192.0.2.128"),
        _p("IP", "between 1.1.1.1 and 255.255.255.255", "1.1.1.1", "255.255.255.255"),
    ],
    "secret": [
        _p("SECRET", "API key sk-123456 leaked", "sk-123456"),
        _p(
            "SECRET",
            "OPENAI_API_KEY sk-proj-abcDEF1234567890abcdefGHIJ",
            "sk-proj-abcDEF1234567890abcdefGHIJ",
        ),
        _p("SECRET", "key sk-ant-api03-Xy9_zz-88QQ", "sk-ant-api03-Xy9_zz-88QQ"),
        _p("SECRET", "AWS AKIAIOSFODNN7EXAMPLE in the log", "AKIAIOSFODNN7EXAMPLE"),
        _p("SECRET", "token ghp_" + "a1B2" * 9, "ghp_" + "a1B2" * 9),
        _p("SECRET", "slack xoxb-1234567890-abcdefghij", "xoxb-1234567890-abcdefghij"),
        _p(
            "SECRET",
            "AIza" + "Sy" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6q",
            "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6q",
        ),
        _p("SECRET", "stripe sk_live_51Habc123XYZ", "sk_live_51Habc123XYZ"),
        _p("SECRET", "my password: hunter22", "hunter22"),
        _p("SECRET", "api_key=9f8e7d6c5b4a", "9f8e7d6c5b4a"),
        _p(
            "SECRET",
            'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        _p("SECRET", "DSN postgres://admin:s3cr3t@db.internal:5432/app", "s3cr3t"),
        _p("SECRET", f"key:\n{PRIVATE_KEY}\nend", PRIVATE_KEY),
        _p("SECRET", "Tr0ub4dor&3", "Tr0ub4dor&3", field="password"),
    ],
    "token": [
        _p(
            "TOKEN",
            "jwt eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U here",
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        ),
        _p("TOKEN", "Authorization: Bearer abcDEF123456ghiJKL789", "abcDEF123456ghiJKL789"),
        _p("TOKEN", "authorization: basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        _p("TOKEN", "access_token=ya29.a0AfH6SMBx-12345", "ya29.a0AfH6SMBx-12345"),
        _p("TOKEN", "refresh-token: 1//0gAbCdEfGhIjKlMn", "1//0gAbCdEfGhIjKlMn"),
        _p("TOKEN", "session_token='Zm9vYmFyYmF6cXV4cXV1eA'", "Zm9vYmFyYmF6cXV4cXV1eA"),
        _p(
            "TOKEN",
            "unsigned eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        ),
    ],
    "national_id": [
        _p("NATIONAL_ID", "SSN 536-22-1234 on file", "536-22-1234"),
        _p("NATIONAL_ID", "social security number: 536221234", "536221234"),
        _p("NATIONAL_ID", "ssn is 536 22 1234", "536 22 1234"),
        _p("NATIONAL_ID", "NI number AB 12 34 56 C", "AB 12 34 56 C"),
        _p("NATIONAL_ID", "nino JG103759A.", "JG103759A"),
        _p("NATIONAL_ID", "DNI 12345678Z", "12345678Z"),
        _p("NATIONAL_ID", "NIE X1234567L", "X1234567L"),
        _p("NATIONAL_ID", "NIR 1 85 05 78 006 084 91", "1 85 05 78 006 084 91"),
        _p("NATIONAL_ID", "sécu 269054958815780", "269054958815780"),
        _p("NATIONAL_ID", "passport number: 123456789", "123456789"),
        _p("NATIONAL_ID", "Passport no. C01X00T47", "C01X00T47"),
        _p("NATIONAL_ID", "SIN 046 454 286", "046 454 286"),
        _p("NATIONAL_ID", "BSN: 111222333", "111222333"),
        _p("NATIONAL_ID", "536221234", "536221234", field="customer.ssn"),
    ],
}

# Each must come out of the default redactor unchanged.
NEGATIVES: dict[str, list[str]] = {
    "email": [
        "see logo@2x.png for the retina image",
        "thanks @support_team for the quick reply",
        "root@localhost refused the connection",
        "installed left-pad@1.3.0 yesterday",
        "a@b is not an address",
        "the meeting is @ 10 in room 4",
        "john.doe at company dot com",
        "user..name@example.com is malformed",
    ],
    "phone": [
        "delivered 2024-03-15, promised 15/03/2024",
        "shipped 15.03.2024 10:30, arrived 03/15/2024",
        "timestamp 2024-03-15 10:30:00",
        "total $1,234.56 and refund €1.234,56",
        "price 1 234 567,89 EUR",
        "change +15.00 or -20%",
        "order ORD-2024-000123 and #100234",
        "order 4155552671 is late",
        "SKU-48213-BLK in stock",
        "zip 94107-1234",
        "ISBN 978-3-16-148410-0",
        "open 09:00-17:30",
        "years 2019-2024",
        "build 10.0.19041.1",
        "ref 0012345678",
        "qty 1 000 000 units",
        "invoice INV-2024-0042 for 3 items",
        "weight 12.5 kg, 30 x 40 x 50 cm",
        "case 123456789 opened",
        "call reference 12345678",
        "call me at 5pm",
        "the phone is broken",
    ],
    "card": [
        "card 4111 1111 1111 1112 was declined",
        "order 1234567890123456 shipped",
        "ref 4000 1234 1234 1235",
        "tracking 9400 1000 0000 0000 0000 00",
        "UPS 1Z999AA10123456784",
        "FedEx 794698621190",
        "amount 4,111,111,111.11",
        "unix time 1710498600000",
        "batch 20240315103000",
        "code 0000 0000 0000 0000",
        "lot 4111-1111 1111-1111",
    ],
    "iban": [
        "IBAN DE89 3704 0044 0532 0130 01 bounced",
        "GB82 WEST 1234 5698 7654 33",
        "XX89 3704 0044 0532 0130 00",
        "DE89 3704 0044 0532 0130",
        "code AB12 CDEF 3456",
        "part DE12345 in aisle 3",
        "Parcel VA241562381GB is stuck at the hub",
    ],
    "ip": [
        "version 1.2.3",
        "build v1.2.3.4",
        "999.1.1.1 is not an address",
        "256.256.256.256",
        "Windows 10.0.19041.1",
        "ids 01.02.03.04",
        "at 10:30:45 today",
        "MAC 00:1A:2B:3C:4D:5E",
        "std::vector<int>",
        "ratio 16:9",
        "John 3:16",
        "snmp 1.3.6.1.4.1.2021",
        "loopback ::1",
    ],
    "secret": [
        "password: reset",
        "I forgot my password",
        "risk-123456 assessment",
        "desk-1234567 booking",
        "sk-abcdef without digits",
        "AKIA1234 is too short",
        "md5 d41d8cd98f00b204e9800998ecf8427e",
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "the api key is invalid",
        "secret: surprise",
    ],
    "token": [
        "the bearer of bad news",
        "token: expired",
        "eyJustin wrote back",
        "the token count was 2048",
        "token limit exceeded, 4096 max",
        "eyJhbGci.eyJzdWIi.sig is cut short",
    ],
    "national_id": [
        "SSN 000-12-3456 is invalid",
        "666-12-3456",
        "912-34-5678",
        "123-00-4567",
        "123-45-0000",
        "zip 94107-1234",
        "date 2024-03-15",
        "code 12345678A",
        "ref QQ 12 34 56 C",
        "order 536221234",
        "since 1998 we shipped 12 34 56 units",
        "id card expired",
    ],
    "ordinary": [
        "Order ORD-2024-000123 for $1,234.56 shipped 2024-03-15 via UPS 1Z999AA10123456784.",
        "Carrier delay: parcel 9400111899223100012345 stuck in Memphis hub since 03/14/2024.",
        "Warehouse WH-07 picked 3 of 5 items; SLA 48h breached by 6.5 hours.",
        "Refund of EUR 89,90 issued on 15.03.2024 for invoice 2024/0042.",
        "Stock-out of SKU 100234-XL; restock ETA 2024-04-01, qty 1,200.",
        "Customs hold at FRA: HS code 8517.12.00, declared value 1299.00 USD.",
        "Ticket #48213 escalated at 14:05:33 UTC, priority P2, 3 replies.",
        "Address invalid: 221B Baker Street, London NW1 6XE, United Kingdom.",
        "Damaged item: box 30 x 40 x 50 cm, 12.5 kg, photo IMG_20240315_103000.jpg.",
        "Release 2.14.3 fixed build 10.0.19041.1 regression (PR #5123).",
        "Temperature 21.5°C, humidity 45%, pallet 7 of 12.",
        "Order 1000234567 total 249.99, 2 x 99.99 + shipping 50.01.",
    ],
}
