"""Every actor module; importing this package declares them all on the broker."""

from workers.actors import system

__all__ = ["system"]
