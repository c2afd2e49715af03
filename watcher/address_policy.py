"""The outbound address policy: may a fetch connect to this IP address? Pure: no I/O, no DNS.

    link-local (169.254.0.0/16 with the cloud metadata address 169.254.169.254, fe80::/10)
        never
    internal (loopback, private, unique-local fc00::/7, shared 100.64.0.0/10, unspecified,
              multicast, documentation and other ranges that are not globally routable)
        never with ``poll.block_private: true``;
        otherwise on the first request of a fetch, and on a redirect only when that first
        request went to an internal address too (a feed on the LAN may redirect within it)
    public
        always

An IPv6 address that embeds an IPv4 one (``::ffff:10.0.0.1``, NAT64 ``64:ff9b::a9fe:a9fe``)
is judged by the IPv4 address. Feeds and WebSub hubs are reached under this policy; article pages
and feed discovery are meant to be too: ``watcher.poll.guard`` applies it to
every connection a fetch opens or reuses, on every hop.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address

IPAddress = IPv4Address | IPv6Address

_NAT64 = IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = IPv6Network("::/96")


class AddressKind(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"
    LINK_LOCAL = "link-local"


def address_kind(address: str | IPAddress) -> AddressKind:
    """Where ``address`` points: the public internet, an internal network, or link-local."""
    ip = _embedded_ipv4(ip_address(address) if isinstance(address, str) else address)
    if ip.is_link_local:
        return AddressKind.LINK_LOCAL
    site_local = isinstance(ip, IPv6Address) and ip.is_site_local
    if not ip.is_global or ip.is_multicast or site_local:
        return AddressKind.INTERNAL
    return AddressKind.PUBLIC


def _embedded_ipv4(ip: IPAddress) -> IPAddress:
    if not isinstance(ip, IPv6Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


@dataclass(frozen=True)
class AddressPolicy:
    """``block_private``: refuse internal addresses altogether (``poll.block_private``)."""

    block_private: bool = False

    def refusal(
        self, address: str | IPAddress, *, redirected: bool, started_internal: bool
    ) -> str | None:
        """Why a fetch may not connect to ``address``, or None when it may.

        ``redirected``: this request follows a redirect; ``started_internal``: the fetch's
        first request went to an internal address.
        """
        kind = address_kind(address)
        if kind is AddressKind.LINK_LOCAL:
            return "link-local addresses (169.254.0.0/16, fe80::/10) are never fetched"
        if kind is AddressKind.INTERNAL and self.block_private:
            return "poll.block_private refuses loopback and private addresses"
        if kind is AddressKind.INTERNAL and redirected and not started_internal:
            return "a redirect may not lead from a public address to a loopback or private one"
        return None
