"""Memory: where an agent keeps its conversation between turns.

* :class:`Memory` — the protocol: ``append(*messages)``, ``messages()``, ``clear()``.
* :class:`BufferMemory` — the last ``n`` messages, in this process.
* :class:`SQLiteMemory` — conversations in an SQLite file, kept across runs.
* :class:`TurnStore` — the protocol of a memory that also keeps an agent's suspended
  turn (a tool call waiting for approval); ``SQLiteMemory`` is one.
* :func:`trim_messages` — the window rule both use: at most ``n`` messages, never a
  tool call separated from its results.
"""

from ._buffer import BufferMemory as BufferMemory
from ._buffer import Memory as Memory
from ._buffer import TurnStore as TurnStore
from ._buffer import trim_messages as trim_messages
from ._sqlite import SQLiteMemory as SQLiteMemory

__all__ = ["BufferMemory", "Memory", "SQLiteMemory", "TurnStore", "trim_messages"]
