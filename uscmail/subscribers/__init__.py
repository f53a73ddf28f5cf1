"""Organiser-side management of subscribers and lists: the dashboard, search, edit, subscribe, unsubscribe, erase,
and list management."""
