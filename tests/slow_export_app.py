"""The app for tests/test_long_responses.py, served by gunicorn in a process of its own: as uscmail's, except that
each batch of the subscriber export holds BATCH_SIZE subscribers and, after the header row, takes SLOW_EXPORT_SECONDS
(from the environment) longer. A few dozen subscribers then take as long as a million would (the fault: a big list,
which a test cannot afford to create), or a batch hangs."""

import os
import time

from uscmail import create_app as create_uscmail
from uscmail.imports import export

BATCH_SIZE = 5


def create_app():
    """uscmail's app, with the export slowed down."""
    rows = export._rows
    seconds = float(os.environ["SLOW_EXPORT_SECONDS"])

    def slow_rows(chosen):
        batches = rows(chosen)
        yield next(batches)  # the header row, at once: the response has begun
        for batch in batches:
            time.sleep(seconds)
            yield batch

    export.BATCH_SIZE = BATCH_SIZE
    export._rows = slow_rows
    return create_uscmail()
