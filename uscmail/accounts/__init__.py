"""Account pages: admins manage organisers; every organiser changes their own password and recovery codes."""
