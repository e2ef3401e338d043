"""A tiny MCP server over stdio, written by hand so that it runs with only the standard
library: newline-delimited JSON-RPC on stdin and stdout, logs on stderr.

It speaks the 2025-11-25 handshake and offers two tools, ``add_note`` and
``list_notes``, keeping the notes in memory. (A real server would more likely be
written with the official SDK, ``pip install mcp``; the client does not care.)
"""

from __future__ import annotations

import json
import sys

NOTES: list[str] = []
TOOLS = [
    {
        "name": "add_note",
        "description": "Keep a note for later.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "The note."}},
            "required": ["text"],
        },
    },
    {
        "name": "list_notes",
        "description": "Every note kept so far, one per line.",
        "inputSchema": {"type": "object", "properties": {}},
    },
]


def reply(request: dict, result: dict) -> None:
    print(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": result}), flush=True)


def text(value: str, error: bool = False) -> dict:
    return {"content": [{"type": "text", "text": value}], "isError": error}


def call(name: str, arguments: dict) -> dict:
    if name == "add_note":
        note = str(arguments.get("text", "")).strip()
        if not note:
            return text("a note needs some text", error=True)
        NOTES.append(note)
        print(f"notes: kept {note!r}", file=sys.stderr, flush=True)
        return text(f"kept note {len(NOTES)}")
    if name == "list_notes":
        return text("\n".join(f"{i}. {note}" for i, note in enumerate(NOTES, 1)) or "no notes")
    return text(f"no tool {name}", error=True)


for line in sys.stdin:
    request = json.loads(line)
    if "id" not in request:
        continue  # notifications/initialized, notifications/cancelled
    method = request.get("method")
    params = request.get("params") or {}
    if method == "initialize":
        reply(
            request,
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "notes", "version": "1.0"},
            },
        )
    elif method == "tools/list":
        reply(request, {"tools": TOOLS})
    elif method == "tools/call":
        reply(request, call(params.get("name", ""), params.get("arguments") or {}))
    elif method == "ping":
        reply(request, {})
    else:  # server/discover included: this server only knows the handshake
        error = {"code": -32601, "message": f"method not found: {method}"}
        print(json.dumps({"jsonrpc": "2.0", "id": request["id"], "error": error}), flush=True)
