"""Subscriber search semantics: address prefixes, substrings of three or more characters, short prefixes, wildcards."""

import sqlalchemy as sa

from tests.conftest import BACKEND
from tests.factories import make_subscriber
from uscmail.subscribers.services import search_subscribers

PEOPLE = [
    ("amina@example.org", "Amina Yusuf"),
    ("abdul@example.org", "Abdulla Rahman"),
    ("mina_100%@example.org", "Mina Percent"),
    ("zed@aminahost.example", None),
]


def found(db, query, **kwargs):
    return sorted(s.email for s in search_subscribers(query, **kwargs).subscribers)


def add_people(db):
    for email, name in PEOPLE:
        make_subscriber(email, name)
    db.session.commit()


def test_query_with_at_sign_matches_address_prefixes_only(db):
    add_people(db)
    assert found(db, "amina@") == ["amina@example.org"]
    assert found(db, "mina@") == []


def test_three_or_more_characters_match_inside_addresses_and_names(db):
    add_people(db)
    assert found(db, "mina") == ["amina@example.org", "mina_100%@example.org", "zed@aminahost.example"]
    assert found(db, "RAHMAN") == ["abdul@example.org"]


def test_shorter_queries_match_the_beginning_of_an_address_or_name(db):
    add_people(db)
    assert found(db, "ab") == ["abdul@example.org"]
    assert found(db, "mi") == ["mina_100%@example.org"]


def test_like_wildcards_in_a_query_are_literal(db):
    add_people(db)
    assert found(db, "100%") == ["mina_100%@example.org"]
    assert found(db, "a_i") == []
    assert found(db, "%") == []


def test_keyset_pages_cover_everyone_once_newest_first(db):
    for i in range(7):
        make_subscriber(f"p{i}@example.org")
    db.session.commit()
    seen, after = [], None
    while True:
        page = search_subscribers(limit=3, after=after)
        seen += [s.id for s in page.subscribers]
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen)) == 7


def test_search_indexes_are_made_on_postgresql_only(db):
    if BACKEND == "postgres":
        query = "SELECT indexname FROM pg_indexes WHERE tablename = 'subscribers'"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'subscribers'"
    names = set(db.session.scalars(sa.text(query)))
    search_indexes = {
        "ix_search_subscribers_email_pattern",
        "ix_search_subscribers_name_pattern",
        "ix_search_subscribers_email_trgm",
        "ix_search_subscribers_name_trgm",
    }
    assert "uq_subscribers_email" in names or "sqlite_autoindex_subscribers_1" in names
    assert (search_indexes <= names) if BACKEND == "postgres" else not (search_indexes & names)
