"""The ``domainbot`` command: ``serve [--port N]``, ``check-config``, ``audit``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from bot import __version__
from bot.config import DEFAULT_DATABASE_URL, DEFAULT_PORT, load_config
from bot.errors import ConfigError, InvalidDomain

logger = logging.getLogger(__name__)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    level = os.environ.get("DOMAINBOT_LOG_LEVEL", "INFO").strip().upper()
    if level not in LOG_LEVELS:
        print(
            f"domainbot: DOMAINBOT_LOG_LEVEL: {level!r} is not a level; use one of "
            f"{', '.join(LOG_LEVELS)}",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        # APScheduler logs each run of each job at INFO; with a sweep every few
        # seconds that would bury the lines that matter. Its warnings still show.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
    try:
        if args.command == "check-config":
            return _check_config()
        if args.command == "audit":
            return _audit(args.domain, args.limit)
        return _serve(args.port)
    except ConfigError as err:
        for problem in err.problems:
            print(f"domainbot: {problem}", file=sys.stderr)
        return 2
    except InvalidDomain as err:
        print(f"domainbot: {err}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="domainbot",
        description="Slack bot that binds your own domains to storage buckets.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the bot")
    serve.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"HTTP port for Slack's requests (default: $PORT, else {DEFAULT_PORT}); "
        "not used in Socket Mode",
    )
    commands.add_parser("check-config", help="read the settings and report problems")
    audit = commands.add_parser(
        "audit",
        help="print who changed what, newest last (reads DATABASE_URL only)",
    )
    audit.add_argument("domain", nargs="?", help="only the events of this domain")
    audit.add_argument(
        "--limit",
        type=_positive,
        default=50,
        help="how many of the newest events to print (default: 50)",
    )
    return parser


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"give a whole number of 1 or more, not {text}"
        )
    return number


def _audit(domain: str | None, limit: int) -> int:
    from bot.audit_trail import read_trail, trail_lines

    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    events = read_trail(url, limit, domain)
    if not events:
        where = f" for {domain}" if domain else ""
        print(f"domainbot: no audit events{where} yet")
        return 0
    print("\n".join(trail_lines(events)))
    return 0


def _check_config() -> int:
    from bot.services import managed_zones

    config = load_config()
    zones = managed_zones(config)
    print(
        f"domainbot: configuration OK ({len(config.file.buckets)} buckets, "
        f"{len(zones)} managed DNS zones)"
    )
    return 0


def _serve(port: int | None) -> int:
    # Imported here so that `domainbot --help` and config errors stay fast.
    from bot.app import build_app
    from bot.scheduler import Jobs
    from bot.server import HttpServer, favour_acks, serve_socket_mode
    from bot.services import build_services

    config = load_config()
    settings = config.settings
    services = build_services(config)
    app = build_app(services)
    jobs = Jobs(services)
    favour_acks()
    jobs.start()
    signal.signal(signal.SIGTERM, _stop_on_signal)
    try:
        if settings.slack_app_token is not None:
            serve_socket_mode(app, settings.slack_app_token.get_secret_value())
        else:
            server = HttpServer(
                app,
                port=port or settings.port or DEFAULT_PORT,
                requests=services.workers.requests,
                health=jobs.health.report,
            )
            server.serve_forever()
    except KeyboardInterrupt:
        logger.info("stopping")
    finally:
        jobs.stop()
        services.close()
    return 0


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    raise SystemExit(main())
