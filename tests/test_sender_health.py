"""The sender health page: DNS records against what they should say (through a resolver with canned answers, and the
real one against a small DNS server of our own), campaign bounce and complaint rates from real rows, the SpamAssassin
check run for real, and the set-aside mail viewer with its role checks, hostile content and beat-task clean-up;
then all of it in headless Chromium, checked with axe-core at phone and desktop widths in light and dark, with
screenshots saved under /tmp/uscmail-health-screenshots/ for a person to look at.
"""

import re
import shutil
import socket
import stat
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import expect

from tests.browser_support import VIEWPORTS, Inspector, heading, sign_in
from tests.conftest import form_fields, recorded_statements
from tests.factories import add_confirmed, make_campaign, make_organiser
from tests.waiting import wait_until
from uscmail.bounces import health, rates, setaside
from uscmail.bounces.health import LookupFailed, Verdict
from uscmail.bounces.models import BounceDecision, BounceEvent, BounceKind, BounceSource, SetAsideMail
from uscmail.bounces.rates import RateVerdict
from uscmail.campaigns.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from uscmail.mail.dkim import Signer, txt_record
from uscmail.models import Subscriber, utcnow
from uscmail.organisers.models import AuditEvent

PAGE = "/organisers/deliverability"
SET_ASIDE = f"{PAGE}/set-aside"
RELAY = "_spf.relay.example"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
SIGNER = Signer(b"uscuk.test", b"uscmail1", KEY)
DKIM_NAME = "uscmail1._domainkey.uscuk.test"
# What a domain set up as it should be publishes (the test settings: From and bounces at uscuk.test).
GOOD_DNS = {
    ("txt", DKIM_NAME): [txt_record(KEY)],
    ("txt", "uscuk.test"): ["google-site-verification=abc123", f"v=spf1 ip4:192.0.2.1 include:{RELAY} ~all"],
    ("mx", "uscuk.test"): ["mx1.uscuk.test", "mx2.uscuk.test"],
    ("txt", "_dmarc.uscuk.test"): ["v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@uscuk.test"],
}


class CannedResolver:
    """Answers from a dict of ("txt" | "mx", name) -> records, or an exception to raise; [] for anything else."""

    def __init__(self, answers: dict, delay: float = 0.0):
        self.answers, self.delay = answers, delay
        self.asked: list[tuple[str, str]] = []

    def _answer(self, kind: str, name: str) -> list[str]:
        self.asked.append((kind, name))
        time.sleep(self.delay)
        answer = self.answers.get((kind, name), [])
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    def txt(self, name: str) -> list[str]:
        return self._answer("txt", name)

    def mx(self, name: str) -> list[str]:
        return self._answer("mx", name)


@pytest.fixture
def dns_answers(app, monkeypatch):
    """dns_answers(answers, signer=SIGNER, senders=[]) -> the canned resolver the app now uses; SPF_INCLUDE is RELAY
    and campaigns may be sent only from the default sender (news@uscuk.test) unless `senders` adds others."""

    def install(answers: dict, signer: Signer | None = SIGNER, senders: list[str] = (), **resolver_options):
        resolver = CannedResolver(answers, **resolver_options)
        monkeypatch.setitem(app.extensions, health.RESOLVER_EXTENSION, resolver)
        monkeypatch.setitem(app.extensions, "dkim_signer", signer)
        monkeypatch.setitem(app.config, "SPF_INCLUDE", RELAY)
        monkeypatch.setitem(app.config, "MAIL_SENDERS", list(senders))
        return resolver

    return install


def verdicts(html: str) -> list[str]:
    """The page's verdicts on DNS records, in order (DKIM, bounce SPF, MX, then DMARC and alignment per domain)."""
    return re.findall(r'data-verdict="([^"]+)"', html)


def check_text(html: str, anchor: str) -> str:
    """The text of one check's card on the page."""
    start = html.index(f'id="{anchor}"')
    return html[start : html.index("</li>", start)]


# DNS records, through canned answers


def test_records_published_as_they_should_be_all_match(dns_answers, sign_in_as):
    resolver = dns_answers(GOOD_DNS)
    page = sign_in_as("viewer").get(PAGE)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert verdicts(html) == ["matches"] * 5
    assert "All 5 checks match." in html
    assert txt_record(KEY) in html  # the value to publish, shown whole
    assert f"One SPF record, and it includes {RELAY}." in html
    assert "Policy: quarantine." in html
    assert "DKIM and SPF both align" in html
    assert set(resolver.asked) >= {("txt", DKIM_NAME), ("txt", "uscuk.test"), ("mx", "uscuk.test")}


