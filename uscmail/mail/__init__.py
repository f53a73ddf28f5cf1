"""Building and sending mail: MIME messages from templates, SMTP connections with timeouts."""
