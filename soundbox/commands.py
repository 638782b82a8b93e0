"""Client commands of `soundbox`: generate, speak, voices, sounds, jobs — over HTTP with
:mod:`soundbox.client`, against ``--url`` / SOUNDBOX_URL with ``--key`` / SOUNDBOX_API_KEY.

Errors are one line on stderr (exit code 1), never a traceback; Ctrl-C during ``generate``
cancels the job (exit code 130)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from soundbox.client import Client, Event, Job, SoundboxError

FORMATS = ("wav", "flac", "mp3", "ogg", "opus")
SPEECH_FORMATS = ("wav", "mp3", "flac", "opus", "pcm")


def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, args.key)


def _format_of(path: str | None, given: str | None, allowed: tuple[str, ...], default: str) -> str:
    if given:
        return given
    ext = Path(path).suffix.lower().lstrip(".") if path else ""
    return ext if ext in allowed else default


class Progress:
    """A one-line progress bar on stderr, drawn from the job's events."""

    def __init__(self, stream=None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = self.stream.isatty()
        self.last = ""

    def __call__(self, event: Event) -> None:
        job = event.job
        status = job.get("status", "?")
        fraction = float(job.get("progress") or 0.0)
        filled = round(fraction * self.width)
        note = f"attempt {job.get('attempts')}" if status == "running" and job.get("attempts") else ""
        if event.type == "job.attempt":
            attempt = event.envelope.get("attempt") or {}
            note = f"attempt {attempt.get('attempt')} scored {attempt.get('score', 0):.0f}"
        line = f"[{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:5.1f}% {status} {note}".rstrip()
        if self.tty:
            self.stream.write("\r" + line.ljust(len(self.last)))
            if event.terminal:
                self.stream.write("\n")
        elif line != self.last:  # a log or a pipe: one line per change
            self.stream.write(line + "\n")
        self.stream.flush()
        self.last = line


def cmd_generate(args: argparse.Namespace) -> None:
    fmt = _format_of(args.output, args.format, FORMATS, "wav")
    with _client(args) as sb:
        job = sb.submit(
            args.prompt,
            model=args.model,
            duration=args.duration,
            loopable=args.loop,
            seed=args.seed,
            priority=args.priority,
            voice=args.voice,
        )
        print(f"job {job['id']} queued ({job.get('model')})", file=sys.stderr)
        progress: Callable[[Event], None] = (lambda e: None) if args.quiet else Progress()
        try:
            final = (
                sb.wait(job["id"], on_event=progress)
                if job.get("status") not in ("succeeded", "failed", "canceled")
                else job
            )
        except KeyboardInterrupt:
            try:
                sb.cancel(job["id"])
                print(f"\ncanceled job {job['id']}", file=sys.stderr)
            except SoundboxError as exc:
                print(f"\ncould not cancel job {job['id']}: {exc.message}", file=sys.stderr)
            raise SystemExit(130) from None
        _finish(sb, final, args.output, fmt, args.json)


def _finish(sb: Client, job: Job, output: str | None, fmt: str, as_json: bool) -> None:
    if job.get("status") != "succeeded":
        raise SoundboxError(f"job {job.get('id')} {job.get('status')}: {job.get('error') or 'no result'}")
    result: dict[str, Any] = dict(job.get("result") or {})
    sound_id = str(result.get("sound_id"))
    quality: dict[str, Any] = result.get("quality") or {}
    if output:
        size = sb.download(sound_id, output, fmt)  # type: ignore[arg-type]
        print(f"wrote {output} ({size} bytes, {fmt})", file=sys.stderr)
    if as_json:
        print(json.dumps(job))
    else:
        kept = next((a for a in job.get("attempt_history") or [] if a.get("kept")), None)
        note = " (accepted anyway)" if quality.get("accepted_anyway") else ""
        print(
            f"sound {sound_id}: {result.get('duration', 0):.1f} s at {result.get('sample_rate')} Hz, "
            f"quality {quality.get('score', 0):.0f}{note}"
            + (f", attempt {kept['attempt']} of {job.get('attempts')} kept" if kept else "")
        )


def cmd_speak(args: argparse.Namespace) -> None:
    fmt = _format_of(args.output, args.format, SPEECH_FORMATS, "mp3")
    output = args.output or f"speech.{fmt}"
    with _client(args) as sb:
        size = sb.speech(args.text, output, voice=args.voice, response_format=fmt, speed=args.speed)  # type: ignore[arg-type]
    print(f"wrote {output} ({size} bytes, {fmt})", file=sys.stderr)


def cmd_voices(args: argparse.Namespace) -> None:
    with _client(args) as sb:
        voices = sb.voices()
    if args.json:
        print(json.dumps(voices))
        return
    for v in voices["voices"]:
        mark = "*" if v["id"] == voices.get("default") else " "
        print(f"{mark} {v['id']:<28} {v.get('language') or '-':<8} {v.get('quality') or '-':<8} {v['sample_rate']} Hz")


def _sound_line(s: dict[str, Any]) -> str:
    title = s.get("title") or s.get("prompt", "")
    tags = ",".join(s.get("tags") or [])
    vis = s.get("visibility", "")
    return f"{s['id']}  {s.get('model', ''):<7} {s.get('duration', 0):5.1f}s  {vis:<8} {title[:60]}" + (
        f"  [{tags}]" if tags else ""
    )


def _print_page(page: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(page))
        return
    items = page.get("items") or []
    for s in items:
        print(_sound_line(s))
    if not items:
        print("no sounds found", file=sys.stderr)
    if page.get("next_cursor"):
        print(f"more: --cursor {page['next_cursor']}", file=sys.stderr)


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        k: getattr(args, k)
        for k in ("model", "kind", "category", "tag", "sort", "limit", "cursor")
        if getattr(args, k, None) is not None
    }


