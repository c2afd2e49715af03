"""The outbound address policy as a pure function over addresses: tables and properties."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from watcher.address_policy import AddressKind, AddressPolicy, address_kind

PUBLIC = ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
INTERNAL = [
    "127.0.0.1",
    "127.8.9.10",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "0.0.0.0",
    "224.0.0.1",
    "192.0.2.1",
    "::1",
    "::",
    "fd00:ec2::254",  # a cloud's IPv6 metadata address is unique-local
    "fc00::1",
    "fec0::1",
    "::ffff:10.0.0.1",
    "::ffff:127.0.0.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
]
LINK_LOCAL = [
    "169.254.169.254",  # cloud metadata
    "169.254.0.1",
    "fe80::1",
    "fe80::1%eth0",
    "febf:ffff::1",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
    "::a9fe:a9fe",
]


@pytest.mark.parametrize(
    ("address", "kind"),
    [(a, AddressKind.PUBLIC) for a in PUBLIC]
    + [(a, AddressKind.INTERNAL) for a in INTERNAL]
    + [(a, AddressKind.LINK_LOCAL) for a in LINK_LOCAL],
)
def test_address_kind(address: str, kind: AddressKind) -> None:
    assert address_kind(address) is kind


# (kind, block_private, redirected, started_internal) -> allowed
DECISIONS = [
    ("public", False, False, False, True),
    ("public", True, True, True, True),
    ("public", True, True, False, True),
    ("internal", False, False, False, True),  # a feed on the LAN, as configured
    ("internal", False, True, True, True),  # ...may redirect within it
    ("internal", False, True, False, False),  # a public feed may not redirect inside
    ("internal", True, False, False, False),  # block_private: never
    ("internal", True, True, True, False),
    ("link-local", False, False, False, False),  # never, whatever else
    ("link-local", False, True, True, False),
]
EXAMPLE = {"public": "8.8.8.8", "internal": "10.1.1.1", "link-local": "169.254.169.254"}


@pytest.mark.parametrize(("kind", "block", "redirected", "started", "allowed"), DECISIONS)
def test_refusal_table(
    kind: str, block: bool, redirected: bool, started: bool, allowed: bool
) -> None:
    reason = AddressPolicy(block_private=block).refusal(
        EXAMPLE[kind], redirected=redirected, started_internal=started
    )
    assert (reason is None) is allowed


addresses = st.one_of(st.ip_addresses(v=4).map(IPv4Address), st.ip_addresses(v=6).map(IPv6Address))


@given(addresses, st.booleans(), st.booleans(), st.booleans())
def test_link_local_is_always_refused_and_public_never(
    address: IPv4Address | IPv6Address, block: bool, redirected: bool, started: bool
) -> None:
    reason = AddressPolicy(block).refusal(address, redirected=redirected, started_internal=started)
    kind = address_kind(address)
    if kind is AddressKind.LINK_LOCAL:
        assert reason is not None and "link-local" in reason
    elif kind is AddressKind.PUBLIC:
        assert reason is None
    else:
        assert (reason is None) == (not block and (not redirected or started))


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_and_its_mapped_ipv6_form_agree(address: IPv4Address) -> None:
    mapped = IPv6Address(f"::ffff:{address}")
    assert address_kind(mapped) is address_kind(address)
