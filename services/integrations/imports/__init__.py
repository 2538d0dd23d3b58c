"""Imports of a site's history: uploads, the readers of each export format, and the resumable job.

- :mod:`.files` stores an upload and reads it (a zip entry by entry, a CSV line by line) under the limits of
  :class:`app.core.settings.ImportSettings`; every refusal is an :class:`ImportRefused` naming file, line, column.
- :mod:`.plausible` reads Plausible CE's CSV export (``imported_*.csv``) into the ``imported_*`` tables.
- :mod:`.umami` stages Umami's ``website_event`` export and folds it into daily aggregates.
- :mod:`.job` runs an import: leased, in batches whose cursor commits with their rows, resumable and idempotent.
"""
