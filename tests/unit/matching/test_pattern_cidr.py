"""cidr on IPv4 and IPv6 string addresses."""

from typing import Any

import pytest

from flowbus.matching.errors import PatternError
from flowbus.matching.patterns import compile_pattern


def matches(block: str, value: Any) -> bool:
    pattern = compile_pattern({"data": {"ip": [{"cidr": block}]}})
    return pattern.matches({"data": {"ip": value}})


def test_ipv4_address_inside_the_block_matches() -> None:
    assert matches("10.0.0.0/24", "10.0.0.255")


def test_ipv4_address_outside_the_block_does_not_match() -> None:
    assert not matches("10.0.0.0/24", "10.0.1.0")


def test_ipv6_address_inside_the_block_matches() -> None:
    assert matches("2001:db8::/32", "2001:db8:ffff::1")
    assert not matches("2001:db8::/32", "2001:db9::1")


def test_ipv4_block_does_not_match_ipv6_address() -> None:
    assert not matches("0.0.0.0/0", "::1")


def test_bare_address_is_a_single_host() -> None:
    assert matches("192.168.1.7", "192.168.1.7")
    assert not matches("192.168.1.7", "192.168.1.8")


def test_host_bits_in_the_block_are_ignored() -> None:
    assert matches("10.0.0.17/24", "10.0.0.3")


def test_strings_that_are_not_addresses_do_not_match() -> None:
    assert not matches("10.0.0.0/8", "10.0.0")
    assert not matches("10.0.0.0/8", "not-an-ip")


def test_numbers_do_not_match() -> None:
    assert not matches("0.0.0.0/0", 167772161)


def test_invalid_block_is_rejected_with_the_path() -> None:
    with pytest.raises(PatternError, match=r"^data\.ip\[0\]: cidr: "):
        compile_pattern({"data": {"ip": [{"cidr": "10.0.0.0/33"}]}})


def test_non_string_block_is_rejected() -> None:
    with pytest.raises(PatternError, match="cidr takes a string"):
        compile_pattern({"data": {"ip": [{"cidr": 10}]}})
