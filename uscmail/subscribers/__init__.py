"""Organiser-side management of subscribers and lists: search, edit, subscribe, unsubscribe, erase, export."""
