"""Development mail catcher: an SMTP server that keeps mail in files, and a page to read it. Never in production."""
