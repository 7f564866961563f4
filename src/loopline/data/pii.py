"""Personal data in a user's table, recognised by a column's name or by its values.

``loopline init`` declares such columns as ``dataset.pii`` so they are never copied past
ingestion, and masks their examples before showing them. Both rules are guesses the
user confirms; the share of values that must match is named below.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

# Share of values that must look like e-mail addresses, phone numbers, IP addresses or
# person names for a column to count as personal data.
PII_CONTENT_SHARE = 0.8

# Dates in the spellings exports use; also the first test of a date column in inference.
DATE_LIKE = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"
    r"|\d{1,2} [A-Za-z]{3,9}\.?,? \d{4}|[A-Za-z]{3,9}\.? \d{1,2},? \d{4}"
)

# Personal data by column name, matched on the name's words (snake_case and camelCase).
_PII_WORDS = frozenset(
    {"email", "phone", "telephone", "address", "street", "postcode", "zip", "zipcode"}
    | {"ssn", "passport", "ip", "iban", "dob", "birthdate", "birthday", "surname"}
    | {"firstname", "lastname", "fullname", "forename"}
)
_PII_PHRASES = (
    ("e", "mail"), ("first", "name"), ("last", "name"), ("full", "name"), ("given", "name"),
    ("family", "name"), ("middle", "name"), ("birth", "date"), ("date", "of", "birth"),
    ("credit", "card"), ("card", "number"), ("social", "security"), ("tax", "id"),
    ("national", "id"), ("postal", "code"), ("phone", "number"), ("mobile", "number"),
    ("mobile", "phone"),
)  # fmt: skip
# "name" alone is personal only for people: "customer_name" is, "plan_name" is not.
_PERSON_WORDS = frozenset(
    {"customer", "contact", "person", "client", "user", "member", "owner", "holder"}
    | {"patient", "employee"}
)
# Words that make a column a fact about personal data, not the data itself
# ("email_verified", "username_length", "phone_type").
_DERIVED_WORDS = frozenset(
    {"length", "len", "count", "cnt", "num", "n", "has", "is", "valid", "verified", "present"}
    | {"missing", "domain", "type", "flag", "opt", "optin", "changed", "updated", "status"}
)
_NAME_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(?:\.[^@\s.]+)+")
_IPV4 = re.compile(r"(?:\d{1,3}\.){3}\d{1,3}")
_PHONE = re.compile(r"(?:\+|00)?[\d(][\d\s().-]{5,18}\d")
_PERSON_PART = r"[A-ZÀ-Þ](?:[a-zß-ÿ]+|'[A-ZÀ-Þ][a-zß-ÿ]+)(?:-[A-ZÀ-Þ][a-zß-ÿ]+)?"
_PERSON = re.compile(rf"{_PERSON_PART}(?: {_PERSON_PART}){{1,2}}")


def by_name(name: str) -> bool:
    """Whether a column's name says it holds personal data (``customer_email``, ``dob``)."""
    words = tuple(w.lower() for w in _NAME_WORD.findall(name))
    if not words or _DERIVED_WORDS.intersection(words):
        return False
    if _PII_WORDS.intersection(words) or words in (("name",), ("mobile",)):
        return True
    if len(words) >= 2 and words[-1] == "name" and words[-2] in _PERSON_WORDS:
        return True
    return any(words[i : i + len(ph)] == ph for ph in _PII_PHRASES for i in range(len(words)))


def by_content(values: Iterable[str], *, many_values: bool) -> str | None:
    """What the values look like (``"e-mail addresses"``, ...) when they are personal data.

    Args:
        values: The column's distinct values as stripped text, most frequent first; a
            sample of them is enough.
        many_values: Whether the column has many distinct values. Only then can
            capitalised word pairs be person names: a few of them are categories
            ("Fiber Optic").

    Returns:
        What at least :data:`PII_CONTENT_SHARE` of the values look like, or ``None``.
    """
    text = list(values)
    checks: tuple[tuple[str, Callable[[str], object]], ...] = (
        ("e-mail addresses", _EMAIL.fullmatch),
        ("IP addresses", _IPV4.fullmatch),
        ("phone numbers", _is_phone),
    )
    if many_values:
        checks += (("person names", _PERSON.fullmatch),)
    for what, check in checks:
        if _share(text, check) >= PII_CONTENT_SHARE:
            return what
    return None


def mask(value: str) -> str:
    """The value with every word character but the first of each word starred."""
    return re.sub(r"(?<=\w)\w", "*", value)


def _is_phone(value: str) -> bool:
    # Seven to fifteen digits with separators or a leading "+": not a date, not an IP.
    digits = sum(ch.isdigit() for ch in value)
    if not 7 <= digits <= 15 or value.isdigit() or DATE_LIKE.match(value):
        return False
    return bool(_PHONE.fullmatch(value)) and not _IPV4.fullmatch(value)


def _share(text: list[str], check: Callable[[str], object]) -> float:
    return sum(bool(check(v)) for v in text) / len(text) if text else 0.0
