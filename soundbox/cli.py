"""The `soundbox` command: run the API, a worker, migrations, the local stack, or the analyzer."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from shared.domain.catalog import MODEL_IDS
from shared.domain.tiers import DEFAULT_TIER, TIER_NAMES


def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run(
        "api.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=False,  # requests are logged as JSON lines by the API itself
        proxy_headers=True,
    )


def cmd_worker(args: argparse.Namespace) -> None:
    from worker.device import DeviceUnavailable, check_and_pin

    try:  # this worker serves exactly this device, or does not start
        args.device = check_and_pin(args.device)
    except DeviceUnavailable as exc:
        raise SystemExit(f"soundbox worker: {exc}") from None
    os.environ["SOUNDBOX_DEVICE"] = args.device
    from shared.settings import get_settings

    settings = get_settings()
    settings.numba_cache_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(settings.numba_cache_dir))
    from shared.infra.logging import configure_logging

    configure_logging("worker")
    from worker.tasks import celery_app, warm_up

    warm_up(args.queues)
    queues = ",".join(args.queues)
    celery_app.worker_main(
        [
            "worker",
            "--queues",
            queues,
            "--concurrency",
            str(args.concurrency),
            "--pool",
            "threads",
            "--hostname",
            f"soundbox-{args.device.replace(':', '')}-{os.getpid()}@%h",
            "--loglevel",
            args.loglevel,
            "--without-gossip",
            "--without-mingle",
        ]
    )


def cmd_webhooks(args: argparse.Namespace) -> None:
    from shared.infra.logging import configure_logging

    configure_logging("webhooks")
    from worker.webhooks import WEBHOOK_QUEUE, celery_app  # the delivery task only: no engines, no torch

    celery_app.worker_main(
        [
            "worker",
            "--queues",
            WEBHOOK_QUEUE,
            "--concurrency",
            str(args.concurrency),
            "--pool",
            "threads",
            "--hostname",
            f"soundbox-webhooks-{os.getpid()}@%h",
            "--loglevel",
            args.loglevel,
            "--without-gossip",
            "--without-mingle",
        ]
    )


def cmd_migrate(args: argparse.Namespace) -> None:
    from shared.infra.migrate import upgrade_head
    from shared.settings import get_settings

    upgrade_head(get_settings().database_url)
    print("database is at the latest migration")


def cmd_services(args: argparse.Namespace) -> None:
    from shared.settings import get_settings
    from soundbox.devstack import ensure_postgres, ensure_redis

    s = get_settings()
    ensure_redis(s.redis_url)
    ensure_postgres(s.database_url)
    print("Redis and PostgreSQL are running")


def cmd_keys(args: argparse.Namespace) -> None:
    from shared.domain.accounts import create_account_with_key, list_keys, revoke_key
    from shared.domain.tiers import check_tier
    from shared.infra.db import session_scope
    from shared.settings import get_settings

    if args.keys_command == "create":
        try:
            check_tier(get_settings().tiers, args.tier)
        except ValueError as exc:
            raise SystemExit(f"soundbox keys create: {exc}") from None
    with session_scope() as session:
        if args.keys_command == "create":
            new = create_account_with_key(session, args.name, args.tier, args.admin)
            print(new.secret)
            print(
                f"key {new.key.prefix}… for account {new.account.id} ({args.tier}{', admin' if args.admin else ''}); "
                "store it now: it is not shown again",
                file=sys.stderr,
            )
        elif args.keys_command == "list":
            print(f"{'prefix':<14}{'name':<24}{'tier':<11}{'admin':<7}{'created':<22}{'last used':<22}revoked")
            for key, account in list_keys(session):

                def when(t):
                    return t.strftime("%Y-%m-%d %H:%M:%S") if t else "-"

                print(
                    f"{key.prefix:<14}{key.name[:23]:<24}{account.tier:<11}{'yes' if account.is_admin else 'no':<7}"
                    f"{when(key.created_at):<22}{when(key.last_used_at):<22}{when(key.revoked_at)}"
                )
        else:
            revoked = revoke_key(session, args.key)
            if revoked is None:
                raise SystemExit(f"no key {args.key}")
            print(f"revoked {revoked.prefix}")


def cmd_analyze(args: argparse.Namespace) -> None:
    from shared.audio.quality import analyze_file, thresholds_for
    from shared.settings import get_settings

    try:
        thresholds = thresholds_for(args.kind, get_settings().quality_thresholds)
    except ValueError as exc:  # a bad SOUNDBOX_QUALITY_THRESHOLDS
        raise SystemExit(f"soundbox analyze: {exc}") from None
    failed = False
    for path in args.files:
        try:
            report = analyze_file(path, args.kind, thresholds, prompt=args.prompt).to_dict()
        except Exception as exc:  # unreadable file: say which, go on with the rest
            failed = True
            print(
                json.dumps({"file": path, "error": f"{type(exc).__name__}: {exc}"})
                if args.json
                else f"{path}: cannot analyze: {exc}",
                file=sys.stdout if args.json else sys.stderr,
            )
            continue
        if args.json:
            print(json.dumps({"file": path, "kind": args.kind, **report}), flush=True)
        else:
            verdict = "good" if report["is_good"] else "BAD"
            print(f"{path}: score {report['score']:.1f} ({verdict})")
            for issue in report["issues"]:
                print(
                    f"  - [{issue['severity']}, {issue['confidence']:.0%} sure{'' if issue['fails'] else ', does not fail'}]"
                    f" {issue['code']}: {issue['message']}"
                )
            for waived in report["waived"]:
                print(f"  - [waived by {', '.join(waived['words'])!r}] {waived['code']}: {waived['message']}")
    sys.exit(1 if failed else 0)


def _wait_ready(url: str, procs: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"a service exited during start-up (code {p.returncode}); see the log above")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the API did not become ready at {url}")


def _wait_worker(redis_url: str, procs: list[subprocess.Popen], timeout: float) -> None:
    import redis

    from shared.infra import registry

    print("[soundbox] waiting for the worker to load and warm up...", flush=True)
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    # A generation worker (the webhook worker announces itself too, but serves no model queue),
    # ready: taking jobs with its preloaded models warmed up.
    while not any(set(w.get("queues", [])) & set(MODEL_IDS) and w.get("ready") for w in registry.workers(client)):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit("the worker did not come up; see the log above")
        time.sleep(0.5)


def cmd_library(args: argparse.Namespace) -> None:
    """`soundbox library backfill`: categories for sounds made before they existed."""
    from shared.domain.library import backfill_categories
    from shared.infra.db import session_scope
    from shared.infra.storage import get_store
    from shared.settings import get_settings

    with session_scope() as session:
        count = backfill_categories(
            session, None if args.prompt_only else get_store(get_settings()), everything=args.all
        )
    print(f"categorized {count} sound{'s' if count != 1 else ''}")


def cmd_up(args: argparse.Namespace) -> None:
    from shared.domain.catalog import checkpoint_present, get_catalog
    from shared.settings import get_settings

    cmd_services(args)
    cmd_migrate(args)
    settings = get_settings()
    env = dict(os.environ)
    if "SOUNDBOX_CATALOG" not in os.environ:
        default = get_catalog(settings.model_copy(update={"catalog": "default"}))
        missing = [s.checkpoint for s in default.values() if not checkpoint_present(s, settings)]
        env["SOUNDBOX_CATALOG"] = "tiny" if missing else "default"
        if missing:
            print(
                f"[soundbox] weights not found for {', '.join(missing)}: using the TINY catalog "
                "(random-weight models of the real architectures: expect noise, not music)"
            )
        else:
            print("[soundbox] using the DEFAULT catalog (real checkpoints found)")
    else:
        print(f"[soundbox] using the {env['SOUNDBOX_CATALOG'].upper()} catalog (SOUNDBOX_CATALOG)")
    if "SOUNDBOX_ALLOW_ANONYMOUS" not in os.environ:
        env["SOUNDBOX_ALLOW_ANONYMOUS"] = "true"
        print(
            "[soundbox] anonymous access is ON for this local stack (requests without an API key act as one "
            "shared free account); set SOUNDBOX_ALLOW_ANONYMOUS=false to require keys "
            "(`soundbox keys create --name me --tier creator`)"
        )
    base = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else args.host}:{args.port}"
    env.setdefault("SOUNDBOX_PUBLIC_URL", base)  # absolute result URLs in webhook bodies
    exe = [sys.executable, "-m", "soundbox.cli"]
    procs = [
        subprocess.Popen([*exe, "worker", "--device", args.device], env=env),
        subprocess.Popen([*exe, "webhooks"], env=env),
        subprocess.Popen([*exe, "api", "--host", args.host, "--port", str(args.port)], env=env),
    ]

    def stop(*_):
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _wait_ready(base + "/readyz", procs, timeout=120)
    _wait_worker(settings.redis_url, procs, timeout=300)
    print(
        f"""
