"""Sender health, the DNS side: what receivers find in the DNS about our mail (DKIM, SPF, DMARC, the bounce domain's
MX) compared with what they should find, with a verdict and the reason for each, in words an organiser can act on.

Pure logic over one read: the answers come through the app's resolver (`resolver()`; tests put canned answers in its
place), all looked up at once with a short time limit. Nothing here raises for an answer it doesn't like: a lookup
that failed is a verdict like any other. (Bounce and complaint rates are in rates.py.)
"""

import enum
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import dns.exception
import dns.resolver
from flask import current_app

from ..mail.dkim import Signer, txt_record
from ..mail.headers import ascii_domain
from ..mail.messages import allowed_senders

log = logging.getLogger(__name__)

RESOLVER_EXTENSION = "uscmail_dns"


# DNS lookups


class LookupFailed(Exception):
    """No answer came (a time-out, no server, a refusal): unlike a name that has no such record."""


class DnsResolver:
    """TXT and MX lookups through dnspython, each given at most `timeout` seconds; [] when the name has none."""

    def __init__(self, timeout: float = 2.0, nameservers: list[str] | None = None, port: int = 53):
        self.timeout, self.nameservers, self.port = timeout, nameservers, port

    def _answer(self, name: str, rdtype: str) -> list:
        try:
            resolver = dns.resolver.Resolver(configure=self.nameservers is None)
            if self.nameservers is not None:
                resolver.nameservers = self.nameservers
            resolver.port = self.port
            resolver.timeout = resolver.lifetime = self.timeout
            return list(resolver.resolve(name, rdtype, search=False))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.Timeout:
            raise LookupFailed(f"no answer within {self.timeout:g} s") from None
        except dns.resolver.NoNameservers:
            raise LookupFailed("the DNS servers could not answer (a server failure or a refusal)") from None
        except dns.resolver.NoResolverConfiguration:
            raise LookupFailed("this server has no DNS resolver configured") from None
        except (dns.exception.DNSException, OSError, ValueError) as exc:
            raise LookupFailed(f"the lookup failed ({type(exc).__name__})") from None

    def txt(self, name: str) -> list[str]:
        """The name's TXT records, each one's strings joined (as SPF, DKIM and DMARC read them)."""
        return [b"".join(record.strings).decode("utf-8", "replace") for record in self._answer(name, "TXT")]

    def mx(self, name: str) -> list[str]:
        """The name's mail hosts, most preferred first; "." is a null MX (the domain takes no mail)."""
        records = sorted(self._answer(name, "MX"), key=lambda record: record.preference)
        return [record.exchange.to_text(omit_final_dot=True) for record in records]


def resolver():
    """The app's resolver: whatever is in app.extensions["uscmail_dns"] (tests put canned answers there), else a
    DnsResolver with HEALTH_DNS_TIMEOUT, made once."""
    app = current_app._get_current_object()
    if RESOLVER_EXTENSION not in app.extensions:
        app.extensions[RESOLVER_EXTENSION] = DnsResolver(timeout=app.config["HEALTH_DNS_TIMEOUT"])
    return app.extensions[RESOLVER_EXTENSION]


Answer = list[str] | LookupFailed


def _ask(lookup: Callable[[str], list[str]], name: str) -> Answer:
    try:
        return list(lookup(name))
    except LookupFailed as exc:
        return exc
    except Exception:  # a resolver's bug must not take the page down: it is a lookup that failed
        log.warning("DNS lookup of %s went wrong", name, exc_info=True)
        return LookupFailed("the lookup went wrong")


def look_up(dns_resolver, queries: set[tuple[str, str]], timeout: float) -> dict[tuple[str, str], Answer]:
    """Answer every ("txt" | "mx", name) query at once; one still unanswered a second after `timeout` has failed."""
    if not queries:
        return {}
    pool = ThreadPoolExecutor(max_workers=min(8, len(queries)), thread_name_prefix="dns-lookup")
    futures = {query: pool.submit(_ask, getattr(dns_resolver, query[0]), query[1]) for query in queries}
    wait(futures.values(), timeout=timeout + 1)
    pool.shutdown(wait=False, cancel_futures=True)
    late = LookupFailed(f"no answer within {timeout:g} s")
    return {query: future.result() if future.done() else late for query, future in futures.items()}


# What the records should say