def test_a_dkim_key_other_than_ours_is_named_as_the_difference(dns_answers, sign_in_as):
    dns_answers({**GOOD_DNS, ("txt", DKIM_NAME): [txt_record(OTHER_KEY)]})
    html = sign_in_as("viewer").get(PAGE).get_data(as_text=True)
    assert verdicts(html)[0] == "differs"
    card = check_text(html, "check-1")
    assert "is not the key uscmail signs with" in card
    assert txt_record(OTHER_KEY) in card and txt_record(KEY) in card  # what is published, and what should be
    assert "1 of 5 checks need attention" in html


def test_a_dkim_key_published_in_pieces_with_spaces_still_matches():
    record = txt_record(KEY)
    prefix, key = record.split("p=")
    spaced = f"{prefix}  p = {key[:100]} {key[100:250]}\t{key[250:]} "
    assert health.check_dkim(SIGNER, [spaced], "uscuk.test").verdict is Verdict.MATCHES
    withdrawn = health.check_dkim(SIGNER, [f"{prefix}p="], "uscuk.test")
    assert withdrawn.verdict is Verdict.DIFFERS and "withdrawn" in withdrawn.why
    two = health.check_dkim(SIGNER, [record, txt_record(OTHER_KEY)], "uscuk.test")
    assert two.verdict is Verdict.DIFFERS and "2 DKIM keys" in two.why
    testing = health.check_dkim(SIGNER, [record + "; t=y"], "uscuk.test")
    assert testing.verdict is Verdict.MATCHES and "t=y" in testing.notes[0]


def test_missing_records_are_missing(dns_answers, sign_in_as):
    dns_answers({("txt", "uscuk.test"): ["google-site-verification=abc123"]})
    html = sign_in_as("viewer").get(PAGE).get_data(as_text=True)
    # DKIM, SPF, MX and DMARC are missing; alignment of the domains themselves still holds.
    assert verdicts(html) == ["missing", "missing", "missing", "missing", "matches"]
    assert "Nothing is published at uscmail1._domainkey.uscuk.test" in html
    assert "No SPF record at uscuk.test" in html
    assert "uscuk.test has no MX record" in html
    assert "No DMARC record for uscuk.test" in html
    assert "4 of 5 checks need attention" in html


def test_two_spf_records_and_plus_all_and_a_missing_include_differ(dns_answers, sign_in_as):
    two = [f"v=spf1 include:{RELAY} ~all", "v=spf1 ip4:192.0.2.1 -all"]
    dns_answers({**GOOD_DNS, ("txt", "uscuk.test"): two})
    html = sign_in_as("viewer").get(PAGE).get_data(as_text=True)
    assert verdicts(html)[1] == "differs"
    card = check_text(html, "check-2")
    assert "2 SPF records are published" in card and "Merge them into one record" in card
    assert all(record in card for record in two)

    plus_all = health.check_spf("uscuk.test", [f"v=spf1 include:{RELAY} +all"], RELAY, health.FROM_SPF)
    assert plus_all.verdict is Verdict.DIFFERS and "+all" in plus_all.why
    bare_all = health.check_spf("uscuk.test", ["v=spf1 include:x all"], "", health.FROM_SPF)
    assert bare_all.verdict is Verdict.DIFFERS  # no qualifier means +
    no_include = health.check_spf("uscuk.test", ["v=spf1 include:_spf.other.example -all"], RELAY, health.FROM_SPF)
    assert no_include.verdict is Verdict.DIFFERS and f"include:{RELAY}" in no_include.why
    neutral = health.check_spf("uscuk.test", [f"V=SPF1 +include:{RELAY.upper()} ?all"], RELAY, health.FROM_SPF)
    assert neutral.verdict is Verdict.MATCHES and "?all" in neutral.notes[0]


@pytest.mark.parametrize(
    "failure", [LookupFailed("no answer within 2 s"), RuntimeError("a resolver bug")], ids=["timeout", "bug"]
)
def test_a_failed_lookup_is_a_verdict_not_an_error(dns_answers, sign_in_as, failure):
    dns_answers({**GOOD_DNS, ("txt", "uscuk.test"): failure, ("txt", "_dmarc.uscuk.test"): failure})
    page = sign_in_as("viewer").get(PAGE)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert verdicts(html) == ["matches", "lookup failed", "matches", "lookup failed", "matches"]
    expected = "no answer within 2 s" if isinstance(failure, LookupFailed) else "the lookup went wrong"
    assert f"Could not look up uscuk.test: {expected}. Try again later." in html


def test_a_resolver_that_hangs_is_given_up_on(dns_answers, sign_in_as, app, monkeypatch):
    monkeypatch.setitem(app.config, "HEALTH_DNS_TIMEOUT", 0.2)
    dns_answers(GOOD_DNS, delay=5)
    browser = sign_in_as("viewer")
    started = time.monotonic()
    html = browser.get(PAGE).get_data(as_text=True)
    assert time.monotonic() - started < 3  # all lookups at once, and none waited for past the time limit
    assert set(verdicts(html)) == {"lookup failed", "matches"}  # alignment needs no lookup
    assert "no answer within 0.2 s" in html


