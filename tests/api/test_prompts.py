"""Prompt guidance over HTTP: the seed's good prompts raise no warning, its common mistakes do
(with an explanation and an example), suggestions name what is missing, "auto" picks a model
and says why, and every submitted job records the same warnings and choice."""

from __future__ import annotations

import pytest

from shared.domain.prompts import SEED_MUSIC, SEED_SFX


def check(client, prompt: str, model: str = "auto") -> dict:
    resp = client.post("/v1/prompts/check", json={"prompt": prompt, "model": model})
    assert resp.status_code == 200, resp.text
    return resp.json()


def codes(body: dict) -> set[str]:
    return {w["code"] for w in body["warnings"]}


@pytest.mark.parametrize(
    "prompt, model",
    [(p, m) for p in SEED_MUSIC for m in ("music", "magnet", "auto")]
    + [(p, m) for p in SEED_SFX for m in ("audio", "auto")]
    + [
        ("Welcome to the arena, challenger. Choose your weapon.", "voice"),
        ('say "Level complete"', "auto"),
        ("dark ambient drone with deep cello and distant choir, slow tempo", "music"),
        ("glass bottle shattering on a concrete floor, close-up", "audio"),
    ],
)
def test_good_prompts_raise_no_warning(client, prompt, model):
    body = check(client, prompt, model)
    assert body["warnings"] == [], body


@pytest.mark.parametrize(
    "prompt, model, code, in_message",
    [
        ("nice music", "music", "too_vague", "nice music"),
        ("a cool sound", "audio", "too_vague", "cool sound"),
        ("something", "music", "too_vague", "something"),
        ("explosion", "audio", "too_vague", "explosion"),
        ("jazz fusion with 7 instruments trading solos", "music", "too_complex", "7 instruments"),
        ("piano, guitar, violin, trumpet, flute and drums playing together", "music", "too_complex", "instruments"),
        ("jazz, rock, metal and reggae mashup", "music", "too_complex", "genres"),
        ("calm aggressive", "music", "contradictory", "'calm' and 'aggressive'"),
        ("happy melancholic piano waltz", "music", "contradictory", "mood"),
        ("slow techno at 160 BPM", "music", "contradictory", "tempo"),
        ("quiet but deafening wind in a canyon", "audio", "contradictory", "loudness"),
        ("a picture of a guitar", "music", "non_audio", "picture"),
        ("a photo of a rainy street", "audio", "non_audio", "photo"),
        ("piano in the rain", "auto", "ambiguous_model", "picked"),
        ("footsteps on gravel, close-up", "music", "model_mismatch", "audio"),
        ("epic orchestral trailer music with brass", "audio", "model_mismatch", "music"),
        ('say "Game over"', "music", "model_mismatch", "voice"),
        ("a man saying hello to his friend", "voice", "describes_speech", "describes speech"),
    ],
)
def test_common_mistakes_warn(client, prompt, model, code, in_message):
    body = check(client, prompt, model)
    found = [w for w in body["warnings"] if w["code"] == code]
    assert found, body
    assert in_message.lower() in found[0]["message"].lower()
    assert found[0]["explanation"] and found[0]["example"]


def test_a_planned_change_is_not_a_contradiction(client):
    assert "contradictory" not in codes(check(client, "slow piano intro building to a fast orchestral climax", "music"))


def test_suggestions_name_what_is_missing(client):
    music = check(client, "sad piano", "music")
    assert {s["missing"] for s in music["suggestions"]} == {"genre", "tempo"}
    assert all(s["message"] and s["example"] for s in music["suggestions"])
    sfx = check(client, "door slam", "audio")
    assert {s["missing"] for s in sfx["suggestions"]} == {"material", "intensity", "environment"}
    assert check(client, "footsteps on wooden floor, slow walking pace", "audio")["suggestions"] == []
    assert check(client, "Hello there.", "voice")["suggestions"] == []


@pytest.mark.parametrize(
    "prompt, chosen, why",
    [
        ('"Welcome, traveler"', "voice", "quoted"),
        ("say welcome to the arena", "voice", "say"),
        ("footsteps on a wooden floor", "audio", "footstep"),
        ("huge explosion", "audio", "explosion"),
        ("heavy rain", "audio", "rain"),
        ("lofi hip hop beat", "music", "hip hop"),
        ("solo violin", "music", "violin"),
        ("something at 90 bpm", "music", "90 bpm"),
    ],
)
def test_auto_model_choice(client, prompt, chosen, why):
    body = check(client, prompt, "auto")
    assert body["model"]["chosen"] == chosen, body
    assert why in body["model"]["reason"].lower()
    assert "ambiguous_model" not in codes(body)


def test_a_named_model_has_no_choice(client):
    assert check(client, "heavy rain", "audio")["model"] is None


def test_jobs_record_the_choice_and_the_warnings(client, idle_queues):
    submitted = client.post("/v1/generations", json={"model": "auto", "prompt": 'say "Ready, player one"'})
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()
    assert job["model"] == "voice" and job["params"]["prompt"] == "Ready, player one"
    assert job["model_choice"]["chosen"] == "voice" and "quoted" in job["model_choice"]["reason"]
    assert job["model_choice"]["prompt"] == 'say "Ready, player one"'
    assert job["warnings"] == []

    vague = client.post("/v1/generations", json={"model": "music", "prompt": "nice music", "duration": 1}).json()
    assert [w["code"] for w in vague["warnings"]] == ["too_vague"] and vague["model_choice"] is None
    assert client.get(f"/v1/jobs/{vague['id']}").json()["warnings"] == vague["warnings"]  # stored with the job

    ambiguous = client.post(
        "/v1/generations", json={"model": "auto", "prompt": "piano in the rain", "duration": 1}
    ).json()
    assert ambiguous["model"] in ("music", "audio") and ambiguous["model_choice"]["chosen"] == ambiguous["model"]
    assert "ambiguous_model" in {w["code"] for w in ambiguous["warnings"]}
    named_voice = client.post(
        "/v1/generations",
        json={"model": "auto", "prompt": "Heavy rain is coming, take cover.", "voice": "en_US-joe-medium"},
    ).json()
    assert named_voice["model"] == "voice" and "voice was named" in named_voice["model_choice"]["reason"]
    assert named_voice["params"]["prompt"] == "Heavy rain is coming, take cover."
    for j in (job, vague, ambiguous, named_voice):  # nothing is left waiting for a later test's worker
        client.post(f"/v1/jobs/{j['id']}/cancel")


def test_check_validates_its_body(client):
    for body, field in [
        ({"prompt": "x", "model": "guitar"}, "model"),
        ({"model": "music"}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "rain", "extra": 1}, "extra"),
    ]:
        resp = client.post("/v1/prompts/check", json=body)
        assert resp.status_code == 422 and field in resp.json()["detail"], resp.text
