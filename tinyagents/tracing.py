"""OpenTelemetry traces of agents, model calls, tool calls and asks.

Install the extra (``pip install 'tinyagents[otel]'``), configure an SDK
``TracerProvider`` as usual, then turn tinyagents' spans on::

    import tinyagents.tracing

    tinyagents.tracing.instrument()            # the global tracer provider
    tinyagents.tracing.instrument(provider)    # or a provider of your own

Until :func:`instrument` is called, and always when OpenTelemetry is not installed,
nothing is traced and the runtime pays one ``None`` check per ask. The library never
sets OpenTelemetry's global tracer provider.

The spans follow OpenTelemetry's GenAI semantic conventions: ``chat {model}`` for each
model call (every provider, the scripted one included), ``invoke_agent {name}`` for
each agent or team turn, ``execute_tool {name}`` for each tool call, and ``ask {path}``
for each ask. The trace context travels inside the asked message's envelope, through
mailboxes and across nodes (as a W3C ``traceparent``), so that a team's members and a
remote agent continue the asker's trace; a told message carries none.

Message contents (prompts, completions, tool arguments and results) are recorded only
when asked for: ``instrument(capture_content=True)``, or the environment variable
``TINYAGENTS_OTEL_CAPTURE_CONTENT=1``. See ``docs/observability.md``.
"""

from ._tracing import CAPTURE_CONTENT_ENV as CAPTURE_CONTENT_ENV
from ._tracing import available as available
from ._tracing import capture_content as capture_content
from ._tracing import instrument as instrument
from ._tracing import is_instrumented as is_instrumented
from ._tracing import uninstrument as uninstrument

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "available",
    "capture_content",
    "instrument",
    "is_instrumented",
    "uninstrument",
]
