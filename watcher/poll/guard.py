"""Connections that obey the outbound address policy on every hop; knows nothing about feeds.

A connection of a pool manager passed to ``install()`` resolves its host itself, asks
``address_policy`` about each address, and connects to an allowed one by that very
address: no second lookup, so a name that resolves to a public address for the check and
to an internal one for the connection (DNS rebinding) cannot get through. A kept-alive
connection is asked about again before each request it carries, since the fetch reusing
it may be under a stricter rule (a redirect that started on a public address).

What a fetch is allowed is set per thread with ``scope()``; the caller counts the hops:

    state = FetchScope(AddressPolicy(block_private=True))
    with scope(state):
        manager.urlopen(...)            # first request: link-local and (here) internal refused
        state.hop += 1                  # then each redirect
        manager.urlopen(...)

A refusal raises ``AddressRefused`` (no OSError: urllib3 lets it through unwrapped).
Through a proxy, the proxy connects: only a host written as an IP address can be checked
here (``check_host``); a name is resolved by the proxy, whose own rules then apply.
"""

from __future__ import annotations

import functools
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, cast

from urllib3 import PoolManager
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from watcher.address_policy import AddressKind, AddressPolicy, address_kind

_local = threading.local()


@dataclass
class FetchScope:
    """One fetch's policy and progress: which hop it is on, where its first request went."""

    policy: AddressPolicy
    hop: int = 0  # 0: the first request; each redirect adds one
    started_internal: bool | None = None  # set when the first request connects


class AddressRefused(Exception):  # noqa: N818 - the policy's answer, not a failure of ours
    """The policy refused every address of ``host``."""

    def __init__(self, host: str, address: str, reason: str) -> None:
        self.host = host
        self.address = address
        self.reason = reason
        super().__init__(f"{host} ({address}): {reason}")


@contextmanager
def scope(state: FetchScope) -> Iterator[FetchScope]:
    """Make connections opened or reused by this thread, inside the block, obey ``state``."""
    previous = getattr(_local, "scope", None)
    _local.scope = state
    try:
        yield state
    finally:
        _local.scope = previous


def check_address(host: str, address: str) -> None:
    """Raise AddressRefused unless the current scope lets this hop connect to ``address``."""
    state: FetchScope = getattr(_local, "scope", None) or FetchScope(AddressPolicy())
    first = state.hop == 0
    reason = state.policy.refusal(
        address, redirected=not first, started_internal=bool(state.started_internal)
    )
    if reason is not None:
        raise AddressRefused(host, address, reason)
    if first:
        state.started_internal = address_kind(address) is AddressKind.INTERNAL


def check_host(host: str) -> None:
    """Check a request's host when a proxy connects for us: an IP address is judged as it
    stands; a name is left to the proxy, which resolves it (looking it up here would not
    be what the proxy connects to, and may not even resolve outside the proxy)."""
    try:
        ip_address(host.strip("[]"))
    except ValueError:
        return
    check_address(host, host.strip("[]"))


class _AddressCheck(HTTPConnection):
    """Resolve, check, then connect to the checked address; re-check a reused connection."""

    _checked_address: str | None = None

    def _new_conn(self) -> socket.socket:
        if getattr(self, "proxy", None) is not None:  # the proxy itself is the operator's
            return super()._new_conn()
        host = self._dns_host
        try:
            infos = socket.getaddrinfo(host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise NameResolutionError(self.host, self, e) from e
        refused: AddressRefused | None = None
        error: OSError | None = None
        for info in infos:
            address = str(info[4][0])
            try:
                check_address(self.host, address)
            except AddressRefused as e:
                refused = refused or e
                continue
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as e:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out.") from e
            except OSError as e:
                error = e
                continue
            self._checked_address = address
            return sock
        if error is not None:
            raise NewConnectionError(self, f"Failed to establish a new connection: {error}")
        assert refused is not None, "getaddrinfo gave no address"
        raise refused

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None and self._checked_address is not None:
            try:
                check_address(self.host, self._checked_address)
            except AddressRefused:
                self.close()
                raise
        super().request(*args, **kwargs)


@functools.cache
def _guarded_pool(pool: type[HTTPConnectionPool]) -> type[HTTPConnectionPool]:
    base = cast(type[HTTPConnection], pool.ConnectionCls)
    connection = type(f"Guarded{base.__name__}", (_AddressCheck, base), {})
    return cast(
        type[HTTPConnectionPool],
        type(f"Guarded{pool.__name__}", (pool,), {"ConnectionCls": connection}),
    )


def install(manager: PoolManager) -> None:
    """Make every connection ``manager`` opens from now on obey the address policy."""
    manager.pool_classes_by_scheme = {
        scheme: _guarded_pool(pool) for scheme, pool in manager.pool_classes_by_scheme.items()
    }