class Verdict(enum.StrEnum):
    """How a published record compares with what it should be."""

    MATCHES = "matches"
    DIFFERS = "differs"
    MISSING = "missing"
    LOOKUP_FAILED = "lookup failed"
    NOT_SET_UP = "not set up"


@dataclass
class Check:
    """One thing receivers look up: where (`name`; empty for a conclusion drawn from other records), what it should
    say, what it says, the verdict and why, in words an organiser can act on."""

    title: str
    name: str
    expected: str
    verdict: Verdict
    why: str
    published: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    command: str = ""
    expected_literal: bool = True  # `expected` is a record's text (else words about it)
    anchor: str = ""  # the page's fragment for it, unique among the checks


@dataclass
class Section:
    """The checks about one domain (or about signing)."""

    heading: str
    checks: list[Check]


# Suffixes under which organisations register their names, as in co.uk: a few of the Public Suffix List's entries.
# Elsewhere a domain's organisational domain is taken to be its last two labels.
SECOND_LEVEL_SUFFIXES = frozenset(
    {
        "co.uk", "org.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk", "sch.uk", "ac.uk", "gov.uk", "nhs.uk", "police.uk",
        "com.au", "net.au", "org.au", "edu.au", "gov.au", "co.nz", "org.nz", "co.za", "org.za", "co.jp", "co.in",
        "com.br", "com.tr", "com.cn", "com.hk",
    }
)  # fmt: skip
ORGANISATIONAL_DOMAIN_RULE = (
    "An organisational domain is taken here to be the last two labels of a name (three under co.uk, org.uk and a "
    "few such suffixes): a simplification of the Public Suffix List that receivers use."
)
SPF_RECORD = re.compile(r"\s*v=spf1(\s|$)", re.IGNORECASE)
DMARC_RECORD = re.compile(r"\s*v\s*=\s*DMARC1\s*(;|$)", re.IGNORECASE)
POLICIES = {
    "none": "Policy: none. Receivers report mail that fails DMARC but deliver it as usual; enough for Gmail's and "
    "Yahoo's bulk-sender rules. Once the reports show all our mail passing, quarantine protects supporters better.",
    "quarantine": "Policy: quarantine. Receivers put mail that fails DMARC in spam: forged mail in our name rarely "
    "reaches an inbox.",
    "reject": "Policy: reject. Receivers refuse mail that fails DMARC: the strongest protection against forged mail "
    "in our name.",
}


def organisational_domain(domain: str) -> str:
    """The domain an organisation registered, by the rule in ORGANISATIONAL_DOMAIN_RULE."""
    labels = domain.lower().rstrip(".").split(".")
    keep = 3 if ".".join(labels[-2:]) in SECOND_LEVEL_SUFFIXES else 2
    return ".".join(labels[-keep:])


def tags(record: str) -> dict[str, str]:
    """A DKIM or DMARC record's tag=value pairs (names in lower case; the first of a repeated tag wins)."""
    found: dict[str, str] = {}
    for part in record.split(";"):
        name, equals, value = part.partition("=")
        if equals:
            found.setdefault(name.strip().lower(), value.strip())
    return found


def _failed(check: Check, answer: Answer | None) -> Check | None:
    """The check finished as "lookup failed" if the lookup failed, else None."""
    if not isinstance(answer, LookupFailed):
        return None
    check.verdict, check.why = Verdict.LOOKUP_FAILED, f"Could not look up {check.name}: {answer}. Try again later."
    return check


def _finish(check: Check, verdict: Verdict, why: str) -> Check:
    check.verdict, check.why = verdict, why
    return check


