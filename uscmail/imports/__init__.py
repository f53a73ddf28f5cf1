"""CSV import and export of subscribers: streamed, set-based, with a report of every row that was skipped."""
