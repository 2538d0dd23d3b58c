"""circusd's logging (circus.ini's ``loggerconfig`` names ``app/core/circus-logging.json``): circus' own format
on standard error, as without the option, less one false alarm.

While circusd stops (Ctrl-C on ``make run``, ``systemctl stop beacon``), its periodic ``manage_watchers``
callback runs into the stop in progress, gives up, and tornado logs the refusal as an error with a traceback,
``circus.exc.ConflictError: arbiter is already running arbiter_stop command``, once a second until every
watcher has stopped (circus-tent/circus#1202). Nothing is wrong: the stop itself is what manages the watchers
then. :class:`WithoutStopConflicts` drops those records and lets every other one through.
"""

from __future__ import annotations

import logging


class WithoutStopConflicts(logging.Filter):
    """A handler filter: False for a record carrying circus' ``ConflictError`` about ``arbiter_stop``."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (error is not None and type(error).__name__ == "ConflictError"
                    and type(error).__module__ == "circus.exc" and "arbiter_stop" in str(error))