def test_without_dkim_the_page_says_so_and_shows_the_command(dns_answers, sign_in_as):
    dns_answers(GOOD_DNS, signer=None)
    html = sign_in_as("viewer").get(PAGE).get_data(as_text=True)
    assert verdicts(html)[0] == "not set up"
    assert "uscmail does not sign its mail" in html
    assert "flask --app uscmail mail dkim-key --domain uscuk.test --out /path/to/dkim-private.pem" in html
    # Without DKIM only SPF can align.
    assert "mail is not signed, so DKIM can&#39;t align" in html and "SPF aligns" in html


def test_a_from_domain_that_nothing_aligns_with_fails_dmarc(dns_answers, sign_in_as):
    dns_answers(
        {**GOOD_DNS, ("txt", "example.org"): [f"v=spf1 include:{RELAY} -all"],
         ("txt", "_dmarc.example.org"): ["v=DMARC1; p=reject"]},
        senders=["USC-UK News <news@example.org>"],
    )  # fmt: skip
    html = sign_in_as("viewer").get(PAGE).get_data(as_text=True)
    assert "From domain: example.org" in html
    assert verdicts(html)[5:] == ["matches", "matches", "differs"]  # its SPF, its DMARC, its alignment
    assert "Neither DKIM nor SPF aligns with example.org" in html
    assert "Policy: reject." in html


def test_dmarc_falls_back_to_the_organisational_domain_and_alignment_follows_its_mode():
    assert health.organisational_domain("news.lists.uscuk.org.uk") == "uscuk.org.uk"
    assert health.organisational_domain("Mail.Example.COM.") == "example.com"
    inherited, found = health.check_dmarc("news.uscuk.org.uk", [], ["v=DMARC1; p=reject; sp=quarantine; adkim=s"])
    assert inherited.verdict is Verdict.MATCHES and inherited.name == "_dmarc.uscuk.org.uk"
    assert "Policy: quarantine." in inherited.notes[1] and "sp=" in inherited.notes[0]
    strict = health.check_alignment("news.uscuk.org.uk", "uscuk.org.uk", "bounce.other.example", found)
    assert strict.verdict is Verdict.DIFFERS and "strict" in strict.published[0]
    relaxed = health.check_alignment("news.uscuk.org.uk", "uscuk.org.uk", "bounce.other.example", {})
    assert relaxed.verdict is Verdict.MATCHES and "relaxed" in relaxed.published[0]
    two, _ = health.check_dmarc("uscuk.test", ["v=DMARC1; p=none", "v=DMARC1; p=reject"], None)
    assert two.verdict is Verdict.DIFFERS
    no_policy, _ = health.check_dmarc("uscuk.test", ["v=DMARC1; rua=mailto:r@uscuk.test"], None)
    assert no_policy.verdict is Verdict.DIFFERS and "no valid policy" in no_policy.why


def test_a_null_mx_means_bounces_are_lost():
    check = health.check_mx("uscuk.test", ["."])
    assert check.verdict is Verdict.DIFFERS and "null MX" in check.why


# The real resolver, against a DNS server of our own on 127.0.0.1


class TinyDnsServer:
    """Answers TXT and MX queries over UDP from a dict; NXDOMAIN for other names; never answers names in `silent`."""

    def __init__(self, records: dict, silent: set[str]):
        self.records, self.silent = records, silent
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, client = self.socket.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True)
            if name in self.silent:
                continue
            response = dns.message.make_response(query)
            kind = dns.rdatatype.to_text(question.rdtype).lower()
            if (kind, name) in self.records:
                response.answer.append(
                    dns.rrset.from_text_list(question.name, 300, "IN", kind.upper(), self.records[(kind, name)])
                )
            elif not any(known == name for _, known in self.records):
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.socket.sendto(response.to_wire(), client)

    def close(self) -> None:
        self.socket.close()


def test_the_dnspython_resolver_joins_strings_orders_mx_and_gives_up_in_time():
    key = txt_record(KEY)
    server = TinyDnsServer(
        {
            ("txt", DKIM_NAME): [" ".join(f'"{key[i : i + 255]}"' for i in range(0, len(key), 255))],
            ("txt", "uscuk.test"): ['"v=spf1 -all"', '"first" "second"'],
            ("mx", "uscuk.test"): ["20 mx2.uscuk.test.", "10 mx1.uscuk.test."],
        },
        silent={"slow.uscuk.test"},
    )
    try:
        resolver = health.DnsResolver(timeout=0.5, nameservers=["127.0.0.1"], port=server.port)
        assert resolver.txt(DKIM_NAME) == [key]  # a 2048-bit key's record comes in pieces of 255
        assert sorted(resolver.txt("uscuk.test")) == ["firstsecond", "v=spf1 -all"]
        assert resolver.mx("uscuk.test") == ["mx1.uscuk.test", "mx2.uscuk.test"]
        assert resolver.txt("_dmarc.uscuk.test") == []  # NXDOMAIN
        assert resolver.mx(DKIM_NAME) == []  # the name exists, without MX
        started = time.monotonic()
        with pytest.raises(LookupFailed, match=r"no answer within 0\.5 s"):
            resolver.txt("slow.uscuk.test")
        assert time.monotonic() - started < 2
        with pytest.raises(LookupFailed):
            resolver.txt("bad..name")
    finally:
        server.close()


