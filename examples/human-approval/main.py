"""Human approval: a tool that pays waits for a person, and the wait survives a restart.

An agent on an OpenAI-dialect server (the local stub of ``tinyagents.testing``, so the
example runs offline) is asked to settle an invoice. The model looks the invoice up
(a tool that needs no approval) and then calls ``pay``, marked
``@tool(requires_approval=True)``.

1. The first "process" has nobody to ask: the turn is suspended, the ask fails with
   ``TurnSuspended``, and the turn is saved in an SQLite file.
2. A second "process" (a new actor system, a new agent, the same file) resumes it with
   a person's decision: the amount edited down. ``lookup_invoice`` is not run again;
   ``pay`` runs once, with the edited arguments, and the model answers.

Run it with::

    python examples/human-approval/main.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import trio

from tinyagents import ActorSystem
from tinyagents.agent import Agent, Prompt, Response
from tinyagents.approval import ApprovalRequested, Approve, Approver, Decision, Resume
from tinyagents.errors import TurnSuspended
from tinyagents.llm import ToolCall
from tinyagents.llm.openai import OpenAI
from tinyagents.memory import SQLiteMemory
from tinyagents.testing import OpenAIStub, StubReply
from tinyagents.tool import tool

ran: list[str] = []


@tool
async def lookup_invoice(number: str) -> dict[str, object]:
    """The invoice with this number."""
    ran.append(f"lookup_invoice({number})")
    return {"number": number, "amount": 120, "to": "ACME"}


@tool(requires_approval=True)
async def pay(to: str, amount: int) -> str:
    """Pay an amount of euros."""
    ran.append(f"pay({to}, {amount})")
    return f"paid {amount} EUR to {to}"


async def reviewer(request: ApprovalRequested) -> Decision:
    """A person who pays 100 at most (here, a function deciding at once)."""
    arguments = dict(request.call.arguments)
    print(f"  asked to approve {request.call.name}({arguments}), resumed={request.resumed}")
    return Approve(arguments={**arguments, "amount": min(arguments["amount"], 100)})


def agent(provider: OpenAI, memory: SQLiteMemory, approver: Approver | None = None) -> Agent:
    return Agent(
        "clerk",
        provider,
        "gpt-4o-mini",
        tools=[lookup_invoice, pay],
        memory=memory,
        approver=approver,
        approval_timeout=3600,
    )


async def main() -> None:
    database = Path(tempfile.mkdtemp()) / "clerk.db"
    async with OpenAIStub() as stub:
        stub.script(
            StubReply(tool_calls=[ToolCall("call-1", "lookup_invoice", {"number": "F-7"})]),
            StubReply(tool_calls=[ToolCall("call-2", "pay", {"to": "ACME", "amount": 120})]),
            StubReply(text="Invoice F-7 is settled: 100 EUR paid to ACME."),
        )
        async with OpenAI(api_key="sk-local", base_url=stub.base_url) as provider:
            print("first process:")
            async with (
                SQLiteMemory(database, "invoices") as memory,
                ActorSystem("first") as system,
            ):
                clerk = await system.spawn(agent(provider, memory), name="clerk")
                try:
                    await clerk.ask(Prompt("Settle invoice F-7."), timeout=30)
                except TurnSuspended as suspended:
                    print(f"  suspended, waiting for: {[c.name for c in suspended.waiting]}")
            print(f"  ran so far: {ran}")

            print("second process:")
            async with (
                SQLiteMemory(database, "invoices") as memory,
                ActorSystem("second") as system,
            ):
                clerk = await system.spawn(agent(provider, memory, reviewer), name="clerk")
                response = await clerk.ask(Resume(), timeout=30)
                assert isinstance(response, Response)
                print(f"  {response.text}")
                print(f"  {response.rounds} model calls, {response.tool_calls} tool calls")
                kept = await memory.messages()
            print(f"  ran in all: {ran}")
            print(f"  the conversation kept: {[m.role for m in kept]}")


if __name__ == "__main__":
    trio.run(main)
