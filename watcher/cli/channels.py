"""``watcher channels``: list the configured channels and send a test alert through one."""

from __future__ import annotations

import sys

import click

from watcher.cli.base import Context, cli, emit_json, handle_errors, now_utc
from watcher.cli.table import print_table
from watcher.deliver.channels import make_channel
from watcher.deliver.message import sample_message
from watcher.exceptions import DeliveryError
from watcher.printable import printable
from watcher.store import Store
from watcher.store.state import instance_id
from watcher.suggest import not_found
from watcher.types import ChannelConfig


@cli.group(invoke_without_command=True)
@click.pass_context
@handle_errors
def channels(ctx: click.Context) -> None:
    """List the configured channels (secrets masked).

    \b
    Examples:
      watcher channels
      watcher channels test analysts
    """
    if ctx.invoked_subcommand is not None:
        return
    obj: Context = ctx.obj
    settings = obj.settings()
    shown = [
        {"name": name, "type": cfg.type, "describe": _describe(cfg)}
        for name, cfg in settings.channels.items()
    ]
    if obj.json:
        emit_json(shown)
        return
    if not shown:
        click.echo("no channels configured")
        return
    print_table(
        ["name", "type", "min severity", "target"],
        [
            [name, cfg.type, cfg.min_severity, _target(entry["describe"], cfg.type, name)]
            for (name, cfg), entry in zip(settings.channels.items(), shown, strict=True)
        ],
        max_width=100,
    )


def _describe(cfg: ChannelConfig) -> str:
    """The channel's own description; one that lacks a ${VAR} says which instead."""
    if cfg.unresolved:
        missing = "; ".join(dict.fromkeys(p.message for p in cfg.unresolved))
        return f"{cfg.type} {cfg.name} (cannot send: {missing})"
    return make_channel(cfg, "").describe()


def _target(described: str, type_: str, name: str) -> str:
    """What ``describe()`` says after its leading type and name: where alerts go."""
    return described.removeprefix(f"{type_} {name}").strip() or "-"


@channels.command("test")
@click.argument("name")
@click.pass_obj
@handle_errors
def test_channel(obj: Context, name: str) -> None:
    """Send a test alert through one channel and report the outcome (exit 1 on failure).

    \b
    Example:
      watcher channels test ops-hook
    """
    settings = obj.settings()
    config = settings.channels.get(name)
    if config is None:
        raise not_found("channel", name, settings.channels)
    with Store(settings.database) as store:
        channel = make_channel(config, instance_id(store))
    message = sample_message(name, now_utc(), settings.display_timezone)
    try:
        channel.send(message)
    except DeliveryError as e:
        kind = "permanent" if e.permanent else "transient"
        _report(obj, name, channel.describe(), False, f"{e.message} ({kind})")
        sys.exit(1)
    _report(obj, name, channel.describe(), True, None)


def _report(obj: Context, name: str, described: str, ok: bool, error: str | None) -> None:
    if obj.json:
        emit_json({"channel": name, "describe": described, "ok": ok, "error": error})
    elif ok:
        click.echo(f"sent a test alert through {printable(described)}")
    else:
        shown = f"{printable(described)}: {printable(error or '')}"
        click.echo(f"error: test alert not delivered through {shown}", err=True)