# Bounce and complaint rates, from real rows


def deliveries(db, campaign: Campaign, subscriber_ids: list[int], failed: int = 0) -> None:
    """Delivery rows for the subscribers: the last `failed` refused, the others sent."""
    now = utcnow()
    rows = [
        {"campaign_id": campaign.id, "subscriber_id": subscriber_id, "attempts": 1,
         "status": DeliveryStatus.FAILED if index >= len(subscriber_ids) - failed else DeliveryStatus.SENT,
         "sent_at": now}
        for index, subscriber_id in enumerate(subscriber_ids)
    ]  # fmt: skip
    db.session.execute(sa.insert(Delivery), rows)


def bounce_events(db, campaign: Campaign, kind: BounceKind, subscriber_ids: list[int]) -> None:
    db.session.execute(
        sa.insert(BounceEvent),
        [{"subscriber_id": subscriber_id, "campaign_id": campaign.id, "kind": kind, "source": BounceSource.RECEIVER,
          "decision": BounceDecision.SUPPRESSED, "status": "", "diagnostic": "", "created_at": utcnow()}
         for subscriber_id in subscriber_ids],
    )  # fmt: skip


def started(db, campaign: Campaign, status: CampaignStatus, minutes_ago: int, **tallies) -> None:
    db.session.execute(
        sa.update(Campaign)
        .where(Campaign.id == campaign.id)
        .values(status=status, started_at=utcnow() - timedelta(minutes=minutes_ago), snapshot_done=True, **tallies)
    )


@pytest.fixture
def rated_campaigns(db):
    """Four campaigns to 1,000 people: a sent one over Gmail's aim, a sending one over its limit, a sent one with
    final tallies and nothing wrong, and a draft; returns them in that order."""
    add_confirmed(1000)
    people = list(db.session.scalars(sa.select(Subscriber.id).order_by(Subscriber.id)))
    watch, act, clean, draft = (make_campaign(subject) for subject in ("Watch", "Act", "Clean", "Draft"))
    # Watch: 990 sent and 10 refused; 10 hard bounces (the refused), 5 soft, one of whom also bounced hard, and 2
    # complaints: 15 of 1,000 bounced (1.5%), 2 of 990 complained (0.20%: over 0.1%).
    deliveries(db, watch, people, failed=10)
    bounce_events(db, watch, BounceKind.HARD, people[-10:])
    bounce_events(db, watch, BounceKind.SOFT, people[:5] + people[-1:])
    bounce_events(db, watch, BounceKind.COMPLAINT, people[100:102])
    started(db, watch, CampaignStatus.SENT, 60)
    # Act: still sending; 500 sent so far, 2 complaints (0.4%: over 0.3%) and 30 bounces (6%).
    deliveries(db, act, people[:500])
    bounce_events(db, act, BounceKind.COMPLAINT, people[200:202])
    bounce_events(db, act, BounceKind.HARD, people[300:330])
    started(db, act, CampaignStatus.SENDING, 5)
    # Clean: ended, so its final tallies count, not its (here absent) deliveries.
    started(db, clean, CampaignStatus.SENT, 600, sent_count=2000, failed_count=0)
    db.session.commit()
    return watch, act, clean, draft


def test_rates_come_from_deliveries_and_bounce_events(db, rated_campaigns):
    watch, act, clean, _ = rated_campaigns
    limits = rates.Thresholds(complaint_aim=0.1, complaint_limit=0.3, bounce_aim=2, bounce_limit=5)
    found = {row.campaign_id: row for row in rates.recent_campaign_rates(20, limits)}
    assert list(found) == [act.id, watch.id, clean.id]  # the draft never started; newest first
    row = found[watch.id]
    assert (row.sent, row.refused, row.bounced, row.complaints) == (990, 10, 15, 2)
    assert row.bounce_rate == pytest.approx(1.5) and row.complaint_rate == pytest.approx(200 / 990)
    assert row.verdict is RateVerdict.WATCH and "over the 0.1% Gmail asks" in row.advice
    row = found[act.id]
    assert (row.sent, row.bounced, row.complaints) == (500, 30, 2)
    assert row.verdict is RateVerdict.ACT_NOW and "at or over 0.3%" in row.advice and "at or over 5%" in row.advice
    row = found[clean.id]
    assert (row.sent, row.bounced, row.complaints, row.verdict) == (2000, 0, 0, RateVerdict.HEALTHY)


