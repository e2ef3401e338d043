"""A hand-written MCP server over stdio that misbehaves on purpose, for the client's tests.

It speaks only the 2025-11-25 handshake (``server/discover`` is an unknown method),
lists its tools one per page (so that the client must follow the cursors), prints a
garbage line before every answer, and has three tools: ``echo`` (answers its text),
``die`` (writes to stderr and exits with status 3 in the middle of the call) and
``hang`` (never answers). ``--page-loop`` makes the listing repeat its cursor.
"""

from __future__ import annotations

import json
import sys

TOOLS = [
    {
        "name": "echo",
        "description": "Answer the text.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string", "minLength": 1}},
            "required": ["text"],
        },
    },
    {
        "name": "die",
        "description": "Exit in the middle of the call.",
        "inputSchema": {"type": "object"},
    },
    {"name": "hang", "description": "Never answer.", "inputSchema": {"type": "object"}},
]


def send(message: dict) -> None:
    sys.stdout.write("this is not JSON-RPC\n")
    sys.stdout.write('{"jsonrpc": "2.0", "what": "no kind"}\n')
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request: dict, result: dict) -> None:
    send({"jsonrpc": "2.0", "id": request["id"], "result": result})


def main() -> None:
    page_loop = "--page-loop" in sys.argv
    for line in sys.stdin:
        request = json.loads(line)
        method = request.get("method")
        if "id" not in request:
            continue  # notifications: initialized, cancelled
        if method == "initialize":
            answer(
                request,
                {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "bad", "version": "0"},
                },
            )
        elif method == "tools/list":
            cursor = (request.get("params") or {}).get("cursor")
            index = 0 if cursor is None else int(cursor)
            result: dict = {"tools": [TOOLS[index]]}
            if index + 1 < len(TOOLS):
                result["nextCursor"] = "1" if page_loop else str(index + 1)
            answer(request, result)
        elif method == "tools/call":
            name = request["params"]["name"]
            if name == "echo":
                text = request["params"]["arguments"]["text"]
                answer(request, {"content": [{"type": "text", "text": text}]})
            elif name == "die":
                sys.stderr.write("about to die\n")
                sys.stderr.flush()
                sys.exit(3)
            elif name == "hang":
                pass
        else:
            send(
                {
                    "jsonrpc": "2.0",
                    "id": request["id"],
                    "error": {"code": -32601, "message": f"no method {method}"},
                }
            )


if __name__ == "__main__":
    main()
