"""`config show|get|set|reset|history`: the settings on the config topic."""

from __future__ import annotations

import argparse
import asyncio
import sys

from streams.settings import Settings


def _config(args: argparse.Namespace) -> int:
    import json

    from streams.control import config
    from streams.kafka.topics import ensure_topics

    settings = Settings()
    asyncio.run(ensure_topics(settings.kafka))
    if args.action == "history":
        for change in asyncio.run(config.history(settings, args.section)):
            shown = config.shown_json(args.section, change["values_json"])
            print(f"{change['changed_at']:%Y-%m-%d %H:%M:%S}  {change['author'] or '?'}  {shown}")
        return 0
    state = asyncio.run(config.read_state(settings))
    if args.action == "reset" and args.bad_keys:
        asyncio.run(config.remove_bad_keys(settings, list(state.bad_keys.values())))
        for key in state.bad_keys:
            print(f"removed the key {key!r}")
        print(f"bad keys removed: {len(state.bad_keys)}")
        return 0
    if args.action in ("set", "reset"):
        if args.action == "set":
            values = {
                **state.overrides.get(args.section, {}),
                **config.parse_assignments(args.values),
            }
            others = {k: v for k, v in state.overrides.items() if k != args.section}
            try:
                config.validated(args.section, values, others)
            except config.ConfigError as error:
                print(f"refused: {error}", file=sys.stderr)
                return 2
        else:
            values = None
        asyncio.run(config.publish(settings, args.section, values))
        print(f"{args.section}: {config.shown(args.section, values)}")
        return 0
    effective = config.hide_secrets(state.settings().model_dump(mode="json"))
    if args.action == "get":
        if args.section not in effective:
            print(f"unknown section {args.section!r}", file=sys.stderr)
            return 2
        effective = {args.section: effective[args.section]}
    for section, values in effective.items():
        origin = "config topic" if section in state.overrides else "defaults/file/environment"
        print(f"[{section}]  ({origin})")
        for key, value in values.items():
            print(f"  {key} = {json.dumps(value)}")
    for section, reason in state.rejected.items():
        print(f"REFUSED on the config topic, {section}: {reason}")
    return 1 if state.rejected else 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`config` and its actions, all run by one handler."""
    config_cmd = sub.add_parser(
        "config", help="settings on the config topic (they win over file and environment)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    config_cmd.add_parser("show", help="the effective settings, secrets hidden").set_defaults(
        run=_config
    )
    get = config_cmd.add_parser("get", help="one section's effective values")
    get.add_argument("section")
    get.set_defaults(run=_config)
    set_ = config_cmd.add_parser(
        "set", help="change keys of a section, e.g. `config set match threshold_v1=0.5`"
    )
    set_.add_argument("section")
    set_.add_argument("values", nargs="+", metavar="KEY=VALUE")
    set_.set_defaults(run=_config)
    reset = config_cmd.add_parser(
        "reset",
        help="a section back to its default (a tombstone); --bad-keys removes the messages "
        "whose key is not UTF-8 (`config show` lists them as REFUSED)",
    )
    reset_what = reset.add_mutually_exclusive_group(required=True)
    reset_what.add_argument("section", nargs="?", help="the section to reset")
    reset_what.add_argument(
        "--bad-keys", action="store_true", help="remove every message whose key is not UTF-8"
    )
    reset.set_defaults(run=_config)
    history = config_cmd.add_parser("history", help="every change of a section")
    history.add_argument("section")
    history.set_defaults(run=_config)