def test_a_limit_reached_is_a_limit_broken():
    limits = rates.Thresholds(complaint_aim=0.1, complaint_limit=0.3, bounce_aim=2, bounce_limit=5)
    assert rates.judge(1.99, 0.099, limits)[0] is RateVerdict.HEALTHY
    assert rates.judge(0.0, 0.1, limits)[0] is RateVerdict.WATCH
    assert rates.judge(2.0, 0.0, limits)[0] is RateVerdict.WATCH
    assert rates.judge(0.0, 0.3, limits)[0] is RateVerdict.ACT_NOW
    assert rates.judge(5.0, None, limits)[0] is RateVerdict.ACT_NOW  # all refused: nothing delivered to complain
    assert rates.judge(None, None, limits)[0] is RateVerdict.NOTHING_SENT


def test_rates_take_the_same_few_queries_however_many_campaigns(db, rated_campaigns):
    limits = rates.Thresholds(0.1, 0.3, 2, 5)
    with recorded_statements(db.engine) as statements:
        assert len(rates.recent_campaign_rates(1, limits)) == 1
        few = len(statements)
        statements.clear()
        assert len(rates.recent_campaign_rates(20, limits)) == 3
        assert len(statements) == few == 3


def test_the_page_shows_each_campaign_with_its_verdict(dns_answers, sign_in_as, rated_campaigns):
    dns_answers(GOOD_DNS)
    watch, act, clean, draft = rated_campaigns
    html = sign_in_as("viewer").get(PAGE).get_data(as_text=True)
    start = html.index('id="campaign-rates"')
    listed = html[start : html.index("</ul>", start)]
    rows = listed.split("data-campaign=")[1:]
    assert [row.split('"')[1] for row in rows] == [str(act.id), str(watch.id), str(clean.id)]
    assert "act now" in rows[0] and "30 people: 6.00%" in rows[0] and "2 people: 0.40%" in rows[0]
    assert "watch" in rows[1] and "and 10 refused" in rows[1] and "15 people: 1.50%" in rows[1]
    assert "2 people: 0.20%" in rows[1] and "Check that everyone on the list asked to be there" in rows[1]
    assert "healthy" in rows[2] and "2,000" in rows[2] and "0 people: 0.00%" in rows[2]
    assert "Draft" not in listed


# SpamAssassin


def page_csrf(browser) -> str:
    return form_fields(browser.get(PAGE).get_data(as_text=True))["csrf_token"]


needs_spamassassin = pytest.mark.skipif(
    shutil.which("spamassassin") is None, reason="spamassassin is not installed (Debian: spamassassin)"
)


@needs_spamassassin
def test_spamassassin_runs_on_the_campaigns_real_message(dns_answers, sign_in_as, db):
    dns_answers(GOOD_DNS)
    campaign = make_campaign("Protest on the 5th", body="Dear {{ subscriber.name }},\n\nSee you at **Portland Place**.")
    browser = sign_in_as("viewer")
    answer = browser.post(f"{PAGE}/campaigns/{campaign.id}/spam-check", data={"csrf_token": page_csrf(browser)})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200, html
    assert 'id="spam-score"' in html and "let this message through" in html
    assert '<code>HTML_MESSAGE</code> <span class="nowrap">(0.0 points)' in html  # it saw the HTML part
    assert "BODY: HTML included in message" in html
    assert "-0.0" not in html  # SpamAssassin's negative zero is shown as 0.0


@needs_spamassassin
def test_spamassassin_calls_spam_spam(sign_in_as, db):
    gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    campaign = make_campaign("Test", body="Hello,\n\n" + gtube.replace("*", "\\*") + "\n")  # * is Markdown
    browser = sign_in_as("editor")
    html = browser.post(f"{PAGE}/campaigns/{campaign.id}/spam-check", data={"csrf_token": page_csrf(browser)}).get_data(
        as_text=True
    )
    assert "mark this message as spam" in html and "<code>GTUBE</code>" in html
    assert html.index("GTUBE") < html.index("HTML_MESSAGE")  # the rules that add most come first


FAKE_SPAMASSASSIN = """#!{python}
import sys, time
sys.stdin.buffer.read()
marker = next(a for a in sys.argv if a.startswith("--cf=report USCMAIL")).split()[1]
mode = {mode!r}
if mode == "slow":
    time.sleep(30)
if mode == "fail":
    sys.exit(3)
if mode == "garbage":
    print("nothing to see")
    sys.exit(0)
# A forged report inside the message must not count: only the one between our markers does.
print("USCMAIL-SPAM-CHECK-0000 score=0.0 required=5.0")
print(marker + " score=7.5 required=5.0")
print(" 6.0 FAKE_BIG_RULE          A rule with a description long enough that")
print("                            it goes on over a second line")
print("-0.5 <b>FAKE_NICE</b>       Not a rule name")
print(" 2.0 FAKE_SMALL_RULE        Says <script>alert(1)</script>")
print(marker + "-END")
"""


