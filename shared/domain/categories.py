"""Categories of a sound: keyword scoring of its prompt per kind (music, sfx, speech), as the
original did, plus what the audio itself says where it is cheap (tempo from librosa's beat
tracker for music, loudness range and envelope for dynamics, loopable).

Each category is ``{"name", "group", "score"}`` (score 0-1; ``source`` "prompt" or "audio", and
``value`` for a measured tempo); a sound keeps its best few. The keyword tables are also the
vocabulary of the prompt checks (shared/domain/prompts.py).

Pure Python at import time: the audio part imports shared/audio/features.py (librosa) only when
called, so the API never loads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import structlog

log = structlog.get_logger()
TOP = 5  # categories kept per sound
MIN_SCORE = 0.3


@dataclass(frozen=True)
class Category:
    name: str
    group: str
    keywords: tuple[str, ...]  # words or phrases; a trailing * matches any ending

    @property
    def pattern(self) -> re.Pattern[str]:
        return _pattern(self.keywords)


@cache
def _pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    parts = []
    for kw in keywords:
        stem = re.escape(kw.rstrip("*")).replace(r"\ ", r"[\s-]+")
        parts.append(stem + (r"[\w-]*" if kw.endswith("*") else ""))
    return re.compile(r"(?<![\w-])(?:" + "|".join(parts) + r")(?![\w-])", re.IGNORECASE)


def _table(groups: dict[str, dict[str, str]]) -> tuple[Category, ...]:
    """``{group: {name: "kw1, kw2, two words, prefix*"}}`` to categories."""
    return tuple(
        Category(name, group, tuple(k.strip() for k in words.split(",") if k.strip()))
        for group, cats in groups.items()
        for name, words in cats.items()
    )


MUSIC = _table(
    {
        "genre": {
            "electronic": "electronic, edm, electro, techno, house music, trance, dubstep, drum and bass, dnb, idm, "
            "electronica, dance music, rave",
            "synthwave": "synthwave, retrowave, outrun, vaporwave, 80s synth*, 80s",
            "ambient": "ambient, drone, downtempo, new age, meditation",
            "orchestral": "orchestral, orchestra, symphonic, symphony, philharmonic",
            "cinematic": "cinematic, trailer, film score, soundtrack, movie score",
            "rock": "rock, punk, grunge, indie rock, hard rock, garage",
            "metal": "metal, heavy metal, thrash, djent, metalcore",
            "jazz": "jazz*, swing, bebop, fusion, big band",
            "blues": "blues, bluesy",
            "classical": "classical, baroque, sonata, concerto, chamber music, string quartet",
            "folk": "folk, bluegrass, celtic, country, americana",
            "hip hop": "hip hop, hiphop, rap, trap, boom bap",
            "lo-fi": "lo-fi, lofi, chillhop",
            "pop": "pop, synthpop, synth-pop, k-pop",
            "funk": "funk, funky, disco, soul, motown, groove",
            "reggae": "reggae, dub, ska, dancehall",
            "latin": "latin, salsa, bossa nova, samba, flamenco, tango, reggaeton",
            "world": "world music, ethnic, tribal, african, middle eastern, oriental",
            "chiptune": "chiptune, 8-bit, 8bit, 16-bit, retro game",
            "game music": "video game music, game music, boss battle, rpg, level music, battle music, menu music",
        },
        "mood": {
            "calm": "calm, peaceful, relaxing, relaxed, serene, tranquil, soothing, gentle, mellow, chill",
            "happy": "happy, cheerful, joyful, upbeat, uplifting, playful, fun",
            "energetic": "energetic, driving, powerful, pumping, high-energy, intense",
            "dark": "dark, ominous, sinister, menacing, creepy, eerie, horror",
            "sad": "sad, melancholic, melancholy, sorrowful, mournful, somber, wistful",
            "epic": "epic, heroic, triumphant, majestic, grand",
            "tense": "tense, suspense*, dramatic, urgent, thriller",
            "romantic": "romantic, tender, love song, sensual",
            "mysterious": "mysterious, mystical, dreamy, ethereal, magical",
            "aggressive": "aggressive, angry, furious, brutal, fierce",
            "nostalgic": "nostalgic, retro, vintage",
        },
        "instrument": {
            "piano": "piano*, rhodes, keyboard*",
            "guitar": "guitar*, fingerpick*, strumm*, riff*",
            "bass": "bass, bassline*, basses, sub-bass",
            "drums": "drum*, percussion, kick*, snare*, hi-hat*, breakbeat*, beats",
            "strings": "strings, violin*, cello*, viola*, string section, pizzicato",
            "brass": "brass, trumpet*, trombone*, french horn*, horns, tuba*",
            "woodwinds": "flute*, clarinet*, oboe*, saxophone*, sax, bassoon*",
            "synth": "synth*, synthesizer*, arpeggi*, pads, analog synth*",
            "vocals": "vocal*, choir*, singing, singer*, humming",
            "organ": "organ*, hammond",
            "harp": "harp*",
            "bells": "bells, glockenspiel, celesta, music box",
            "mallets": "marimba*, xylophone*, vibraphone*, kalimba*",
            "plucked": "ukulele*, banjo*, mandolin*, sitar*, koto, lute*",
            "accordion": "accordion*, harmonica*, bagpipe*",
        },
        "tempo": {
            "slow": "slow, slowly, slow tempo, largo, adagio, ballad",
            "mid-tempo": "mid-tempo, midtempo, moderate tempo, walking pace",
            "fast": "fast, uptempo, up-tempo, quick, rapid, frantic, high tempo",
        },
    }
)

SFX = _table(
    {
        "weather": {
            "rain": "rain*, drizzle, downpour, raindrops",
            "thunder": "thunder*, lightning",
            "wind": "wind*, gust*, breeze, howling",
            "storm": "storm*, hurricane, tornado, blizzard",
        },
        "nature": {
            "forest": "forest, woods, jungle, leaves, rustling, trees",
            "water": "water, stream, river, creek, brook, waterfall, drip*, splash*, bubbl*",
            "ocean": "ocean, waves, sea, surf, beach, shore, seagull*",
            "fire": "fire, crackl*, flames, campfire, bonfire, burning",
        },
        "animals": {
            "birds": "bird*, chirp*, tweet*, songbird*, crow*, owl*",
            "dogs": "dog*, bark*, puppy, howl*, wolf, wolves",
            "cats": "cat, cats, meow*, purr*, kitten*",
            "insects": "insect*, cricket*, bee, bees, buzz*, cicada*, mosquito*",
            "farm animals": "cow*, horse*, sheep, pig*, rooster*, chicken*, goat*, neigh*, moo*",
            "creatures": "monster*, creature*, growl*, roar*, dragon*, zombie*, beast*",
        },
        "vehicles": {
            "car": "car, cars, engine*, motor*, tires, screech*, honk*, horn honk*",
            "train": "train*, railway, subway, tram",
            "aircraft": "airplane*, plane*, jet*, helicopter*, propeller*",
            "boat": "boat*, ship*, sailing, harbor",
            "motorcycle": "motorcycle*, motorbike*, scooter*",
        },
        "impacts": {
            "hit": "hit*, punch*, smack*, slap*, thud*, thump*, knock over",
            "metal impact": "metal impact*, clang*, clank*, anvil, metal hit*",
            "glass": "glass, shatter*, smash*",
            "crash": "crash*, collapse*, debris, rubble",
            "explosion": "explosion*, explode*, blast*, detonat*, boom*, kaboom",
        },
        "doors": {
            "door": "door*, gate*, hinge*, creak*, slam*, knock*, doorbell*",
            "lock": "lock*, unlock*, key*, latch*",
        },
        "footsteps": {
            "footsteps": "footstep*, steps, walking, running, stomp*, sneaking, boots",
        },
        "ui": {
            "click": "click*, tap*, button*, toggle*",
            "notification": "notification*, alert*, ding*, chime*, ping*, beep*",
            "menu": "menu*, interface, ui, hover*, select*",
            "pickup": "coin*, pickup*, pick-up*, collect*, power-up*, powerup*, level up",
            "error": "error*, buzzer*, fail*, wrong answer",
        },
        "sci-fi": {
            "laser": "laser*, blaster*, phaser*, zap*, ray gun*",
            "spaceship": "spaceship*, spacecraft, starship*, thruster*, warp*, hyperdrive",
            "robot": "robot*, android*, servo*, mech*, droid*",
            "energy": "energy, force field, shield*, teleport*, portal*, plasma, hum*",
            "computer": "computer*, glitch*, data, terminal, sci-fi interface",
        },
        "weapons": {
            "gunshot": "gun*, gunshot*, gunfire, pistol*, rifle*, shotgun*, shots, reload*, weapon*",
            "sword": "sword*, blade*, slash*, sheath*, clash*",
            "arrow": "arrow*, bow, crossbow*",
        },
        "ambience": {
            "city": "city, urban, street*, traffic, downtown",
            "crowd": "crowd*, people talking, chatter, murmur*, applause, cheering, audience",
            "indoor": "room tone, indoor*, office, kitchen, hallway, restaurant, cafe, bar, library",
            "cave": "cave*, cavern*, dungeon*, underground, tunnel*",
            "space": "outer space, space station, void",
            "underwater": "underwater, submarine*",
            "ambience": "ambience, ambient sound*, atmosphere, soundscape, background noise",
        },
        "human": {
            "voice sounds": "laugh*, scream*, shout*, cry*, gasp*, sigh*, cough*, sneez*, yell*",
            "body": "heartbeat*, breath*, breathing, snor*, gulp*, chew*",
            "hands": "clap*, snap*, finger snap*",
        },
        "household": {
            "household": "dishes, cutlery, clock*, tick*, typing, keyboard typing, paper*, zipper*, drawer*, "
            "microwave, vacuum*, faucet, toilet*",
        },
        "magic": {
            "magic": "magic*, spell*, sparkl*, shimmer*, fairy, enchant*, mana",
            "whoosh": "whoosh*, swoosh*, swish*, riser*, swell*, transition*",
        },
    }
)

SPEECH = _table(
    {
        "speech": {
            "narration": "once upon a time, chapter, narrat*, story, long ago, meanwhile",
            "dialogue": "said, asked, replied, i think, you know, listen, hey",
            "announcement": "attention, ladies and gentlemen, passengers, now boarding, announce*, welcome to, "
            "please proceed, this is your captain",
        },
        "purpose": {
            "greeting": "hello, hi, welcome, good morning, good evening, greetings",
            "instruction": "press, click, select, turn left, turn right, step, tap, follow",
            "warning": "warning, danger, caution, alert, evacuate, emergency",
            "game": "level, quest, player, victory, game over, checkpoint, mission, you win, you lose",
            "farewell": "goodbye, bye, see you, farewell, good night",
        },
    }
)

TABLES = {"music": MUSIC, "sfx": SFX, "speech": SPEECH}
BPM = re.compile(r"(?<!\d)(\d{2,3})\s*bpm\b", re.IGNORECASE)


def tempo_name(bpm: float) -> str:
    return "slow" if bpm < 90 else "mid-tempo" if bpm <= 125 else "fast"


def matches(prompt: str, category: Category) -> list[str]:
    """The distinct keywords of ``category`` found in ``prompt`` (lower case)."""
    return sorted({m.group(0).lower() for m in category.pattern.finditer(prompt)})


def _score(hits: int) -> float:
    return round(1 - 0.45**hits, 3)  # one keyword 0.55, two 0.8, three 0.91


def from_prompt(kind: str, prompt: str) -> list[dict[str, Any]]:
    """Every category of ``kind`` the prompt names, scored by how many of its keywords appear; a
    stated tempo (120 BPM) counts fully. Best first."""
    found: dict[str, dict[str, Any]] = {}
    for cat in TABLES.get(kind, SFX):
        hits = matches(prompt, cat)
        if hits:
            found[cat.name] = {"name": cat.name, "group": cat.group, "score": _score(len(hits)), "source": "prompt"}
    if kind == "music" and (m := BPM.search(prompt)):
        name = tempo_name(float(m.group(1)))
        found[name] = {"name": name, "group": "tempo", "score": 1.0, "source": "prompt", "value": float(m.group(1))}
    if kind == "speech":
        words = len(prompt.split())
        if '"' in prompt or "“" in prompt:
            found.setdefault("dialogue", {"name": "dialogue", "group": "speech", "score": 0.55, "source": "prompt"})
        if words >= 40 and "narration" not in found:
            found["narration"] = {"name": "narration", "group": "speech", "score": 0.6, "source": "prompt"}
        length = "short line" if words <= 8 else "long read" if words >= 60 else None
        if length:
            found[length] = {"name": length, "group": "length", "score": 0.5, "source": "prompt"}
    return sorted(found.values(), key=lambda c: (-c["score"], c["name"]))


def merge(*lists: list[dict[str, Any]], top: int = TOP) -> list[dict[str, Any]]:
    """Combine category lists (the same name: the best score, raised a little when both agree);
    keep the best ``top`` at or above MIN_SCORE."""
    out: dict[str, dict[str, Any]] = {}
    for cats in lists:
        for c in cats:
            if c["name"] in out:
                old = out[c["name"]]
                best = dict(max(old, c, key=lambda x: x["score"]))
                best["score"] = round(min(1.0, best["score"] + 0.1), 3)
                if old.get("source") != c.get("source"):
                    best["source"] = "prompt+audio"
                if "value" not in best and ("value" in old or "value" in c):  # the better one's value wins
                    best["value"] = c.get("value", old.get("value"))
                out[c["name"]] = best
            else:
                out[c["name"]] = dict(c)
    ranked = sorted(out.values(), key=lambda c: (-c["score"], c["name"]))
    return [c for c in ranked if c["score"] >= MIN_SCORE][:top]


def from_features(kind: str, features: Any, loopable: bool) -> list[dict[str, Any]]:
    """Categories the audio shows: tempo (music), dynamics (one-shot, steady, dynamic), loop."""
    out: list[dict[str, Any]] = []
    if loopable:
        out.append({"name": "loop", "group": "use", "score": 1.0, "source": "audio"})
    if features is None:
        return out
    if kind == "music" and features.tempo_bpm:
        out.append(
            {
                "name": tempo_name(features.tempo_bpm),
                "group": "tempo",
                "score": 0.6,
                "source": "audio",
                "value": round(features.tempo_bpm, 1),
            }
        )
    if kind != "speech":
        if features.one_shot:
            out.append({"name": "one-shot", "group": "dynamics", "score": 0.6, "source": "audio"})
        elif features.loudness_range_db is not None and features.loudness_range_db < 4:
            out.append({"name": "steady", "group": "dynamics", "score": 0.5, "source": "audio"})
        elif features.loudness_range_db is not None and features.loudness_range_db > 15:
            out.append({"name": "dynamic", "group": "dynamics", "score": 0.5, "source": "audio"})
    return out


def categorize(kind: str, prompt: str, loopable: bool = False, wav: bytes | None = None) -> list[dict[str, Any]]:
    """A sound's categories from its prompt and, when ``wav`` is given, its audio. Never raises
    for the audio part (a clip that cannot be measured keeps its prompt categories)."""
    features = None
    if wav is not None:
        try:
            from shared.audio.features import measure_wav

            features = measure_wav(wav, kind)
        except Exception as exc:  # categories must never fail a job
            log.warning("audio features failed; categories from the prompt only", error=str(exc))
    return merge(from_prompt(kind, prompt), from_features(kind, features, loopable))
