"""Sign-in throttling per (client address, account) and per client address, atomically in Redis.

Counting per account alone lets anyone lock any account: five wrong passwords from anywhere and the owner
cannot sign in either. As Django-axes does with ``AXES_LOCKOUT_PARAMETERS = [["ip_address", "username"],
"ip_address"]``, the account's counter is kept per address, so guesses from one place never lock the owner
out from another; a second counter per address bounds how many accounts one address can try. An IPv6
client counts by its /64, the block one subscriber is usually given.

Litestar's rate-limit middleware reads and then writes its counter, so concurrent requests in several
processes all pass the check (measured: 40 concurrent requests against a limit of 5 let 6-9 through). One
Lua script checks both counters and increments them in one step, so exactly ``limit`` attempts pass.
"""

from __future__ import annotations

import hashlib
import ipaddress

import redis.asyncio as aioredis

from app.core.ratelimit import Verdict, count_in_window
from app.core.redis import Keys
from app.core.settings import AccountSettings

_SCRIPT = """
local pair = tonumber(redis.call('GET', KEYS[1]) or '0')
local address = tonumber(redis.call('GET', KEYS[2]) or '0')
if pair >= tonumber(ARGV[1]) then return {0, redis.call('PTTL', KEYS[1])} end
if address >= tonumber(ARGV[2]) then return {0, redis.call('PTTL', KEYS[2])} end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return {1, 0}
"""


def address_block(address: str) -> str:
    """The unit an address is counted by: itself for IPv4, its /64 for IPv6 (text that is no address: as is)."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


class LoginThrottle:
    def __init__(self, client: aioredis.Redis, keys: Keys, settings: AccountSettings) -> None:
        self._client = client
        self._prefix = keys.prefix
        self._settings = settings

    def _pair_key(self, email: str, address: str) -> str:
        # Hashed so the key space does not spell out who tried to sign in from where.
        pair = f"{address_block(address)}|{email.strip().lower()}"
        return f"{self._prefix}login:pair:{hashlib.sha256(pair.encode()).hexdigest()}"

    def _address_key(self, address: str) -> str:
        return f"{self._prefix}login:address:{address_block(address)}"

    async def attempt(self, email: str, address: str) -> Verdict:
        """Count one attempt; ``allowed`` is false once either limit is reached for this address."""
        allowed, pttl = await self._client.eval(
            _SCRIPT, 2, self._pair_key(email, address), self._address_key(address),
            self._settings.login_attempts_per_account, self._settings.login_attempts_per_ip,
            self._settings.login_window)
        return Verdict(bool(allowed), 0 if allowed else max(1, (int(pttl) + 999) // 1000))

    async def succeeded(self, email: str, address: str) -> None:
        """A correct password clears this address's counter for the account (not the address's own)."""
        await self._client.delete(self._pair_key(email, address))


class RegistrationThrottle:
    """Registration attempts per client address (an IPv6 /64), checked and counted in one atomic step."""

    def __init__(self, client: aioredis.Redis, keys: Keys, settings: AccountSettings) -> None:
        self._client = client
        self._prefix = keys.prefix
        self._settings = settings

    async def attempt(self, address: str) -> Verdict:
        """Count one attempt; ``allowed`` is false once the address has used ``registrations_per_ip``."""
        return await count_in_window(self._client, f"{self._prefix}register:address:{address_block(address)}",
                                     self._settings.registrations_per_ip, self._settings.registration_window)