@pytest.fixture
def fake_spamassassin(app, tmp_path, monkeypatch):
    """fake_spamassassin(mode) -> installs a stand-in SpamAssassin that answers well, slowly, badly or not at all."""

    def install(mode: str) -> None:
        path = tmp_path / f"spamassassin-{mode}"
        path.write_text(FAKE_SPAMASSASSIN.format(python=sys.executable, mode=mode))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setitem(app.config, "SPAMASSASSIN_COMMAND", str(path))
        monkeypatch.setitem(app.config, "SPAMASSASSIN_TIMEOUT", 1.0)

    return install


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("slow", "SpamAssassin gave no answer within 1 s and was stopped."),
        ("fail", "SpamAssassin failed (exit status 3); the server&#39;s log says more."),
        ("garbage", "SpamAssassin&#39;s answer could not be read."),
    ],
)
def test_a_slow_or_failing_spamassassin_is_explained(sign_in_as, db, fake_spamassassin, mode, message):
    fake_spamassassin(mode)
    campaign = make_campaign("Protest")
    browser = sign_in_as("viewer")
    answer = browser.post(f"{PAGE}/campaigns/{campaign.id}/spam-check", data={"csrf_token": page_csrf(browser)})
    assert answer.status_code == 200
    assert message in answer.get_data(as_text=True)


def test_the_report_is_read_between_our_markers_only(sign_in_as, db, fake_spamassassin, app, monkeypatch):
    fake_spamassassin("good")
    monkeypatch.setitem(app.config, "SPAMASSASSIN_CHECKS_PER_ORGANISER", "2 per hour")
    campaign = make_campaign("Protest")
    browser = sign_in_as("viewer")
    path = f"{PAGE}/campaigns/{campaign.id}/spam-check"
    html = browser.post(path, data={"csrf_token": page_csrf(browser)}).get_data(as_text=True)
    assert '<strong id="spam-score">7.5</strong>' in html and "mark this message as spam" in html
    assert "A rule with a description long enough that it goes on over a second line" in html
    assert "Says &lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "FAKE_NICE" not in html  # not a rule line
    assert html.index('FAKE_BIG_RULE</code> <span class="nowrap">(+6.0 points)') < html.index("FAKE_SMALL_RULE")
    assert browser.post(path, data={"csrf_token": page_csrf(browser)}).status_code == 200
    limited = browser.post(path, data={"csrf_token": page_csrf(browser)})
    assert limited.status_code == 429 and "as many as allowed" in limited.get_data(as_text=True)


def test_without_spamassassin_the_page_says_so(dns_answers, sign_in_as, db, app, monkeypatch):
    dns_answers(GOOD_DNS)
    monkeypatch.setitem(app.config, "SPAMASSASSIN_COMMAND", "/nonexistent/spamassassin")
    campaign = make_campaign("Protest")
    browser = sign_in_as("viewer")
    html = browser.get(PAGE).get_data(as_text=True)
    assert "SpamAssassin is not installed on this server" in html and "with SpamAssassin</button>" not in html
    answer = browser.post(f"{PAGE}/campaigns/{campaign.id}/spam-check", data={"csrf_token": page_csrf(browser)})
    assert answer.status_code == 200 and "SpamAssassin is not installed" in answer.get_data(as_text=True)


def test_the_spam_check_needs_the_csrf_token_and_a_campaign(sign_in_as, db, fake_spamassassin, client):
    fake_spamassassin("good")
    campaign = make_campaign("Protest")
    browser = sign_in_as("viewer")
    assert browser.post(f"{PAGE}/campaigns/{campaign.id}/spam-check").status_code == 400
    missing = browser.post(f"{PAGE}/campaigns/{campaign.id + 1}/spam-check", data={"csrf_token": page_csrf(browser)})
    assert missing.status_code == 404
    assert client.get(PAGE).status_code == 302  # signed out: to the sign-in page


# Set-aside mail: administrators only


def set_aside(db, content: bytes, reason: str = "no delivery status notification", days_ago: float = 0) -> int:
    mail = SetAsideMail(
        source=BounceSource.RECEIVER,
        reason=reason,
        size=len(content),
        content=content,
        created_at=utcnow() - timedelta(days=days_ago),
    )
    db.session.add(mail)
    db.session.commit()
    return mail.id


