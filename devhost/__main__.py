"""`python -m devhost`: serve a Python v2 function app locally, like `func start`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from devhost.blob_trigger import BlobTriggerError
from devhost.config import HostConfigError
from devhost.functions import AppIndexError
from devhost.host import HostLockedError, configure_logging, run_host
from devhost.routing import RouteTemplateError
from devhost.timer_trigger import TimerTriggerError


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """The command line: `python -m devhost [start] [--app-dir DIR] [--port N] ...`."""
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("command", nargs="?", default="start", choices=["start"])  # or `token`
    parser.add_argument("--app-dir", type=Path, default=Path.cwd(), help="folder of host.json")
    parser.add_argument("--module", default="function_app", help="module defining the app")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (loopback by default)")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: APP_DIR/.devhost")
    parser.add_argument(
        "--settings-file", type=Path, default=None, help="default: APP_DIR/local.settings.json"
    )
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["token"]:  # mint a token from the local dev issuer
        from devhost.dev_issuer import main as token_main

        return token_main(argv[1:])
    arguments = parse_arguments(argv)
    configure_logging(logging.DEBUG if arguments.verbose else logging.INFO)
    try:
        run_host(
            arguments.app_dir,
            port=arguments.port,
            data_dir=arguments.data_dir,
            module_name=arguments.module,
            listen_host=arguments.host,
            settings_file=arguments.settings_file,
        )
    except (
        AppIndexError,
        HostConfigError,
        HostLockedError,
        BlobTriggerError,
        TimerTriggerError,
        RouteTemplateError,
    ) as error:
        logging.getLogger("devhost").error("Cannot start: %s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