def check_dkim(signer: Signer | None, answer: Answer | None, from_domain: str) -> Check:
    """The public key at <selector>._domainkey.<domain> against the key uscmail signs with (their p= values)."""
    if signer is None:
        return Check(
            "DKIM signing key", "", "A DKIM key that uscmail signs every message with, published in the DNS",
            Verdict.NOT_SET_UP,
            "uscmail does not sign its mail: DKIM_DOMAIN, DKIM_SELECTOR and a key are not set. Gmail and Yahoo "
            "require bulk senders to sign. Make a key with this command on the server, set the settings it prints, "
            "restart uscmail, and publish the TXT record it prints.",
            command=f"flask --app uscmail mail dkim-key --domain {from_domain} --out /path/to/dkim-private.pem",
            expected_literal=False,
        )  # fmt: skip
    name = f"{signer.selector.decode()}._domainkey.{signer.domain.decode()}"
    expected = txt_record(signer.key)
    check = Check("DKIM signing key", name, expected, Verdict.MATCHES, "")
    if _failed(check, answer):
        return check
    check.published = list(answer)
    keys = [record for record in answer if "p" in tags(record)]
    if not answer:
        why = f"Nothing is published at {name}: receivers can't check our signature, so DKIM fails."
        return _finish(check, Verdict.MISSING, why + " Publish the expected value as a TXT record.")
    if not keys:
        return _finish(check, Verdict.DIFFERS, "The TXT record there holds no DKIM key (no p= tag).")
    if len(keys) > 1:
        return _finish(check, Verdict.DIFFERS, f"{len(keys)} DKIM keys are published there; publish only one.")
    published = tags(keys[0])
    key = re.sub(r"\s", "", published["p"])
    if "y" in published.get("t", "").replace(" ", "").lower().split(":"):
        check.notes.append("t=y: the domain says it is still testing DKIM. Remove t=y once this check matches.")
    if not key:
        return _finish(check, Verdict.DIFFERS, "The published key is empty (p=), which says the key was withdrawn.")
    if published.get("k", "rsa").lower() != "rsa":
        return _finish(check, Verdict.DIFFERS, f"The record says k={published['k']}; uscmail signs with an RSA key.")
    if key != tags(expected)["p"]:
        return _finish(
            check, Verdict.DIFFERS,
            "The published key (p=) is not the key uscmail signs with, so every signature fails. Publish the "
            "expected value (a new key was made, or an old record is still there), or use a new selector.",
        )  # fmt: skip
    return _finish(check, Verdict.MATCHES, "The published key is the one uscmail signs with.")


ENVELOPE_SPF = "Receivers check SPF against the envelope (bounce) domain; this is the record that counts."
FROM_SPF = (
    "Receivers check SPF against the envelope (bounce) domain, not this one; its own record still stops others "
    "from sending mail as it."
)


def check_spf(domain: str, answer: Answer, include: str, role: str) -> Check:
    """The domain's one SPF record: there is exactly one, it does not end in +all, and it includes SPF_INCLUDE.
    `role` is a note on what the record is for (ENVELOPE_SPF or FROM_SPF)."""
    expected = f"v=spf1 include:{include} ~all" if include else "v=spf1 …(your relay's servers)… ~all"
    check = Check(f"SPF of {domain}", domain, expected, Verdict.MATCHES, "", notes=[role])
    if _failed(check, answer):
        return check
    records = check.published = [record for record in answer if SPF_RECORD.match(record)]
    if not records:
        why = f"No SPF record at {domain}: receivers can't tell whether our relay may send mail for it."
        return _finish(check, Verdict.MISSING, why)
    if len(records) > 1:
        return _finish(
            check, Verdict.DIFFERS,
            f"{len(records)} SPF records are published: receivers treat that as an error (RFC 7208), as if there "
            "were none. Merge them into one record.",
        )  # fmt: skip
    terms = [term.lower() for term in records[0].split()[1:]]
    if any(term in ("all", "+all") for term in terms):
        return _finish(
            check, Verdict.DIFFERS,
            f"It ends in +all, which allows every server in the world to send mail as {domain}: SPF then proves "
            "nothing, and filters count it against us. End it with ~all or -all.",
        )  # fmt: skip
    if "?all" in terms:
        check.notes.insert(0, "?all says nothing about other servers; ~all or -all is stronger.")
    if include and not any(term.lstrip("+") == f"include:{include.lower()}" for term in terms):
        return _finish(
            check, Verdict.DIFFERS,
            f"It does not include include:{include} (the SPF_INCLUDE setting), so our relay's servers may not be "
            "allowed to send for it. If the relay is reached through another include or redirect, this page can't "
            "tell (it does not follow them).",
        )  # fmt: skip
    if include:
        return _finish(check, Verdict.MATCHES, f"One SPF record, and it includes {include}.")
    why = "One SPF record. Set SPF_INCLUDE to the include your relay documents to have this page look for it."
    return _finish(check, Verdict.MATCHES, why)