def test_an_administrator_lists_reads_and_deletes_set_aside_mail(dns_answers, sign_in_as, db):
    dns_answers(GOOD_DNS)
    content = b"From: MAILER-DAEMON\r\nSubject: Undelivered\r\n\r\nSorry.\r\n"
    mail_id = set_aside(db, content, reason="not a report")
    admin = sign_in_as("admin")
    health_page = admin.get(PAGE).get_data(as_text=True)
    assert "1 message reached the bounce address" in health_page and "Look at the set-aside mail" in health_page

    listing = admin.get(SET_ASIDE).get_data(as_text=True)
    assert "not a report" in listing and f"{len(content)} bytes" in listing and "receiver" in listing

    shown = admin.get(f"{SET_ASIDE}/{mail_id}")
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    assert "Subject: Undelivered\nSorry." not in shown.get_data(as_text=True)  # blank line kept
    assert "Subject: Undelivered\n\nSorry." in shown.get_data(as_text=True)

    confirm = admin.get(f"{SET_ASIDE}/{mail_id}/delete").get_data(as_text=True)
    assert "Delete this set-aside message?" in confirm
    assert admin.post(f"{SET_ASIDE}/{mail_id}/delete").status_code == 400  # no CSRF token: refused
    assert db.session.get(SetAsideMail, mail_id) is not None
    deleted = admin.post(f"{SET_ASIDE}/{mail_id}/delete", data=form_fields(confirm))
    assert deleted.status_code == 302 and deleted.headers["Location"].endswith(SET_ASIDE)
    db.session.rollback()
    assert db.session.get(SetAsideMail, mail_id) is None
    assert "The message is deleted." in admin.get(SET_ASIDE).get_data(as_text=True)
    assert admin.get(f"{SET_ASIDE}/{mail_id}").status_code == 404
    actions = db.session.execute(sa.select(AuditEvent.action, AuditEvent.object_id)).all()
    assert {("set_aside_mail.view", str(mail_id)), ("set_aside_mail.delete", str(mail_id))} <= set(actions)


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_viewers_and_editors_cannot_see_or_delete_set_aside_mail(dns_answers, sign_in_as, db, role):
    dns_answers(GOOD_DNS)
    mail_id = set_aside(db, b"Subject: a bounce naming someone@example.org\r\n\r\nx")
    browser = sign_in_as(role)
    health_page = browser.get(PAGE).get_data(as_text=True)
    assert "1 message reached the bounce address" in health_page
    assert "only administrators can read it" in health_page and SET_ASIDE not in health_page
    csrf = page_csrf(browser)
    for method, path in [
        ("GET", SET_ASIDE),
        ("GET", f"{SET_ASIDE}/{mail_id}"),
        ("GET", f"{SET_ASIDE}/{mail_id}/delete"),
        ("POST", f"{SET_ASIDE}/{mail_id}/delete"),
    ]:
        answer = browser.open(path, method=method, data={"csrf_token": csrf})
        assert answer.status_code == 403, (method, path)
        assert "someone@example.org" not in answer.get_data(as_text=True)
    db.session.rollback()
    assert db.session.get(SetAsideMail, mail_id) is not None


HOSTILE = (
    b"From: <script>alert('from')</script>\r\n"
    b"Subject: =?utf-8?q?hi?=\r\n\r\n"
    b"<html><body onload=alert(1)><script>alert(document.cookie)</script><img src=x onerror=alert(2)>"
    b"NUL:\x00 bytes:\xff\xfe\xc3 escape:\x1b[31m bidi:\xe2\x80\xaegnp.exe lone CR:\r end \xf0\x9f\x98\x80\r\n"
)


def test_hostile_set_aside_mail_is_shown_as_inert_escaped_text(sign_in_as, db):
    mail_id = set_aside(db, HOSTILE, reason="<b onmouseover=alert(3)>forged</b>")
    admin = sign_in_as("admin")
    for path in (SET_ASIDE, f"{SET_ASIDE}/{mail_id}", f"{SET_ASIDE}/{mail_id}/delete"):
        answer = admin.get(path)
        body = answer.get_data()
        assert answer.status_code == 200
        assert b"<script>alert" not in body and b"<b onmouseover" not in body and b"<img src=x" not in body
        assert b"\x00" not in body and b"\x1b" not in body and b"\xe2\x80\xae" not in body
        body.decode("utf-8")  # the page itself is valid UTF-8
    html = admin.get(f"{SET_ASIDE}/{mail_id}").get_data(as_text=True)
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in html
    assert "&lt;b onmouseover=alert(3)&gt;forged&lt;/b&gt;" in html
    assert r"NUL:\x00 bytes:\xff\xfe\xc3 escape:\x1b[31m bidi:\u202egnp.exe lone CR:\x0d end 😀" in html
    assert setaside.readable_text(HOSTILE).count("\n") == 4


def test_a_broken_page_link_is_a_400_not_a_500(sign_in_as, db):
    admin = sign_in_as("admin")
    for before in ("abc", "-1", "99999999999999999999"):
        assert admin.get(SET_ASIDE, query_string={"before": before}).status_code == 400
    assert admin.get(f"{SET_ASIDE}/2147483648").status_code == 404


def test_set_aside_mail_pages_fifty_at_a_time(sign_in_as, db):
    ids = [set_aside(db, b"x", reason=f"reason {n}") for n in range(53)]
    admin = sign_in_as("admin")
    first = admin.get(SET_ASIDE).get_data(as_text=True)
    assert "53 messages in all" in first and "reason 52<" in first and "reason 3<" in first
    assert "reason 2<" not in first and f'before={ids[3]}"' in first
    older = admin.get(SET_ASIDE, query_string={"before": ids[3]}).get_data(as_text=True)
    assert all(f"reason {n}<" in older for n in (2, 1, 0)) and "reason 3<" not in older


