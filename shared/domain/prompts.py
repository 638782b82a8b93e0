"""Prompt guidance: the seed's "Prompt Tips" as checks. Warnings for its common mistakes (too vague,
too complex, contradictory, non-audio) and a few of our own (ambiguous or mismatched model, a
voice prompt that describes speech instead of being the words), suggestions of what a good prompt
holds and this one lacks, and the ``"auto"`` model choice. Warnings never block a generation:
they are returned by POST /v1/prompts/check and recorded on every job.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from shared.domain.categories import BPM, MUSIC, SFX, Category, matches

KIND_OF_MODEL = {"music": "music", "magnet": "music", "audio": "sfx", "voice": "speech"}

# The seed's own good prompts (docs: seed "Prompt Tips" and example prompts); examples below use them.
SEED_MUSIC = (
    "upbeat electronic dance music with synth leads, 128 BPM",
    "calm acoustic guitar fingerpicking, folk style",
    "epic orchestral trailer music with brass and strings",
    "melancholic piano solo with soft reverb, slow tempo",
    "energetic 80s synthwave with pulsing bassline and arpeggios",
    "gentle acoustic folk with fingerpicked guitar and soft vocals",
)
SEED_SFX = (
    "forest ambience with birds chirping and wind through trees",
    "explosion with debris and echoing aftermath",
    "footsteps on wooden floor, slow walking pace",
    "heavy rain on a tin roof with occasional thunder",
    "sci-fi laser weapon firing, multiple shots",
    "wooden door creaking open slowly",
)

_WORDS = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
STOP = set(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "and",
        "or",
        "but",
        "from",
        "into",
        "onto",
        "over",
        "under",
        "through",
        "while",
        "as",
        "is",
        "are",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "some",
        "any",
        "very",
        "really",
        "quite",
        "just",
        "so",
        "too",
        "also",
        "like",
        "kind",
        "sort",
        "type",
        "please",
        "make",
        "create",
        "generate",
        "give",
        "me",
        "i",
        "want",
        "need",
        "my",
        "our",
        "your",
    ]
)
VAGUE = set(
    [
        "nice",
        "good",
        "cool",
        "great",
        "awesome",
        "beautiful",
        "pretty",
        "amazing",
        "interesting",
        "random",
        "something",
        "stuff",
        "thing",
        "things",
        "music",
        "song",
        "songs",
        "audio",
        "sound",
        "sounds",
        "track",
        "tracks",
        "noise",
        "noises",
        "effect",
        "effects",
        "sfx",
        "tune",
        "tunes",
        "piece",
        "clip",
        "sample",
        "best",
        "better",
        "fun",
    ]
)
MUSIC_WORDS = (
    "music",
    "song",
    "melody",
    "melodic",
    "tune",
    "track",
    "tempo",
    "chord*",
    "harmony",
    "bpm",
    "beat",
    "loop",
    "instrumental",
    "soundtrack",
    "anthem",
    "jingle",
)
SFX_WORDS = ("sfx", "sound effect*", "foley", "ambience", "ambient sound*", "noise")
MATERIALS = (
    "wood*",
    "metal*",
    "glass",
    "stone",
    "concrete",
    "gravel",
    "grass",
    "dirt",
    "mud",
    "sand",
    "snow",
    "ice",
    "tin",
    "steel",
    "iron",
    "plastic",
    "rubber",
    "leather",
    "cloth",
    "fabric",
    "paper",
    "cardboard",
    "carpet",
    "tile*",
    "marble",
    "brick",
    "water",
    "leaves",
    "floor*",
    "roof",
    "debris",
)
INTENSITY = (
    "loud",
    "soft",
    "quiet",
    "distant",
    "far away",
    "close-up",
    "heavy",
    "light",
    "gentle",
    "violent",
    "faint",
    "muffled",
    "powerful",
    "strong",
    "massive",
    "huge",
    "tiny",
    "small",
    "big",
    "subtle",
    "sharp",
    "slow*",
    "fast",
    "rapid",
    "intense",
    "occasional",
    "multiple",
    "single",
    "echo*",
    "booming",
    "deep",
    "low",
    "high-pitched",
    "crisp",
)
ENVIRONMENT = (
    "indoor*",
    "outdoor*",
    "forest",
    "urban",
    "city",
    "street",
    "room",
    "hall*",
    "cave*",
    "underwater",
    "space",
    "tunnel",
    "kitchen",
    "office",
    "field",
    "beach",
    "jungle",
    "desert",
    "mountain*",
    "roof",
    "house",
    "warehouse",
    "stadium",
    "church",
    "cathedral",
    "arena",
    "dungeon",
    "castle",
    "village",
    "garage",
    "basement",
    "alley",
    "park",
    "trees",
    "floor",
    "ship",
    "station",
    "reverb*",
)
VISUAL = re.compile(
    r"(?<![\w-])(picture|photo|photograph|image|painting|drawing|illustration|sketch|portrait|"
    r"wallpaper|logo|screenshot|pixel art|3d model|video of|looks like|looking at|colou?rful|"
    r"in the style of a painting)(?![\w-])",
    re.IGNORECASE,
)
NOT_VISUAL = re.compile(r"motion picture|picture this|sound ?image", re.IGNORECASE)
COUNT = re.compile(
    r"\b(\d+|five|six|seven|eight|nine|ten|eleven|twelve)\s+(?:different\s+)?"
    r"(instruments|layers|sounds|parts|voices|elements|genres|styles|melodies|tracks)\b",
    re.IGNORECASE,
)
NUMBERS = {"five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}
TRANSITION = re.compile(
    r"\b(then|into|to|until|before|after|building|builds|becoming|becomes|turns?|turning|"
    r"followed|transition\w*|fading|fades|shifting|shifts|later)\b",
    re.IGNORECASE,
)
OPPOSITES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "mood",
        ("calm", "peaceful", "relaxing", "relaxed", "serene", "tranquil", "soothing", "gentle", "mellow", "chill"),
        ("aggressive", "angry", "furious", "violent", "brutal", "frantic", "chaotic", "harsh", "energetic", "hyper"),
    ),
    (
        "mood",
        ("happy", "cheerful", "joyful", "upbeat", "uplifting"),
        ("sad", "melancholic", "melancholy", "sorrowful", "mournful", "depressing", "gloomy"),
    ),
    ("tempo", ("slow", "slowly", "downtempo", "sluggish"), ("fast", "quick", "rapid", "uptempo", "up-tempo", "speedy")),
    (
        "loudness",
        ("quiet", "faint", "whisper", "whispering", "hushed", "muted"),
        ("loud", "deafening", "blaring", "booming", "thunderous"),
    ),
    ("distance", ("distant", "far away", "faraway"), ("close-up", "up close", "nearby")),
)
QUOTED = re.compile(r"[\"“”«»]([^\"“”«»]{2,})[\"“”«»]")
SAY = re.compile(
    r"^(?:please\s+)?(?:say|speak|read(?:\s+(?:out|aloud))?|announce|narrate|pronounce|tell me)\b[\s:,]+"
    r"(.+)$|\b(?:saying|says|say)[\s:,]+(.+)$",
    re.IGNORECASE | re.DOTALL,
)
DESCRIBES_SPEECH = re.compile(
    r"^(?:an?|the)\s+(?:\w+\s+){0,3}(?:voice|man|woman|narrator|person|announcer|child|"
    r"girl|boy|robot)\s+(?:saying|says|speaking|reading|talking|telling|announcing|"
    r"whispering|shouting)\b",
    re.IGNORECASE,
)

EXAMPLES = {
    "too_vague": SEED_MUSIC[3],
    "too_complex": SEED_MUSIC[1],
    "contradictory": SEED_MUSIC[3],
    "non_audio": SEED_MUSIC[1],
}


@dataclass
class Check:
    warnings: list[dict[str, Any]] = field(default_factory=list)
    suggestions: list[dict[str, Any]] = field(default_factory=list)
    model: dict[str, Any] | None = None  # for "auto": {"chosen", "reason", ...}

    def warn(self, code: str, message: str, explanation: str, example: str | None = None) -> None:
        self.warnings.append({"code": code, "message": message, "explanation": explanation, "example": example})


def words(prompt: str) -> list[str]:
    return _WORDS.findall(prompt.lower())


def _any(prompt: str, keywords: tuple[str, ...]) -> list[str]:
    return matches(prompt, Category("", "", keywords))


def _hits(prompt: str, table: tuple[Category, ...], group: str | None = None) -> dict[str, list[str]]:
    """Category name -> keywords of it found in the prompt."""
    return {c.name: h for c in table if (group is None or c.group == group) and (h := matches(prompt, c))}


# --- the auto model -----------------------------------------------------------------------------


def spoken_text(prompt: str) -> str | None:
    """The words to speak when the prompt quotes them or asks to say something; else None."""
    quoted = [q.strip() for q in QUOTED.findall(prompt) if q.strip()]
    if quoted:
        return " ".join(quoted)
    m = SAY.search(prompt.strip())
    if m:
        text = (m.group(1) or m.group(2) or "").strip().strip("\"'“”")
        return text or None
    return None


def evidence(prompt: str) -> tuple[list[str], list[str]]:
    """What points to music (genre, instrument, BPM, musical words) and to sound effects."""
    music = [w for hits in _hits(prompt, MUSIC, "genre").values() for w in hits]
    music += [w for hits in _hits(prompt, MUSIC, "instrument").values() for w in hits]
    music += _any(prompt, MUSIC_WORDS) + [m.group(0) for m in BPM.finditer(prompt)]
    sfx = [w for hits in _hits(prompt, SFX).values() for w in hits] + _any(prompt, SFX_WORDS)
    music = sorted(set(music))
    sfx = sorted(set(sfx) - set(music))
    return music, sfx


def choose_model(prompt: str) -> dict[str, Any]:
    """``{"chosen", "reason", "ambiguous", "evidence"}`` (and ``"text"`` for voice: the words to speak)."""
    music, sfx = evidence(prompt)
    text = spoken_text(prompt)
    ev = {"music": music, "sfx": sfx}
    if text is not None:
        how = "quoted text" if QUOTED.search(prompt) else "a request to say something"
        ambiguous = len(music) + len(sfx) >= 2
        reason = f"voice: {how} to speak ({text[:60]!r})"
        if ambiguous:
            reason += f"; the prompt also describes {'music' if len(music) >= len(sfx) else 'sound effects'}"
        return {"chosen": "voice", "reason": reason, "ambiguous": ambiguous, "evidence": ev, "text": text}
    m, s = len(music), len(sfx)
    if m == 0 and s == 0:
        return {
            "chosen": "music",
            "ambiguous": True,
            "evidence": ev,
            "reason": "music: nothing in the prompt names a genre, instrument, tempo or a sound source; "
            "music is the default",
        }
    if m >= 2 * s or s >= 2 * m:  # (both zero was handled above)
        chosen = "music" if m > s else "audio"
        what = music if chosen == "music" else sfx
        label = "genre, instrument or tempo words" if chosen == "music" else "sound-effect words"
        return {
            "chosen": chosen,
            "ambiguous": False,
            "evidence": ev,
            "reason": f"{chosen}: {label} ({', '.join(what[:5])})",
        }
    chosen = "music" if m > s or (m == s and _any(prompt, MUSIC_WORDS)) else "audio"
    return {
        "chosen": chosen,
        "ambiguous": True,
        "evidence": ev,
        "reason": f"{chosen}: the prompt has both music words ({', '.join(music[:4])}) and sound-effect words "
        f"({', '.join(sfx[:4])}); {'more of the first' if chosen == 'music' and m > s else 'picked'}"
        f" {chosen}",
    }


# --- the checks ---------------------------------------------------------------------------------


def _count(prompt: str) -> int:
    best = 0
    for n, _ in COUNT.findall(prompt):
        best = max(best, int(n) if n.isdigit() else NUMBERS.get(n.lower(), 0))
    return best


def _contradictions(prompt: str) -> list[tuple[str, str, str]]:
    out = []
    text = prompt.lower()
    for what, one, other in OPPOSITES:
        a, b = _any(prompt, one), _any(prompt, other)
        if a and b:
            i, j = text.find(a[0]), text.find(b[0])
            between = text[min(i, j) : max(i, j)]
            if not TRANSITION.search(between):  # "slow intro building to a fast climax" is a plan, not a clash
                out.append((what, a[0], b[0]))
    if (m := BPM.search(prompt)) and what_tempo(prompt, float(m.group(1))):
        out.append(("tempo", what_tempo(prompt, float(m.group(1))) or "", m.group(0)))
    return out


def what_tempo(prompt: str, bpm: float) -> str | None:
    """A tempo word the stated BPM contradicts (slow at 150 BPM, fast at 70)."""
    slow, fast = _any(prompt, OPPOSITES[2][1]), _any(prompt, OPPOSITES[2][2])
    if slow and bpm >= 140:
        return slow[0]
    if fast and bpm <= 80:
        return fast[0]
    return None


def _music_checks(prompt: str, check: Check) -> None:
    groups = {g: _hits(prompt, MUSIC, g) for g in ("genre", "mood", "instrument", "tempo")}
    if BPM.search(prompt):
        groups["tempo"]["bpm"] = [BPM.search(prompt).group(0)]  # type: ignore[union-attr]
    instruments, genres = len(groups["instrument"]), len(groups["genre"])
    count = _count(prompt)
    ideas = len([p for p in re.split(r"[,;]|\band\b|\bwith\b|\bplus\b", prompt) if p.strip()])
    if instruments > 4 or count >= 5 or genres >= 3 or ideas > 8 or len(words(prompt)) > 45:
        what = (
            f"{count} instruments or layers"
            if count >= 5
            else f"{instruments} instruments ({', '.join(sorted(groups['instrument']))})"
            if instruments > 4
            else f"{genres} genres ({', '.join(sorted(groups['genre']))})"
            if genres >= 3
            else "many ideas at once"
        )
        check.warn(
            "too_complex",
            f"Too complex: {what}.",
            "Simplify and focus on the key elements: one genre, a mood, two or three instruments. "
            "MusicGen struggles with complex arrangements and cannot isolate many instruments.",
            EXAMPLES["too_complex"],
        )
    tips = {
        "genre": ("Add a genre or style (electronic, jazz, orchestral).", SEED_MUSIC[2]),
        "mood": ("Add a mood or energy (calm, upbeat, intense).", SEED_MUSIC[3]),
        "instrument": ("Name the instruments (piano, strings, synth).", SEED_MUSIC[5]),
        "tempo": ("Give a tempo indication (slow, 120 BPM, driving).", SEED_MUSIC[0]),
    }
    names = {"genre": "genre", "mood": "mood", "instrument": "instruments", "tempo": "tempo"}
    for group, (message, example) in tips.items():
        if not groups[group]:
            check.suggestions.append({"missing": names[group], "message": message, "example": example})
    _vague(
        prompt,
        sum(1 for g in groups.values() if g),
        check,
        "Add genre, mood and instruments: a good music prompt names a style, an energy and what plays.",
    )


def _sfx_checks(prompt: str, check: Check) -> None:
    sources = _hits(prompt, SFX)
    parts = {
        "sound type": bool(sources),
        "material": bool(_any(prompt, MATERIALS)),
        "intensity": bool(_any(prompt, INTENSITY)),
        "environment": bool(_any(prompt, ENVIRONMENT)),
    }
    count = _count(prompt)
    if len(sources) > 6 or count >= 5 or len(words(prompt)) > 45:
        what = (
            f"{count} sounds or layers"
            if count >= 5
            else (f"{len(sources)} different sound sources" if len(sources) > 6 else "many ideas at once")
        )
        check.warn(
            "too_complex",
            f"Too complex: {what}.",
            "Simplify and focus on the key elements: one main sound, what it is made of, where it happens.",
            SEED_SFX[3],
        )
    tips = {
        "sound type": ("Say what makes the sound (explosion, footsteps, wind).", SEED_SFX[1]),
        "material": ("Name the material or surface (wooden floor, metal impact).", SEED_SFX[2]),
        "intensity": ("Give the intensity (loud, soft, distant).", SEED_SFX[3]),
        "environment": ("Place it somewhere (indoor, forest, urban).", SEED_SFX[0]),
    }
    for part, (message, example) in tips.items():
        if not parts[part]:
            check.suggestions.append({"missing": part, "message": message, "example": example})
    _vague(
        prompt,
        sum(parts.values()),
        check,
        "Describe the sound: what makes it, what it is made of, how loud and where it happens.",
    )


def _vague(prompt: str, described: int, check: Check, explanation: str) -> None:
    content = [w for w in words(prompt) if w not in STOP and w not in VAGUE]
    if not content or (described <= 1 and len(content) <= 1) or (described == 0 and len(content) <= 2):
        check.warn(
            "too_vague",
            f"Too vague: {prompt.strip()!r} says little about the sound.",
            explanation,
            EXAMPLES["too_vague"],
        )


def _common(prompt: str, check: Check) -> None:
    for what, a, b in _contradictions(prompt):
        check.warn(
            "contradictory",
            f"Contradictory {what}: {a!r} and {b!r}.",
            f'Pick a consistent {what}; or say how one turns into the other ("slow intro building to a fast chorus").',
            EXAMPLES["contradictory"],
        )
    if VISUAL.search(prompt) and not NOT_VISUAL.search(prompt):
        check.warn(
            "non_audio",
            f"Non-audio: {VISUAL.search(prompt).group(0)!r} describes something to see.",  # type: ignore[union-attr]
            "Describe the sound, not the visual: what you would hear, not what it looks like.",
            EXAMPLES["non_audio"],
        )


def check_prompt(prompt: str, model: str) -> Check:
    """Warnings, suggestions and (for ``"auto"``) the model choice for a prompt."""
    check = Check()
    if model == "auto":
        choice = choose_model(prompt)
        check.model = {k: v for k, v in choice.items() if k != "ambiguous"}
        model = choice["chosen"]
        if choice["ambiguous"]:
            check.warn(
                "ambiguous_model",
                f"Ambiguous: picked {model} ({choice['reason']}).",
                "Name the model (music, audio, magnet or voice), or make the prompt clearly music "
                "(genre, instruments, BPM), a sound effect (what makes the sound) or speech (quote the words).",
                SEED_SFX[0] if model == "audio" else SEED_MUSIC[0],
            )
        if model == "voice":
            prompt = choice.get("text") or prompt
    kind = KIND_OF_MODEL.get(model, "music")
    if kind == "speech":
        if DESCRIBES_SPEECH.search(prompt) and not QUOTED.search(prompt):
            check.warn(
                "describes_speech",
                "This describes speech; the voice model reads the prompt aloud as is.",
                "Give the voice model the exact words to speak; describe voices in the voice choice "
                "(GET /v1/voices), not in the text.",
                "Welcome to the arena, challenger.",
            )
        return check
    music, sfx = evidence(prompt)
    if model != "auto" and check.model is None:
        other = "audio" if kind == "music" else "music"
        own, theirs = (music, sfx) if kind == "music" else (sfx, music)
        if spoken_text(prompt) is not None and len(own) == 0:
            check.warn(
                "model_mismatch",
                "This reads like words to speak; the voice model speaks them.",
                f"Use model voice (or auto) for speech; {model} makes "
                f"{'music' if kind == 'music' else 'sound effects'}.",
                'say "Welcome, traveler"',
            )
        elif theirs and (not own or len(theirs) >= 2 * len(own) + 1):
            check.warn(
                "model_mismatch",
                f"This sounds like {'a sound effect' if other == 'audio' else 'music'} "
                f"({', '.join(theirs[:4])}); model {other} fits it better.",
                "music and magnet make music; audio makes sound effects and ambience.",
                SEED_SFX[0] if other == "audio" else SEED_MUSIC[0],
            )
    (_music_checks if kind == "music" else _sfx_checks)(prompt, check)
    _common(prompt, check)
    return check


@dataclass
class Guidance:
    """What a submission records: the model it runs on, the prompt it uses, warnings, the auto choice."""

    model: str
    prompt: str
    warnings: list[dict[str, Any]]
    model_choice: dict[str, Any] | None


def guide(model: str, prompt: str) -> Guidance:
    """Resolve ``"auto"`` and collect the prompt's warnings, for POST /v1/generations. For an auto
    pick of voice the words to speak (quoted, or after "say") become the prompt. A pure function of
    its arguments, remembered for the last ``GUIDE_CACHE_SIZE`` (model, prompt) pairs (a submit's
    largest cost after I/O: every category's keywords are matched); each caller gets its own copies."""
    g = _guide(model, prompt)
    choice = copy.deepcopy(g.model_choice) if g.model_choice is not None else None
    return Guidance(g.model, g.prompt, copy.deepcopy(g.warnings), choice)


GUIDE_CACHE_SIZE = 4096


@lru_cache(maxsize=GUIDE_CACHE_SIZE)
def _guide(model: str, prompt: str) -> Guidance:
    check = check_prompt(prompt, model)
    if model != "auto" or check.model is None:
        return Guidance(model, prompt, check.warnings, None)
    chosen = check.model["chosen"]
    choice = {**check.model, "prompt": prompt}
    spoken = check.model.get("text") if chosen == "voice" else None
    return Guidance(chosen, spoken or prompt, check.warnings, choice)


def guide_submission(body: Any) -> tuple[Any, Guidance]:
    """``guide`` for a GenerationCreate body: the body with the model (and, for an auto pick of voice,
    the prompt) resolved, and what the job records."""
    if body.model == "auto" and body.voice is not None:  # naming a voice is asking for speech
        check = check_prompt(body.prompt, "voice")
        spoken = spoken_text(body.prompt) or body.prompt
        choice = {
            "chosen": "voice",
            "reason": f"voice: a voice was named ({body.voice})",
            "prompt": body.prompt,
            "text": spoken,
        }
        guidance = Guidance("voice", spoken, check.warnings, choice)
    else:
        guidance = guide(body.model, body.prompt)
    return body.model_copy(update={"model": guidance.model, "prompt": guidance.prompt}), guidance
