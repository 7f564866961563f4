"""Personal data by a column's name and by its values, and the masking of examples."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopline.data import pii


@pytest.mark.parametrize(
    "name",
    ["email", "customer_email", "eMail", "e_mail", "fullName", "FirstName", "last_name"]
    + ["IPAddress", "date_of_birth", "dob", "customer_name", "name", "mobile", "zip"]
    + ["credit_card_number", "SocialSecurityNumber", "postal_code", "phoneNumber"],
)
def test_names_that_say_personal_data(name: str) -> None:
    assert pii.by_name(name)


@pytest.mark.parametrize(
    "name",
    ["email_verified", "username_length", "phone_type", "has_email", "email_domain"]
    + ["plan_name", "product_name", "tip", "zipper_size", "tenure", "", "_"],
)
def test_names_that_do_not(name: str) -> None:
    assert not pii.by_name(name)


@pytest.mark.parametrize(
    ("values", "what"),
    [
        (["ana@example.com", "bo.li@mail.example.org", "x+y@a.io"], "e-mail addresses"),
        (["10.0.0.1", "192.168.1.20", "8.8.8.8"], "IP addresses"),
        (["+44 20 7946 0958", "(555) 010-4477", "+1-202-555-0143", "030 1234567"], "phone numbers"),
        (["Maria Lopez", "Sean O'Brien", "Ana Smith-Jones", "Jan Van Dijk"], "person names"),
    ],
)
def test_values_that_look_like_personal_data(values: list[str], what: str) -> None:
    assert pii.by_content(values, many_values=True) == what


def test_few_capitalised_pairs_are_categories_not_people() -> None:
    values = ["Fiber Optic", "Bank Transfer", "New York"]
    assert pii.by_content(values, many_values=False) is None
    assert pii.by_content(values, many_values=True) == "person names"


@pytest.mark.parametrize(
    "values",
    [
        ["2024-01-31", "2024-02-01", "31/01/2024"],  # dates are not phone numbers
        ["1234567", "7654321", "5550100"],  # nor are bare digits
        ["12 34", "1-2-3"],  # nor short numbers with separators
        ["Month-to-month", "One year", "Two year"],
        [],
    ],
)
def test_values_that_do_not(values: list[str]) -> None:
    assert pii.by_content(values, many_values=True) is None


def test_a_share_of_matches_is_enough() -> None:
    share = pii.PII_CONTENT_SHARE
    emails = [f"u{i}@example.com" for i in range(int(share * 10))]
    others = [f"other {i}" for i in range(10 - len(emails))]
    assert pii.by_content(emails + others, many_values=False) == "e-mail addresses"
    assert pii.by_content(emails[:-1] + others + ["x"], many_values=False) is None


def test_content_accepts_any_iterable_of_text() -> None:
    assert pii.by_content(iter(["10.0.0.1", "10.0.0.2"]), many_values=False) == "IP addresses"


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("Maria Lopez", "M**** L****"),
        ("maria.lopez7@example.com", "m****.l*****@e******.c**"),
        ("+44 20 7946", "+4* 2* 7***"),
        ("", ""),
    ],
)
def test_mask_keeps_the_first_character_of_each_word(value: str, masked: str) -> None:
    assert pii.mask(value) == masked


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=40))
def test_mask_keeps_length_and_separators(value: str) -> None:
    masked = pii.mask(value)
    assert len(masked) == len(value)
    for original, shown in zip(value, masked, strict=True):
        assert shown == original or shown == "*"