def test_old_set_aside_mail_is_deleted_by_the_beat_task_on_the_worker(db, app, worker):
    old = set_aside(db, b"old", days_ago=app.config["BOUNCE_SET_ASIDE_DAYS"] + 1)
    recent = set_aside(db, b"recent", days_ago=app.config["BOUNCE_SET_ASIDE_DAYS"] - 1)
    schedule = app.extensions["celery"].conf.beat_schedule["purge-set-aside-mail"]
    assert schedule["task"] == setaside.purge_set_aside_mail.name

    app.extensions["celery"].send_task(schedule["task"])

    def gone() -> bool:
        db.session.rollback()
        return db.session.get(SetAsideMail, old) is None

    wait_until(gone, 30, "the worker to delete the old set-aside mail")
    assert db.session.get(SetAsideMail, recent) is not None
    assert setaside.purge_expired() == 0  # a second run finds nothing more


# In a real browser: the page, the SpamAssassin button, the set-aside viewer; axe-core, phone and desktop, both schemes

SCREENSHOTS = Path(tempfile.gettempdir()) / "uscmail-health-screenshots"
ADMIN = "admin.browser@example.org"
# Something of every verdict, so every colour is checked for contrast: a DKIM key that matches, two SPF records, no
# MX, a lookup that failed, DMARC p=none, and a second From domain nothing aligns with.
MIXED_DNS = {
    **GOOD_DNS,
    ("txt", "uscuk.test"): [f"v=spf1 include:{RELAY} ~all", "v=spf1 ip4:192.0.2.1 -all"],
    ("mx", "uscuk.test"): [],
    ("txt", "_dmarc.uscuk.test"): ["v=DMARC1; p=none; rua=mailto:dmarc-reports@uscuk.test"],
    ("txt", "example.org"): LookupFailed("no answer within 2 s"),
    ("txt", "_dmarc.example.org"): ["v=DMARC1; p=reject"],
}


def sign_in_admin(page) -> None:
    """An administrator signs in with a password and the current TOTP code, as a person does."""
    sign_in(page, ADMIN, make_organiser(ADMIN, "admin", commit=True).totp_secret)


@pytest.mark.browser
@needs_spamassassin
@pytest.mark.parametrize(
    ("scheme", "viewport"), [("light", "desktop"), ("dark", "desktop"), ("light", "phone"), ("dark", "phone")]
)
def test_the_pages_in_a_browser(visit, db, dns_answers, rated_campaigns, scheme, viewport):
    dns_answers(MIXED_DNS, senders=["USC-UK News <news@example.org>"])
    mail_id = set_aside(db, HOSTILE, reason="not a delivery status notification")
    browser_visit = visit(viewport=VIEWPORTS[viewport], color_scheme=scheme)
    page = browser_visit.page
    inspect = Inspector(page, scheme, viewport, SCREENSHOTS, "health")
    sign_in_admin(page)

    page.get_by_role("navigation", name="Organisers").get_by_role("link", name="Sender health").click()
    inspect("page", "Sender health")
    expect(page.locator("#dns-summary")).to_contain_text("4 of 8 checks need attention")
    expect(page.locator("#campaign-rates")).to_contain_text("act now")

    page.get_by_role("button", name="Check “Watch” with SpamAssassin").click()
    expect(heading(page)).to_have_text("Spam check: “Watch”")
    expect(page.locator("#spam-rules")).to_contain_text("HTML_MESSAGE")
    expect(page.locator("#spam-verdict")).to_contain_text("let this message through")
    inspect("spam-check", "Spam check: “Watch”")

    page.get_by_role("link", name="Back to sender health").click()
    page.get_by_role("link", name="Look at the set-aside mail").click()
    inspect("set-aside", "Set-aside mail")
    page.locator("#set-aside-mail").get_by_role("link").first.click()
    expect(page.locator("#mail-source")).to_contain_text("<script>alert(document.cookie)</script>")
    assert page.evaluate("document.querySelectorAll('#mail-source *').length") == 0  # text, not markup
    inspect("set-aside-mail", "Set-aside message")
    page.get_by_role("link", name="Delete…").click()
    inspect("set-aside-delete", "Delete this set-aside message?")
    page.get_by_role("button", name="Delete for good").click()
    expect(page.get_by_role("status")).to_contain_text("The message is deleted.")
    db.session.rollback()
    assert db.session.get(SetAsideMail, mail_id) is None

    assert not inspect.problems, f"accessibility or layout problems ({scheme}, {viewport}):\n{inspect.report()}"
    assert browser_visit.foreign_requests() == []
    assert browser_visit.server_errors == []
