"""Developer tasks: ``nox -s tests``, ``lint``, ``typecheck``, ``examples``, ``bench``, ``demo``.

Every session runs with the Python that runs nox (3.11 or newer) in its own virtualenv.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck", "examples"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
EXAMPLES = sorted(p.relative_to(ROOT) for p in ROOT.glob("examples/*/main.py"))
ACTOR_EXAMPLES = ["hello", "ask", "pipeline"]


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
    session.run("python", "benchmarks/actors.py", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The demo: for now, the actor examples one after another."""
    session.install("-e", ".")
    for name in ACTOR_EXAMPLES:
        session.log(f"--- examples/{name}")
        session.run("python", f"examples/{name}/main.py")