def check_dmarc(domain: str, answer: Answer, org_answer: Answer | None) -> tuple[Check, dict[str, str]]:
    """The DMARC record of a From domain, or else of its organisational domain (RFC 7489, 6.6.3), and its policy;
    with the record's tags, which say how alignment is judged."""
    expected = "v=DMARC1; p=none (or quarantine, or reject); rua=mailto:(an address for reports)"
    check = Check(f"DMARC policy of {domain}", f"_dmarc.{domain}", expected, Verdict.MATCHES, "")
    if _failed(check, answer):
        return check, {}
    records = [record for record in answer if DMARC_RECORD.match(record)]
    inherited = not records and org_answer is not None
    if inherited:
        check.name = f"_dmarc.{organisational_domain(domain)}"
        if _failed(check, org_answer):
            return check, {}
        records = [record for record in org_answer if DMARC_RECORD.match(record)]
    check.published = records
    if not records:
        why = (
            f"No DMARC record for {domain}: Gmail and Yahoo require one from anyone sending over 5,000 messages a "
            "day. Publish one with p=none to start."
        )
        return _finish(check, Verdict.MISSING, why), {}
    if len(records) > 1:
        return _finish(check, Verdict.DIFFERS, f"{len(records)} DMARC records: receivers ignore them all."), {}
    found = tags(records[0])
    subdomain_policy = inherited and "sp" in found
    policy = found.get("sp" if subdomain_policy else "p", "").lower()
    if inherited:
        whose = f"{organisational_domain(domain)}'s record applies to it" + (" (its sp= policy)" * subdomain_policy)
        check.notes.append(f"{domain} has no record of its own; {whose}.")
    if policy not in POLICIES:
        return _finish(check, Verdict.DIFFERS, "The record has no valid policy (p=none, quarantine or reject)."), found
    check.notes.append(POLICIES[policy])
    return _finish(check, Verdict.MATCHES, f"A DMARC record with the policy p={policy}."), found


def _aligned(domain: str | None, from_domain: str, strict: bool) -> bool:
    if domain is None:
        return False
    if strict:
        return domain == from_domain
    return organisational_domain(domain) == organisational_domain(from_domain)


def _alignment_words(what: str, domain: str | None, from_domain: str, strict: bool, aligned: bool) -> str:
    if domain is None:
        return f"{what}: mail is not signed, so DKIM can't align."
    if domain == from_domain:
        return f"{what}: {domain}, the From domain itself: aligned."
    if organisational_domain(domain) != organisational_domain(from_domain):
        return f"{what}: {domain}, another organisational domain than {from_domain}'s: not aligned."
    mode = "strict (the DMARC record asks for the same domain)" if strict else "relaxed (the default)"
    shared = f"{domain}, in the same organisational domain ({organisational_domain(domain)})"
    return f"{what}: {shared}; alignment is {mode}: {'aligned' if aligned else 'not aligned'}."


def check_alignment(from_domain: str, dkim_domain: str | None, bounce_domain: str, dmarc: dict[str, str]) -> Check:
    """Whether mail From this domain can pass DMARC: DKIM's d= or the envelope (bounce) domain must align with it."""
    strict_dkim, strict_spf = dmarc.get("adkim", "r").lower() == "s", dmarc.get("aspf", "r").lower() == "s"
    dkim = _aligned(dkim_domain, from_domain, strict_dkim)
    spf = _aligned(bounce_domain, from_domain, strict_spf)
    check = Check(
        f"DMARC alignment of {from_domain}", "",
        f"The DKIM signing domain (d=) or the envelope (bounce) domain in the organisational domain of {from_domain}",
        Verdict.MATCHES, "",
        published=[
            _alignment_words("DKIM signing domain (d=)", dkim_domain, from_domain, strict_dkim, dkim),
            _alignment_words("Envelope (bounce) domain, checked by SPF", bounce_domain, from_domain, strict_spf, spf),
        ],
        notes=[ORGANISATIONAL_DOMAIN_RULE],
        expected_literal=False,
    )  # fmt: skip
    if dkim and spf:
        return _finish(check, Verdict.MATCHES, "DKIM and SPF both align: mail passes DMARC if either check passes.")
    if dkim or spf:
        why = f"{'DKIM' if dkim else 'SPF'} aligns: enough for DMARC, as long as its record above matches."
        return _finish(check, Verdict.MATCHES, why)
    return _finish(
        check, Verdict.DIFFERS,
        f"Neither DKIM nor SPF aligns with {from_domain}, so our mail fails DMARC; with p=quarantine or p=reject it "
        f"goes to spam or is refused. Sign as {from_domain} (DKIM_DOMAIN) or send bounces to an address there.",
    )  # fmt: skip


