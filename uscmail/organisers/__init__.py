"""Organisers: accounts (Argon2id passwords, mandatory TOTP, roles, server-side sessions), sign-in and set-up links,
the account pages, API tokens, and the append-only audit log."""
