"""Bounces and complaints: per-recipient return paths out, reports in (an SMTP receiver, a polled mailbox, provider
webhooks), one service that decides what each report means for its subscriber, and the sender health page."""