def check_mx(domain: str, answer: Answer) -> Check:
    """The bounce domain must take mail, or bounces and complaints never reach uscmail."""
    check = Check(
        f"Mail servers (MX) of {domain}", domain,
        "At least one MX host that hands mail for the bounce address to uscmail's bounce receiver or mailbox",
        Verdict.MATCHES, "", expected_literal=False,
    )  # fmt: skip
    if _failed(check, answer):
        return check
    check.published = list(answer)
    if not answer:
        return _finish(check, Verdict.MISSING, f"{domain} has no MX record: bounces may never reach uscmail.")
    if answer == ["."]:
        return _finish(check, Verdict.DIFFERS, f"{domain} publishes a null MX: it takes no mail, so bounces are lost.")
    why = "The bounce domain has a mail server. This page can't tell whether it hands bounces to uscmail."
    return _finish(check, Verdict.MATCHES, why)


@dataclass(frozen=True)
class DnsSettings:
    """What the checks compare the DNS with: the signer, the envelope (bounce) domain, the From domains."""

    signer: Signer | None
    bounce_domain: str
    from_domains: list[str]
    spf_include: str

    @classmethod
    def from_app(cls, app) -> "DnsSettings":
        """The settings of a running app: its DKIM signer, BOUNCE_ADDRESS, the allowed senders, SPF_INCLUDE."""
        domains = dict.fromkeys(ascii_domain(sender).lower() for sender in allowed_senders())
        return cls(
            signer=app.extensions.get("dkim_signer"),
            bounce_domain=ascii_domain(app.config["BOUNCE_ADDRESS"]).lower(),
            from_domains=list(domains),
            spf_include=app.config.get("SPF_INCLUDE", "").strip(),
        )

    def queries(self) -> set[tuple[str, str]]:
        """Every lookup the checks need."""
        wanted = {("txt", self.bounce_domain), ("mx", self.bounce_domain)}
        if self.signer is not None:
            wanted.add(("txt", f"{self.signer.selector.decode()}._domainkey.{self.signer.domain.decode()}"))
        for domain in self.from_domains:
            wanted |= {("txt", domain), ("txt", f"_dmarc.{domain}"), ("txt", f"_dmarc.{organisational_domain(domain)}")}
        return wanted


def dns_sections(settings: DnsSettings, answers: dict[tuple[str, str], Answer]) -> list[Section]:
    """The checks, by domain: signing, the envelope (bounce) domain, then each From domain campaigns may use."""
    signer, bounce = settings.signer, settings.bounce_domain
    dkim_name = signer and f"{signer.selector.decode()}._domainkey.{signer.domain.decode()}"
    dkim_domain = signer and signer.domain.decode().lower()
    first_from = settings.from_domains[0] if settings.from_domains else bounce
    sections = [
        Section("Signing (DKIM)", [check_dkim(signer, answers.get(("txt", dkim_name)), first_from)]),
        Section(
            f"Envelope (bounce) domain: {bounce}",
            [
                check_spf(bounce, answers[("txt", bounce)], settings.spf_include, ENVELOPE_SPF),
                check_mx(bounce, answers[("mx", bounce)]),
            ],
        ),
    ]
    for domain in settings.from_domains:
        checks = []
        if domain != bounce:
            checks.append(check_spf(domain, answers[("txt", domain)], settings.spf_include, FROM_SPF))
        org = organisational_domain(domain)
        org_answer = answers[("txt", f"_dmarc.{org}")] if org != domain else None
        dmarc, found = check_dmarc(domain, answers[("txt", f"_dmarc.{domain}")], org_answer)
        checks += [dmarc, check_alignment(domain, dkim_domain, bounce, found)]
        sections.append(Section(f"From domain: {domain}", checks))
    for number, check in enumerate(check for section in sections for check in section.checks):
        check.anchor = f"check-{number + 1}"
    return sections


def dns_report(app) -> list[Section]:
    """Look everything up through the app's resolver and check it."""
    settings = DnsSettings.from_app(app)
    return dns_sections(settings, look_up(resolver(), settings.queries(), app.config["HEALTH_DNS_TIMEOUT"]))