Sound Box is up.
  API docs:  {base}/docs
  Try it:
    curl -s -X POST {base}/v1/generations -H 'Content-Type: application/json' -H 'Prefer: wait=30' \\
      -d '{{"model": "music", "prompt": "calm acoustic guitar, folk style", "duration": 4}}'
    # answers with the finished job; fetch its result.audio_url:  curl -s -o out.wav <audio_url>
    curl -s -o hello.wav {base}/v1/audio/speech -H 'Content-Type: application/json' \\
      -d '{{"model": "piper", "input": "Hello from Sound Box.", "voice": "en_US-joe-medium"}}'
Press Ctrl-C to stop.
""",
        flush=True,
    )
    while all(p.poll() is None for p in procs):
        time.sleep(1)
    stop()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soundbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("api", help="run the HTTP API (uvicorn)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.set_defaults(func=cmd_api)

    p = sub.add_parser("worker", help="run a generation worker (Celery)")
    p.add_argument(
        "--queues",
        type=lambda s: [q for q in s.split(",") if q],
        default=list(MODEL_IDS),
        help=f"comma-separated queues to serve (default: all of {','.join(MODEL_IDS)})",
    )
    p.add_argument("--concurrency", type=int, default=1, help="jobs at once (one per GPU is right)")
    p.add_argument("--device", default="cpu", help="cpu or cuda:N")
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("webhooks", help="run a webhook delivery worker (Celery, the webhooks queue; no GPU)")
    p.add_argument("--concurrency", type=int, default=8, help="deliveries at once (threads)")
    p.add_argument("--loglevel", default="INFO")
    p.set_defaults(func=cmd_webhooks)

    p = sub.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("services", help="start local Redis and PostgreSQL when not running")
    p.set_defaults(func=cmd_services)

    p = sub.add_parser("up", help="the local stack: services, migrations, API and one worker")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("keys", help="API keys: create, list, revoke")
    keys = p.add_subparsers(dest="keys_command", required=True)
    k = keys.add_parser("create", help="a new account with one key (printed once)")
    k.add_argument("--name", required=True)
    k.add_argument(
        "--tier",
        default=DEFAULT_TIER,
        help="a tier of the configured table (SOUNDBOX_TIERS; by default: " + ", ".join(TIER_NAMES) + ")",
    )
    k.add_argument("--admin", action="store_true")
    keys.add_parser("list", help="all keys (prefixes only)")
    k = keys.add_parser("revoke", help="revoke a key by id or prefix")
    k.add_argument("key")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("library", help="the sound library: backfill categories")
    lib = p.add_subparsers(dest="library_command", required=True)
    k = lib.add_parser("backfill", help="categorize sounds that have no categories (from prompt and audio)")
    k.add_argument("--all", action="store_true", help="recompute every sound's categories")
    k.add_argument("--prompt-only", action="store_true", help="skip the audio (faster; no object store reads)")
    p.set_defaults(func=cmd_library)

    p = sub.add_parser("analyze", help="run the quality analyzer on audio files")
    p.add_argument("files", nargs="+")
    p.add_argument("--kind", choices=["music", "sfx", "speech"], default="music")
    p.add_argument(
        "--prompt", help="what was asked for: its words waive checks (beep, drone, rain, steam, room tone...)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per file, per line")
    p.set_defaults(func=cmd_analyze)

    from soundbox.commands import add_commands  # client commands over HTTP: generate, speak, sounds, ...

    add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    for q in getattr(args, "queues", []) or []:
        if q not in MODEL_IDS:
            hint = "; webhook deliveries are served by `soundbox webhooks`" if q == "webhooks" else ""
            raise SystemExit(f"unknown queue {q!r}; queues: {', '.join(MODEL_IDS)}{hint}")
    args.func(args)


if __name__ == "__main__":
    main()
