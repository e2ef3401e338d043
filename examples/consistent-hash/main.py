"""Per-key state behind a ConsistentHash router.

Each account's deposits always reach the same shard, so a shard can keep the
account's balance in a plain dict with no locking and no shared state. Stopping a
shard moves only that shard's accounts (their balances start over on the new
owner, which is why real systems persist or replicate such state).

Run it with ``python examples/consistent-hash/main.py``.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from tinyagents import Actor, ActorSystem, Context
from tinyagents.router import ConsistentHash, GetRoutees


@attrs.frozen
class Deposit:
    """Add ``amount`` to ``account``; answered with the new balance."""

    account: str
    amount: int

    @property
    def hash_key(self) -> str:
        return self.account


@attrs.frozen
class Balance:
    """Ask for the balance of ``account``."""

    account: str

    @property
    def hash_key(self) -> str:
        return self.account


class Shard(Actor):
    """Holds the balances of the accounts the ring gives it."""

    def __init__(self) -> None:
        self.balances: dict[str, int] = {}

    async def receive(self, ctx: Context, message: Any) -> Any:
        if isinstance(message, Deposit):
            self.balances[message.account] = self.balances.get(message.account, 0) + message.amount
            return (ctx.self.name, self.balances[message.account])
        if isinstance(message, Balance):
            return (ctx.self.name, self.balances.get(message.account, 0))
        raise TypeError(f"unexpected message {message!r}")


async def main() -> None:
    async with ActorSystem("bank") as system:
        bank = await system.spawn(ConsistentHash.pool(4, Shard), name="bank")
        accounts = [f"acct-{i:02}" for i in range(12)]
        for round_ in range(1, 4):
            for account in accounts:
                await bank.tell(Deposit(account, 10 * round_))
        owners: dict[str, str] = {}
        for account in accounts:
            shard, balance = await bank.ask(Balance(account))
            owners[account] = shard
            print(f"{account}: balance {balance:3} on shard {shard}")
        assert all(balance == 60 for _, balance in [await bank.ask(Balance(a)) for a in accounts])

        shards = await bank.ask(GetRoutees())
        victim = shards[0]
        await victim.stop()
        moved = []
        for account in accounts:
            shard, _ = await bank.ask(Balance(account))
            if shard != owners[account]:
                moved.append(account)
        print(f"stopped shard {victim.name}: {len(moved)} of {len(accounts)} accounts moved")
        assert all(owners[a] == victim.name for a in moved)
        print(f"dead letters: {system.dead_letters}")


if __name__ == "__main__":
    trio.run(main)
