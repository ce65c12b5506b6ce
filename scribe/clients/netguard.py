"""The SSRF rule (DESIGN §7): which addresses an outbound fetch may connect to.

Every fetch (httpx and Chromium alike) resolves the host itself, checks every address with
``AddressPolicy``, then connects to the checked address, so DNS rebinding between check and
connect is impossible. Tests widen the rule only through ``allow``, a predicate passed in code;
no setting can.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from scribe.errors import FetchRefused, NonPublicAddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
AllowHook = Callable[[IPAddress, int], bool]

_BLOCKED_V4 = [
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this" network, unspecified
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
    )
]
_NAT64 = [ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48")]
# SIIT's IPv4-translated addresses (RFC 2765 ``::ffff:0:a.b.c.d``): not the mapped form, and
# Python's ``is_global`` calls them global, but a translator delivers them to the IPv4 inside.
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address hidden in a mapped, translated, compatible, 6to4, Teredo or NAT64 IPv6
    address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(address))
    return None


def is_public(address: IPAddress) -> bool:
    """True when the address is a globally routable unicast address (not private, loopback,
    link-local, CGNAT, multicast, unspecified, metadata, or an IPv6 wrapper of one of them)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_ipv4(address)
        if inner is not None:
            return False  # wrappers are refused outright: nothing legitimate needs them here
        if address.scope_id:
            return False
        return bool(
            address.is_global
            and not (address.is_multicast or address.is_link_local or address.is_site_local)
        )
    if any(address in net for net in _BLOCKED_V4):
        return False
    return bool(address.is_global and not address.is_multicast)


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve a host name with the system resolver (getaddrinfo, off the event loop)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Resolve and check outbound destinations.

    ``allow`` is a TEST-ONLY widening (e.g. the fakes' loopback ports); production code never
    passes it.
    """

    resolver: Resolver = system_resolver
    allow: AllowHook | None = None

    def permits(self, address: IPAddress, port: int) -> bool:
        """Whether connecting to ``address:port`` is allowed."""
        if self.allow is not None and self.allow(address, port):
            return True
        return is_public(address)

    async def resolve(self, host: str, port: int) -> IPAddress:
        """Resolve ``host`` and return the address to connect to; FetchRefused when any address
        it resolves to is forbidden (a name must not mix public and private answers)."""
        host = host.strip("[]").rstrip(".").lower()
        if not host:
            raise FetchRefused("URL has no host")
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = await self.resolver(host, port)
            except OSError as exc:
                raise FetchRefused(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise FetchRefused(f"{host} has no address")
        for address in addresses:
            if not self.permits(address, port):
                raise NonPublicAddress(f"refused to connect to a non-public address ({host})")
        return addresses[0]
