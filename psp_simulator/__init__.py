"""A fake Payment Service Provider (PSP) that runs as its own process.

Standard library only: it can be imported and run without Django.  Start it
with ``python -m psp_simulator`` (see ``docs/psp-simulator.md``) or in-process
with :func:`psp_simulator.server.make_server`.
"""

__version__ = "1.0.0"

__all__ = ["__version__"]
