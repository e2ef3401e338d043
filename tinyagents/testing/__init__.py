"""Test helpers for tinyagents users: a scripted provider and provider stub servers.

The stub servers speak each provider's real wire format over HTTP on 127.0.0.1, with
scripted replies and injectable faults; ``LlamaServer`` runs a real small model (SmolLM2
on llama.cpp) locally. See ``docs/testing.md``.
"""

from ._anthropic_stub import AnthropicStub as AnthropicStub
from ._llama import LlamaServer as LlamaServer
from ._llama import llama_server_binary as llama_server_binary
from ._llama import smollm2_model_path as smollm2_model_path
from ._ollama_stub import OllamaStub as OllamaStub
from ._openai_stub import MistralStub as MistralStub
from ._openai_stub import OpenAIStub as OpenAIStub
from ._openai_stub import OpenRouterStub as OpenRouterStub
from ._scripted import ScriptedProvider as ScriptedProvider
from ._serf import SerfAgent as SerfAgent
from ._serf import SerfMember as SerfMember
from ._server import Fault as Fault
from ._server import FaultKind as FaultKind
from ._server import RecordedRequest as RecordedRequest
from ._server import StubReply as StubReply
from ._server import StubResponse as StubResponse
from ._server import StubServer as StubServer

__all__ = [
    "AnthropicStub",
    "Fault",
    "FaultKind",
    "LlamaServer",
    "MistralStub",
    "OllamaStub",
    "OpenAIStub",
    "OpenRouterStub",
    "RecordedRequest",
    "ScriptedProvider",
    "SerfAgent",
    "SerfMember",
    "StubReply",
    "StubResponse",
    "StubServer",
    "llama_server_binary",
    "smollm2_model_path",
]
