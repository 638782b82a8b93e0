"""The library over HTTP on real PostgreSQL: search ranking and prefix matching, every filter,
cursor pagination that stays stable while sounds arrive, visibility and ownership across
accounts, editing, categories with counts. Sounds are inserted as rows (with their job) so the
data is exactly known; tests/api/test_library_flow.py covers sounds made by a real worker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import make_key, start_api

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def account_of(key: str) -> uuid.UUID:
    from shared.domain.accounts import account_for_key
    from shared.infra.db import session_scope

    with session_scope() as s:
        return account_for_key(s, key).id


def insert_sound(
    key: str,
    prompt: str,
    *,
    model: str = "audio",
    title: str | None = None,
    tags: list[str] | None = None,
    visibility: str = "private",
    categories: list[dict] | None = None,
    duration: float = 4.0,
    loopable: bool = False,
    good: bool = True,
    created_at: datetime | None = None,
) -> str:
    """A succeeded job and its sound, as the worker would leave them (without stored objects)."""
    from shared.domain.models import Job, Sound
    from shared.infra.db import session_scope
    from shared.infra.storage import sound_keys

    account = account_of(key)
    sound_id = uuid.uuid4()
    audio_key, spectrogram_key = sound_keys(str(sound_id))
    with session_scope() as s:
        job = Job(
            account_id=account, model=model, status="succeeded", params={"prompt": prompt}, created_at=created_at or T0
        )
        s.add(job)
        s.flush()
        s.add(
            Sound(
                id=sound_id,
                job_id=job.id,
                account_id=account,
                model=model,
                prompt=prompt,
                duration=duration,
                sample_rate=16000,
                channels=1,
                loopable=loopable,
                quality_score=90 if good else 30,
                quality_is_good=good,
                quality_issues=[],
                audio_key=audio_key,
                spectrogram_key=spectrogram_key,
                title=title,
                tags=tags or [],
                visibility=visibility,
                categories=categories or [],
                created_at=created_at or T0,
            )
        )
        s.flush()
        job.result_sound_id = sound_id
    return str(sound_id)


def as_(api_url: str, key: str | None) -> httpx.Client:
    return httpx.Client(base_url=api_url, timeout=30, headers={"Authorization": f"Bearer {key}"} if key else {})


def ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [s["id"] for s in resp.json()["items"]]


@pytest.fixture(scope="module")
def keys(database):
    return {
        "alice": make_key("alice", "creator"),
        "bob": make_key("bob", "creator"),
        "admin": make_key("library admin", "creator", admin=True),
    }


@pytest.fixture(scope="module")
def alice(api_url, keys):
    with as_(api_url, keys["alice"]) as c:
        yield c


@pytest.fixture(scope="module")
def bob(api_url, keys):
    with as_(api_url, keys["bob"]) as c:
        yield c


def word() -> str:
    """A word no other sound in the test database has (search tests stay independent)."""
    return "zq" + uuid.uuid4().hex[:8]


# --- search ---------------------------------------------------------------------------------------


def test_search_ranks_title_matches_first_and_matches_prefixes(alice, keys):
    w = word()
    in_prompt = insert_sound(keys["alice"], f"{w} footsteps in deep snow", created_at=T0 + timedelta(minutes=3))
    in_title = insert_sound(
        keys["alice"], f"{w} slow walking on a path", title="Footsteps on gravel", created_at=T0 + timedelta(minutes=1)
    )
    elsewhere = insert_sound(keys["alice"], f"{w} wooden door creaking open", created_at=T0 + timedelta(minutes=2))

    ranked = ids(alice.get("/v1/sounds", params={"q": f"{w} footsteps", "sort": "relevance"}))
    assert ranked == [in_title, in_prompt]  # title (weight A) above prompt (weight B); the door does not match
    # prefixes: "foot" finds footsteps, "creak" finds creaking, stemming finds "walk" in "walking"
    assert set(ids(alice.get("/v1/sounds", params={"q": f"{w} foot"}))) == {in_title, in_prompt}
    assert ids(alice.get("/v1/sounds", params={"q": f"{w} creak"})) == [elsewhere]
    assert ids(alice.get("/v1/sounds", params={"q": f"{w} walk"})) == [in_title]
    # every word must match; without sort=relevance, newest first
    assert ids(alice.get("/v1/sounds", params={"q": f"{w} snow footsteps"})) == [in_prompt]
    assert ids(alice.get("/v1/sounds", params={"q": w})) == [in_prompt, elsewhere, in_title]
    assert ids(alice.get("/v1/sounds", params={"q": f"{w} nothinglikethis"})) == []


def test_more_matches_rank_higher(alice, keys):
    w = word()
    once = insert_sound(keys["alice"], f"{w} distant thunder over a quiet field with crickets and wind")
    twice = insert_sound(keys["alice"], f"{w} thunder storm, rolling thunder")
    assert ids(alice.get("/v1/sounds", params={"q": f"{w} thunder", "sort": "relevance"})) == [twice, once]


def test_bad_search_parameters_are_422_naming_the_parameter(alice, keys):
    for params, field in [
        ({"sort": "relevance"}, "sort"),
        ({"q": "!!!"}, "q"),
        ({"cursor": "garbage"}, "cursor"),
        ({"min_duration": 5, "max_duration": 2}, "min_duration"),
        ({"sort": "loudest"}, "sort"),
        ({"quality": "great"}, "quality"),
        ({"limit": 0}, "limit"),
        ({"kind": "noise"}, "kind"),
    ]:
        resp = alice.get("/v1/sounds", params=params)
        assert resp.status_code == 422, (params, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in resp.json()["errors"]}, (params, resp.json())
    # a cursor of another sort is refused rather than silently misread
    w = word()
    for i in range(3):
        insert_sound(keys["alice"], f"{w} tick {i}")
    cursor = alice.get("/v1/sounds", params={"q": w, "limit": 1}).json()["next_cursor"]
    resp = alice.get("/v1/sounds", params={"q": w, "limit": 1, "sort": "duration", "cursor": cursor})
    assert resp.status_code == 422 and "sort" in resp.json()["detail"]


# --- filters --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog_of_sounds(keys):
    """A small library with one distinguishing attribute per sound, all sharing one search word."""
    w = word()
    k = keys["alice"]
    rain = [{"name": "rain", "group": "weather", "score": 0.8}]
    made = {
        "music_loop": insert_sound(
            k,
            f"{w} calm piano loop",
            model="music",
            duration=10,
            loopable=True,
            created_at=T0 + timedelta(days=1),
            categories=[{"name": "piano", "group": "instrument", "score": 0.8}],
        ),
        "magnet": insert_sound(k, f"{w} synth arpeggio", model="magnet", duration=8, created_at=T0 + timedelta(days=2)),
        "rain": insert_sound(
            k,
            f"{w} rain on a roof",
            model="audio",
            duration=20,
            tags=["weather", "level-1"],
            categories=rain,
            created_at=T0 + timedelta(days=3),
        ),
        "rejected": insert_sound(
            k, f"{w} broken explosion", model="audio", duration=2, good=False, created_at=T0 + timedelta(days=4)
        ),
        "speech": insert_sound(
            k, f"{w} welcome traveler", model="voice", duration=1.5, tags=["level-1"], created_at=T0 + timedelta(days=5)
        ),
    }
    return w, made


@pytest.mark.parametrize(
    "params, expected",
    [
        ({"model": "music"}, {"music_loop"}),
        ({"model": "magnet"}, {"magnet"}),
        ({"kind": "music"}, {"music_loop", "magnet"}),
        ({"kind": "sfx"}, {"rain", "rejected"}),
        ({"kind": "speech"}, {"speech"}),
        ({"category": "rain"}, {"rain"}),
        ({"category": "Piano"}, {"music_loop"}),
        ({"tag": "level-1"}, {"rain", "speech"}),
        ({"tag": ["level-1", "weather"]}, {"rain"}),
        ({"min_duration": 8}, {"music_loop", "magnet", "rain"}),
        ({"max_duration": 2}, {"rejected", "speech"}),
        ({"min_duration": 2, "max_duration": 10}, {"music_loop", "magnet", "rejected"}),
        ({"loopable": "true"}, {"music_loop"}),
        ({"loopable": "false"}, {"magnet", "rain", "rejected", "speech"}),
        ({"quality": "accepted_anyway"}, {"rejected"}),
        ({"quality": "passed"}, {"music_loop", "magnet", "rain", "speech"}),
        ({"created_after": (T0 + timedelta(days=3)).isoformat()}, {"rain", "rejected", "speech"}),
        ({"created_before": (T0 + timedelta(days=3)).isoformat()}, {"music_loop", "magnet"}),
        ({"created_after": "2026-06-03T00:00:00", "created_before": "2026-06-05T00:00:00"}, {"magnet", "rain"}),
        ({"kind": "sfx", "tag": "level-1", "loopable": "false"}, {"rain"}),
    ],
)
def test_filters(alice, catalog_of_sounds, params, expected):
    w, made = catalog_of_sounds
    name_of = {v: k for k, v in made.items()}
    got = ids(alice.get("/v1/sounds", params={"q": w, "limit": 100, **params}))
    assert {name_of[i] for i in got} == expected


def test_sort_by_duration_and_recent(alice, catalog_of_sounds):
    w, made = catalog_of_sounds
    name_of = {v: k for k, v in made.items()}
    shortest = [name_of[i] for i in ids(alice.get("/v1/sounds", params={"q": w, "sort": "duration"}))]
    assert shortest == ["speech", "rejected", "magnet", "music_loop", "rain"]
    longest = [name_of[i] for i in ids(alice.get("/v1/sounds", params={"q": w, "sort": "duration", "order": "desc"}))]
    assert longest == shortest[::-1]
    newest = [name_of[i] for i in ids(alice.get("/v1/sounds", params={"q": w}))]
    assert newest == ["speech", "rejected", "rain", "magnet", "music_loop"]
    oldest = [name_of[i] for i in ids(alice.get("/v1/sounds", params={"q": w, "order": "asc"}))]
    assert oldest == newest[::-1]


# --- pagination -----------------------------------------------------------------------------------


def walk(client, params: dict, limit: int, between=None) -> list[str]:
    seen, cursor, pages = [], None, 0
    while True:
        page = client.get("/v1/sounds", params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= limit
        seen += [s["id"] for s in body["items"]]
        cursor, pages = body["next_cursor"], pages + 1
        assert pages <= 50, "the cursor never reached the last page (a page repeats)"
        if between:
            between(pages)
        if cursor is None:
            return seen


@pytest.mark.parametrize("sort", ["recent", "duration", "relevance"])
def test_pagination_is_stable_with_ties_and_new_sounds(alice, keys, sort):
    w = word()
    # 23 sounds: groups of equal creation time and equal duration, so ties need the id to break them
    made = [
        insert_sound(
            keys["alice"],
            f"{w} {'click ' * (1 + i % 3)}",
            duration=float(1 + i % 4),
            created_at=T0 + timedelta(seconds=i // 5),
        )
        for i in range(23)
    ]
    params = {"q": w, "sort": sort}
    everything = ids(alice.get("/v1/sounds", params={**params, "limit": 100}))
    assert sorted(everything) == sorted(made)

    arrived: list[str] = []

    def new_sound(page: int) -> None:  # a sound arrives after every page, newer and matching the search
        arrived.append(
            insert_sound(keys["alice"], f"{w} click click", duration=2.5, created_at=T0 + timedelta(hours=1))
        )

    paged = walk(alice, params, 5, between=new_sound)
    assert len(paged) == len(set(paged)), "a sound appeared on two pages"
    assert [i for i in paged if i in made] == everything, "pages skipped or reordered existing sounds"
    if sort == "recent":
        assert not set(paged) & set(arrived)  # newer than the first page: never in a later one


# --- visibility and ownership ---------------------------------------------------------------------


def test_visibility_across_accounts(api_url, alice, bob, keys):
    w = word()
    private = insert_sound(keys["alice"], f"{w} secret private rain")
    unlisted = insert_sound(keys["alice"], f"{w} unlisted rain", visibility="unlisted")
    public = insert_sound(keys["alice"], f"{w} public rain", visibility="public")

    def status(key, sound_id):
        with as_(api_url, key) as c:
            return c.get(f"/v1/sounds/{sound_id}").status_code

    assert [status(keys["bob"], s) for s in (private, unlisted, public)] == [404, 200, 200]
    assert [status(None, s) for s in (private, unlisted, public)] == [401, 200, 200]
    assert [status(keys["admin"], s) for s in (private, unlisted, public)] == [200, 200, 200]
    assert status(None, uuid.uuid4()) == 401 and status(keys["bob"], uuid.uuid4()) == 404
    # the audio and spectrogram of a private sound: as absent as the sound
    assert bob.get(f"/v1/sounds/{private}/audio").status_code == 404
    assert bob.get(f"/v1/sounds/{private}/spectrogram.png").status_code == 404

    # listings: own sounds in /v1/sounds, public ones of everyone in /v1/library (with or without a key)
    assert set(ids(alice.get("/v1/sounds", params={"q": w}))) == {private, unlisted, public}
    assert ids(bob.get("/v1/sounds", params={"q": w})) == []
    assert ids(bob.get("/v1/library", params={"q": w})) == [public]
    with as_(api_url, None) as anon:
        assert ids(anon.get("/v1/library", params={"q": f"{w} rain"})) == [public]
        assert anon.get("/v1/sounds").status_code == 401
    with as_(api_url, keys["admin"]) as admin:
        assert set(ids(admin.get("/v1/sounds", params={"q": w}))) == {private, unlisted, public}
    body = bob.get(f"/v1/sounds/{public}").json()
    assert body["owned"] is False and body["visibility"] == "public"
    assert alice.get(f"/v1/sounds/{public}").json()["owned"] is True

    # another account may not change or delete it: 404 when they cannot see it, 403 when they can
    assert bob.patch(f"/v1/sounds/{private}", json={"title": "mine now"}).status_code == 404
    assert bob.patch(f"/v1/sounds/{public}", json={"title": "mine now"}).status_code == 403
    assert bob.delete(f"/v1/sounds/{private}").status_code == 404
    assert bob.delete(f"/v1/sounds/{unlisted}").status_code == 403
    with as_(api_url, None) as anon:
        assert anon.patch(f"/v1/sounds/{public}", json={"title": "x"}).status_code == 401
        assert anon.delete(f"/v1/sounds/{public}").status_code == 401

    # making it private again hides it from everyone else at once
    assert alice.patch(f"/v1/sounds/{public}", json={"visibility": "private"}).json()["visibility"] == "private"
    assert status(keys["bob"], public) == 404
    assert ids(bob.get("/v1/library", params={"q": w})) == []


def test_library_can_require_a_key(database, keys):
    w = word()
    unlisted = insert_sound(keys["alice"], f"{w} unlisted wind", visibility="unlisted")
    insert_sound(keys["alice"], f"{w} public wind", visibility="public")
    url, proc = start_api({"SOUNDBOX_LIBRARY_REQUIRES_KEY": "true"})
    try:
        with as_(url, None) as anon:
            assert anon.get("/v1/library").status_code == 401
            assert anon.get(f"/v1/sounds/{unlisted}").status_code == 401
        with as_(url, keys["bob"]) as bob:
            assert len(ids(bob.get("/v1/library", params={"q": w}))) == 1
            assert bob.get(f"/v1/sounds/{unlisted}").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


# --- editing and categories -----------------------------------------------------------------------


def test_patch_title_tags_visibility(alice, keys):
    w = word()
    sound = insert_sound(keys["alice"], f"{w} metal clang")
    body = alice.patch(
        f"/v1/sounds/{sound}", json={"title": "  Anvil hit  ", "tags": ["Impact", "impact", " Level 2 "]}
    )
    assert body.status_code == 200, body.text
    got = body.json()
    assert got["title"] == "Anvil hit" and got["tags"] == ["impact", "level 2"] and got["visibility"] == "private"
    assert ids(alice.get("/v1/sounds", params={"q": f"{w} anvil"})) == [sound]  # titles are searched
    assert ids(alice.get("/v1/sounds", params={"tag": "level 2", "q": w})) == [sound]
    got = alice.patch(f"/v1/sounds/{sound}", json={"visibility": "unlisted"}).json()
    assert got["title"] == "Anvil hit" and got["visibility"] == "unlisted"  # fields left out stay
    got = alice.patch(f"/v1/sounds/{sound}", json={"title": None, "tags": []}).json()
    assert got["title"] is None and got["tags"] == []
    for bad, field in [
        ({"visibility": "secret"}, "visibility"),
        ({"tags": ["x" * 65]}, "tags"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"title": "x" * 201}, "title"),
        ({"owner": "bob"}, "owner"),
    ]:
        resp = alice.patch(f"/v1/sounds/{sound}", json=bad)
        assert resp.status_code == 422 and field in resp.json()["detail"], (bad, resp.text)


def test_sound_body_has_the_library_fields(alice, keys):
    sound = insert_sound(
        keys["alice"],
        "forest ambience with birds",
        model="audio",
        title="Forest",
        tags=["nature"],
        categories=[{"name": "birds", "group": "animals", "score": 0.8}],
        loopable=True,
    )
    body = alice.get(f"/v1/sounds/{sound}").json()
    assert body["kind"] == "sfx" and body["model"] == "audio" and body["prompt"] == "forest ambience with birds"
    assert body["title"] == "Forest" and body["tags"] == ["nature"] and body["visibility"] == "private"
    assert body["categories"] == [{"name": "birds", "group": "animals", "score": 0.8, "source": None, "value": None}]
    assert body["loopable"] is True and body["duration"] == 4.0 and body["created_at"]


def test_categories_with_counts_for_the_caller(api_url, keys):
    key = make_key("categories owner", "creator")
    rain = {"name": "rain", "group": "weather", "score": 0.8}
    piano = {"name": "piano", "group": "instrument", "score": 0.6}
    insert_sound(key, "rain one", categories=[rain])
    insert_sound(key, "rain two", categories=[rain, {"name": "thunder", "group": "weather", "score": 0.5}])
    insert_sound(key, "piano", model="music", categories=[piano], visibility="public")
    insert_sound(keys["bob"], "bob's rain", categories=[rain])
    with as_(api_url, key) as c:
        got = c.get("/v1/categories").json()["categories"]
        assert got == [
            {"name": "rain", "group": "weather", "count": 2},
            {"name": "piano", "group": "instrument", "count": 1},
            {"name": "thunder", "group": "weather", "count": 1},
        ]
        library = {
            x["name"]: x["count"] for x in c.get("/v1/categories", params={"scope": "library"}).json()["categories"]
        }
        assert library["piano"] >= 1 and "thunder" not in library
    with as_(api_url, None) as anon:
        assert anon.get("/v1/categories").status_code == 401