def cmd_sounds(args: argparse.Namespace) -> None:
    with _client(args) as sb:
        action = args.sounds_command
        if action == "search":
            page = (sb.library if args.public else sb.sounds)(" ".join(args.query), **_filters(args))
            _print_page(dict(page), args.json)
        elif action == "list":
            _print_page(dict(sb.sounds(None, **_filters(args))), args.json)
        elif action == "get":
            sound = sb.sound(args.id)
            print(json.dumps(sound) if args.json else _sound_line(dict(sound)))
        elif action == "download":
            fmt = _format_of(args.output, args.format, FORMATS, "wav")
            output = args.output or f"{args.id}.{fmt}"
            size = sb.download(args.id, output, fmt)  # type: ignore[arg-type]
            print(f"wrote {output} ({size} bytes, {fmt})", file=sys.stderr)
        elif action == "update":
            tags = [t for t in args.tags.split(",") if t.strip()] if args.tags is not None else None
            print(_sound_line(dict(sb.update_sound(args.id, title=args.title, tags=tags, visibility=args.visibility))))
        elif action == "delete":
            sb.delete_sound(args.id)
            print(f"deleted sound {args.id}", file=sys.stderr)


def cmd_jobs(args: argparse.Namespace) -> None:
    with _client(args) as sb:
        if args.jobs_command == "list":
            page = sb.jobs(status=args.status, model=args.model, limit=args.limit)
            if args.json:
                print(json.dumps(page))
            for j in [] if args.json else page["items"]:
                print(
                    f"{j['id']}  {j['status']:<9} {j['model']:<7} {j['progress'] * 100:5.1f}%  "
                    f"{str(j.get('params', {}).get('prompt', ''))[:50]}"
                )
        elif args.jobs_command == "get":
            print(json.dumps(sb.job(args.id)))
        else:
            job = sb.cancel(args.id)
            print(f"job {job['id']} {job['status']}")


