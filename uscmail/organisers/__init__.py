"""Organiser accounts: Argon2id passwords, mandatory TOTP, roles, server-side sessions, API tokens."""
