"""Security headers and proxy handling: strict CSP, HSTS, no referrers, no caching of pages with tokens."""

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors {ancestors}"
)
# Pages and answers that carry tokens or personal data: never kept by a browser or proxy cache.
NO_STORE_PATHS = ("/confirm/", "/unsubscribe/", "/preferences/", "/subscribe", "/organisers", "/api/")
# A browser that has reached us over https keeps to https for two years (sent only when BASE_URL is https). No
# includeSubDomains: BASE_URL's host may be the campaign's own domain, whose other sites are not ours to decide.
HSTS = "max-age=63072000"


def init_security(app: Flask) -> None:
    """Install ProxyFix for trusted proxies and an after_request hook that sets the headers."""
    if app.config.get("TRUSTED_PROXIES"):
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    embedders = " ".join(app.config.get("CORS_ORIGINS") or [])
    served_over_https = app.config.get("BASE_URL", "").startswith("https://")

    @app.after_request
    def set_security_headers(response):
        # The signup form may be framed by the campaign's own sites; nothing else may be framed.
        ancestors = f"'self' {embedders}".strip() if request.path == "/subscribe" and embedders else "'none'"
        if not request.path.startswith("/dev/mail/"):
            response.headers.setdefault("Content-Security-Policy", CSP.format(ancestors=ancestors))
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), interest-cohort=()"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if served_over_https:
            response.headers["Strict-Transport-Security"] = HSTS
        if request.path.startswith(NO_STORE_PATHS):
            response.headers["Cache-Control"] = "no-store"
        return response
