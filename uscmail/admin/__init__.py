"""The organisers' pages: dashboard, subscribers and lists, built on the subscriber and list services."""
