"""Every actor module; importing this package declares them all on the broker.

``workers.broker`` is imported first so that actors bind to Beacon's broker, whichever actor module a
process happens to import first.
"""

import workers.broker  # noqa: F401  (must precede the actor modules)
from workers.actors import analytics, ingest, integrations, system

__all__ = ["analytics", "ingest", "integrations", "system"]
