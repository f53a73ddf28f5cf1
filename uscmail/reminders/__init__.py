"""Recurring protests and their reminders: events, occurrences with overrides, and one reminder per due time."""