def _guard(func: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    def run(args: argparse.Namespace) -> None:
        try:
            func(args)
        except SoundboxError as exc:
            print(f"soundbox: {exc.message}", file=sys.stderr)
            raise SystemExit(1) from None
        except OSError as exc:  # an output file that cannot be written
            print(f"soundbox: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        except KeyboardInterrupt:
            raise SystemExit(130) from None

    return run


def add_commands(sub: Any) -> None:
    """Register the client commands on the `soundbox` command's subparsers."""
    conn = argparse.ArgumentParser(add_help=False)
    conn.add_argument("--url", help="the API's base URL (default: $SOUNDBOX_URL or http://127.0.0.1:8000)")
    conn.add_argument("--key", help="API key (default: $SOUNDBOX_API_KEY; none for anonymous access)")
    conn.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("generate", parents=[conn], help="generate a sound and download it (client)")
    p.add_argument("prompt")
    p.add_argument("--model", default="music", help="music, audio, magnet, voice or auto")
    p.add_argument("--duration", type=float)
    p.add_argument("--loop", action="store_true", help="make it loop seamlessly")
    p.add_argument("--seed", type=int)
    p.add_argument("--priority", type=int, default=5)
    p.add_argument("--voice", help="Piper voice (voice model)")
    p.add_argument("-o", "--output", help="where to write the audio (format from the extension)")
    p.add_argument("--format", choices=FORMATS)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_guard(cmd_generate))

    p = sub.add_parser("speak", parents=[conn], help="speak text into an audio file (client)")
    p.add_argument("text")
    p.add_argument("--voice", help="voice id (`soundbox voices`)")
    p.add_argument("-o", "--output", help="output file (format from the extension; default speech.mp3)")
    p.add_argument("--format", choices=SPEECH_FORMATS)
    p.add_argument("--speed", type=float, default=1.0)
    p.set_defaults(func=_guard(cmd_speak))

    p = sub.add_parser("voices", parents=[conn], help="list the installed voices (client)")
    p.set_defaults(func=_guard(cmd_voices))

    filt = argparse.ArgumentParser(add_help=False)
    for name in ("--model", "--kind", "--category", "--tag", "--cursor"):
        filt.add_argument(name)
    filt.add_argument("--sort", choices=["recent", "duration", "relevance"])
    filt.add_argument("--limit", type=int)

    p = sub.add_parser("sounds", help="your sounds: search, list, get, download, update, delete (client)")
    sounds = p.add_subparsers(dest="sounds_command", required=True)
    s = sounds.add_parser("search", parents=[conn, filt], help="search your sounds (or --public: the library)")
    s.add_argument("query", nargs="+")
    s.add_argument("--public", action="store_true", help="search the public library")
    sounds.add_parser("list", parents=[conn, filt], help="your sounds, newest first")
    for action in ("get", "delete"):
        s = sounds.add_parser(action, parents=[conn])
        s.add_argument("id")
    s = sounds.add_parser("download", parents=[conn])
    s.add_argument("id")
    s.add_argument("-o", "--output")
    s.add_argument("--format", choices=FORMATS)
    s = sounds.add_parser("update", parents=[conn], help="rename, tag or share a sound")
    s.add_argument("id")
    s.add_argument("--title")
    s.add_argument("--tags", help="comma-separated (replaces the tags)")
    s.add_argument("--visibility", choices=["private", "unlisted", "public"])
    p.set_defaults(func=_guard(cmd_sounds))

    p = sub.add_parser("jobs", help="your jobs: list, get, cancel (client)")
    jobs = p.add_subparsers(dest="jobs_command", required=True)
    j = jobs.add_parser("list", parents=[conn])
    j.add_argument("--status")
    j.add_argument("--model")
    j.add_argument("--limit", type=int)
    for action in ("get", "cancel"):
        j = jobs.add_parser(action, parents=[conn])
        j.add_argument("id")
    p.set_defaults(func=_guard(cmd_jobs))
