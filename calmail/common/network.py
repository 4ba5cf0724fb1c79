"""Where a request comes from: the client's address, also behind a reverse proxy."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The client's IP address: from CALMAIL_CLIENT_IP_HEADER when calmail runs behind a
    proxy (the entry CALMAIL_TRUSTED_PROXY_COUNT from the end: earlier entries are what
    the client claims and can be forged), else the TCP peer. "" if none is valid."""
    candidate = ""
    header = settings.CALMAIL_CLIENT_IP_HEADER
    if header and request.META.get(header):
        entries = [entry.strip() for entry in request.META[header].split(",") if entry.strip()]
        count = max(1, settings.CALMAIL_TRUSTED_PROXY_COUNT)
        if entries:
            candidate = entries[-count] if len(entries) >= count else entries[0]
    if not candidate:
        candidate = request.META.get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return ""


def masked_network(request: HttpRequest | None) -> str:
    """The client's network, not its address: enough to tell an office from an unknown
    place, not enough to identify a person (IPv4 /24, IPv6 /48), as data protection asks."""
    address = client_ip(request) if request is not None else ""
    if not address:
        return ""
    ip = ipaddress.ip_address(address)
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
