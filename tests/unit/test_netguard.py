"""The SSRF address rule (no I/O)."""

from __future__ import annotations

import ipaddress

import pytest

from scribe.clients.netguard import AddressPolicy, is_public

REFUSED = [
    "127.0.0.1",
    "10.2.3.4",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:0:7f00:1",  # SIIT IPv4-translated 127.0.0.1
    "::ffff:0:808:808",  # translated, even of a public address: wrappers are refused
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
]
ALLOWED = ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_allow_hook_widens_only_what_it_names() -> None:
    policy = AddressPolicy(allow=lambda ip, port: ip.is_loopback and port == 8080)
    assert policy.permits(ipaddress.ip_address("127.0.0.1"), 8080)
    assert not policy.permits(ipaddress.ip_address("127.0.0.1"), 5432)
    assert not policy.permits(ipaddress.ip_address("10.0.0.1"), 8080)
