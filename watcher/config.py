"""watcher.yaml -> Settings: read, expand ``${VARS}``, validate; never fetches feeds or reads rules.

Every setting is declared once, in ``SETTINGS`` (and the tables of feed entries and channel
types below it), with its default as written in YAML, its kind and its help text; defaults,
validation and ``docs/configuration.md`` all come from these tables. Loading collects every
problem (file, YAML path, line) and raises one ConfigError holding all of them.

Regenerate the reference part of the docs with ``python -m watcher.config``.
"""

from __future__ import annotations

import functools
import os
import re
import zoneinfo
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from email.utils import getaddresses
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from watcher import __version__, envvars
from watcher.exceptions import ConfigError, Problem
from watcher.opml import HTTP_SCHEMES, config_feed_location, feed_location, read_opml
from watcher.redact import MIN_SECRET
from watcher.signatures import SIGNATURES, standard_key
from watcher.suggest import did_you_mean
from watcher.types import (
    AUTO_INTERVAL,
    SEVERITIES,
    ChannelConfig,
    DeliverySettings,
    FeedConfig,
    FeedDefaults,
    FirstPollAlerts,
    FullText,
    HealthSettings,
    Listen,
    MetricsSettings,
    PollSettings,
    RateLimit,
    ScaleSettings,
    Settings,
    WebSubSettings,
)
from watcher.units import describe, parse_duration, parse_size
from watcher.yamlnodes import check_expansion

CONFIG_ENV = "WATCHER_CONFIG"
DEFAULT_CONFIG = "watcher.yaml"

MIN_INTERVAL_S = 60  # no feed is polled more often than once a minute


def parse_interval(value: str | int) -> int:
    """A poll interval in seconds; the same ValueError on every path that sets one
    (``interval:`` in the config, ``feeds add --interval``): at least 1m."""
    seconds = parse_duration(value)
    if seconds < MIN_INTERVAL_S:
        raise ValueError(f"must be at least {_format_duration(MIN_INTERVAL_S)}, not {value}")
    return seconds


# --- kinds of values ----------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """How one setting's value is checked: ``parse`` returns the value or raises ValueError."""

    name: str  # how the docs describe it
    parse: Callable[[Any], Any]
    path: bool = False  # the parsed value is a path (or a tuple of them) under the config folder


def _need(value: Any, types: type | tuple[type, ...], what: str) -> Any:
    """``value`` if it has one of ``types`` (a bool is no integer), else ValueError."""
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise ValueError(f"must be {what}, not {describe(value)}")
    return value


def _text_kind() -> Kind:
    def parse(value: Any) -> str:
        text: str = _need(value, str, "a string")
        if not text.strip():
            raise ValueError("must not be empty")
        return text

    return Kind("string", parse)


def _integer_kind(low: int, high: int) -> Kind:
    def parse(value: Any) -> int:
        number: int = _need(value, int, "an integer")
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}, not {number}")
        return number

    return Kind(f"integer {low}-{high}", parse)


def _bool_kind() -> Kind:
    return Kind("true or false", lambda value: _need(value, bool, "true or false"))


def _duration_kind(low: int) -> Kind:
    def parse(value: Any) -> int:
        seconds = parse_duration(_need(value, (int, str), "a duration (30s, 15m, 2h, 1d)"))
        if seconds < low:
            raise ValueError(f"must be at least {_format_duration(low)}, not {value}")
        return seconds

    return Kind(f"duration, at least {_format_duration(low)}", parse)


def _interval_kind() -> Kind:
    def parse(value: Any) -> int | str:
        if value == AUTO_INTERVAL:
            return AUTO_INTERVAL
        return parse_interval(_need(value, (int, str), "a duration (30s, 15m, 2h, 1d) or auto"))

    return Kind(f"duration, at least {_format_duration(MIN_INTERVAL_S)}, or auto", parse)


def parse_listen(value: str | int) -> Listen:
    """``HOST:PORT``, ``[IPv6]:PORT``, or a bare ``PORT`` (then 127.0.0.1); ValueError."""
    text = str(value).strip()
    host, colon, port = text.rpartition(":")
    if not colon:
        host, port = "127.0.0.1", text
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be HOST:PORT (127.0.0.1:9464) or a port, not {text!r}")
    if re.search(r"[\s/]", host) or (":" in host and "[" not in text):
        raise ValueError(f"must be HOST:PORT (127.0.0.1:9464, [::1]:9464), not {text!r}")
    return Listen(host, int(port))


def _listen_kind() -> Kind:
    def parse(value: Any) -> Listen:
        return parse_listen(_need(value, (int, str), "HOST:PORT (127.0.0.1:9464) or a port"))

    return Kind("HOST:PORT, or a port (then on 127.0.0.1)", parse)


def _seconds_kind(high: int) -> Kind:
    def parse(value: Any) -> float:
        _need(value, (int, float, str), "a duration (20s, 1m)")
        if isinstance(value, str) and re.fullmatch(r"\d+\.\d+\s*s?", value.strip()):
            seconds = float(value.strip().rstrip("s"))
        else:
            seconds = float(value) if isinstance(value, float) else float(parse_duration(value))
        if not 0 < seconds <= high:
            raise ValueError(f"must be more than 0s and at most {_format_duration(high)}")
        return seconds

    return Kind(f"duration (fractions allowed), at most {_format_duration(high)}", parse)


def _size_kind(low: int) -> Kind:
    def parse(value: Any) -> int:
        size = parse_size(_need(value, (int, str), "a size (512KB, 10MB)"))
        if size < low:
            raise ValueError(f"must be at least {low} bytes, not {value}")
        return size

    return Kind("size (512KB, 10MB, 1GB; KB = 1024 bytes)", parse)


def _choice_kind(choices: Sequence[str], convert: Callable[[str], Any] = str) -> Kind:
    def parse(value: Any) -> Any:
        text = _need(value, str, "one of " + ", ".join(choices))
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}{_hint(text, choices)}")
        return convert(text)

    return Kind("one of " + ", ".join(choices), parse)


def _timezone_kind() -> Kind:
    def parse(value: Any) -> str:
        name: str = _need(value, str, "a time zone name (UTC, Europe/Kyiv)")
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zones = sorted(zoneinfo.available_timezones())
            raise ValueError(f"unknown time zone {name!r}{_hint(name, zones)}") from None
        return name

    return Kind("IANA time zone name", parse)


def _path_kind() -> Kind:
    return Kind("path", _text_kind().parse, path=True)


def _strings_kind(what: str) -> Kind:
    def parse(value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else _need(value, list, f"a list of {what}")
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise ValueError(f"must be a list of {what}, not a list holding {describe(item)}")
        return tuple(item.strip() for item in items)

    return Kind(f"list of {what} (or one)", parse)


def _paths_kind() -> Kind:
    return Kind("path or list of paths", _strings_kind("paths").parse, path=True)


def _headers_kind() -> Kind:
    def parse(value: Any) -> dict[str, str]:
        headers = _need(value, dict, "a mapping of header name to value")
        out: dict[str, str] = {}
        for name, text in headers.items():
            if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise ValueError(f"invalid header name {name!r}")
            if isinstance(text, bool) or not isinstance(text, str | int | float):
                raise ValueError(f"header {name}: must be a string, not {describe(text)}")
            if re.search(r"[\r\n\x00]", str(text)):
                raise ValueError(f"header {name}: value must be one line")
            out[name] = str(text)
        return out

    return Kind("mapping of HTTP header name to value", parse)


def _addresses_kind() -> Kind:
    def parse(value: Any) -> tuple[str, ...]:
        raw: tuple[str, ...] = _strings_kind("email addresses").parse(value)
        pairs = getaddresses(list(raw))
        for text, (_, address) in zip(raw, pairs, strict=False):
            if "@" not in address or re.search(r"[\s\x00-\x1f]", address):
                raise ValueError(f"{text!r} is not an email address")
        if not raw:
            raise ValueError("must name at least one address")
        if len(pairs) != len(raw):
            raise ValueError("must hold one email address per entry")
        return raw

    return Kind("email address or list of them", parse)


def _address_kind() -> Kind:
    def parse(value: Any) -> str:
        (address,) = _addresses_kind().parse(_need(value, str, "an email address"))
        return str(address)

    return Kind("email address", parse)


def _url_kind() -> Kind:
    def parse(value: Any) -> str:
        url: str = _need(value, str, "an http(s) URL")
        parts = urlsplit(url.strip())
        if parts.scheme.lower() not in HTTP_SCHEMES or not parts.netloc:
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url.strip()

    return Kind("http(s) URL", parse)


BROKER_SCHEMES = ("redis", "rediss")


def _broker_kind() -> Kind:
    def parse(value: Any) -> str:
        url: str = _need(value, str, "a redis:// or rediss:// URL")
        parts = urlsplit(url.strip())
        if parts.scheme.lower() not in BROKER_SCHEMES or not parts.hostname:
            scheme = parts.scheme or "no scheme"
            raise ValueError(f"must be a redis:// or rediss:// URL with a host, not {scheme}")
        try:
            parts.port  # noqa: B018 - a port that is no number raises here
        except ValueError as e:
            raise ValueError(f"has a bad port: {e}") from None
        return url.strip()

    return Kind("redis:// or rediss:// URL", parse)


def parse_broker(url: str) -> str:
    """A ``scale.broker`` URL (``watcher worker --broker``); ValueError when it is none."""
    return str(_broker_kind().parse(url))


def _format_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _hint(word: str, choices: Iterable[str]) -> str:
    return did_you_mean(word, choices)


# --- the settings tables ------------------------------------------------------------------

REQUIRED: Any = object()  # a Setting default: the key must be given


@dataclass(frozen=True)
class Setting:
    """One key of watcher.yaml; ``name`` is its YAML path relative to its table."""

    name: str
    default: Any  # as written in YAML; None: unset; REQUIRED: must be given
    help: str
    kind: Kind
    field: str = ""  # the dataclass field or options key; default: the last part of name

    @functools.cached_property
    def key(self) -> str:  # read for every key of every feed entry: computed once
        return self.field or self.name.rpartition(".")[2]


S = Setting
TEXT, BOOL, PATH = _text_kind(), _bool_kind(), _path_kind()
SEVERITY = _choice_kind(SEVERITIES)

FEED_DEFAULT_SETTINGS: tuple[Setting, ...] = (
    S(
        "interval",
        "15m",
        "How often a feed is polled; at least 1m. `auto`: as often as the feed publishes "
        "(half the mean gap between its last 20 new items), within `min_interval` and "
        "`max_interval`.",
        _interval_kind(),
        "interval_s",
    ),
    S(
        "min_interval",
        "5m",
        "With `interval: auto`: the shortest interval; at least 1m.",
        _duration_kind(MIN_INTERVAL_S),
        "min_interval_s",
    ),
    S(
        "max_interval",
        "6h",
        "With `interval: auto`: the longest interval.",
        _duration_kind(MIN_INTERVAL_S),
        "max_interval_s",
    ),
    S("timeout", "20s", "HTTP timeout of one fetch.", _seconds_kind(600), "timeout_s"),
    S(
        "first_poll_alerts",
        "recent",
        "Which matches of a feed's first poll alert: `recent` (published within "
        "`max_age`), `all`, or `none`; the others are recorded as `suppressed`.",
        _choice_kind([m.value for m in FirstPollAlerts], FirstPollAlerts),
    ),
    S(
        "max_age",
        "2d",
        "Older items are stored and matched, not alerted.",
        _duration_kind(0),
        "max_age_s",
    ),
    S(
        "headers",
        {},
        'Extra HTTP headers, e.g. `{Authorization: "Basic ${FEED_AUTH}"}`; '
        "a feed's own headers are added to these.",
        _headers_kind(),
    ),
    S(
        "full_text",
        "never",
        "Fetch a new item's article page and match its main text too (the field `article`): "
        "`never`, `short` (when the item's summary and content hold under 100 words) or "
        "`always`.",
        _choice_kind([m.value for m in FullText], FullText),
    ),
)


def _under(prefix: str, settings: Iterable[Setting]) -> tuple[Setting, ...]:
    return tuple(replace(s, name=f"{prefix}.{s.name}") for s in settings)


SETTINGS: tuple[Setting, ...] = (
    S("database", "watcher.db", "SQLite database file, created on first use.", PATH),
    S(
        "rules",
        "rules",
        "A folder of `*.yaml`/`*.yml` rule files, or a list of files and folders. "
        "The default folder may be missing; a named one may not.",
        _paths_kind(),
    ),
    *_under("defaults", FEED_DEFAULT_SETTINGS),
    S("display_timezone", "UTC", "How times are shown in alerts and tables.", _timezone_kind()),
    S("poll.workers", 16, "Concurrent fetches.", _integer_kind(1, 1024)),
    S("poll.per_host", 2, "Concurrent fetches to one host.", _integer_kind(1, 64)),
    S("poll.max_bytes", "10MB", "Largest response, after decompression.", _size_kind(1024)),
    S("poll.user_agent", f"watcher/{__version__}", "HTTP User-Agent header.", TEXT),
    S(
        "poll.max_new_alerts_per_feed",
        200,
        "A feed's poll queues at most this many alerts on each channel; its matches past "
        "that are recorded as `suppressed` (reason `over feed limit`) and one alert of kind "
        "`summary` per channel says how many and lists the first titles.",
        _integer_kind(1, 1_000_000),
    ),
    S(
        "poll.block_private",
        False,
        "Refuse to fetch from loopback and private addresses (127.0.0.0/8, 10.0.0.0/8, "
        "192.168.0.0/16, fc00::/7, ...), checked on the address connected to, on every "
        "redirect. Link-local addresses (169.254.0.0/16, fe80::/10) are always refused.",
        BOOL,
    ),
    S(
        "health.failing_after",
        5,
        "Failed polls in a row before a `failing` alert.",
        _integer_kind(1, 10_000),
    ),
    S(
        "health.quiet_after",
        "7d",
        "No new item for this long: a `quiet` alert.",
        _duration_kind(3600),
        "quiet_after_s",
    ),
    S(
        "health.notify",
        None,
        "Channels for health alerts; default: every channel.",
        _strings_kind("channel names"),
    ),
    S(
        "delivery.retry_initial",
        "30s",
        "First retry delay; it doubles after each failure.",
        _duration_kind(1),
        "retry_initial_s",
    ),
    S("delivery.retry_max", "1h", "Longest retry delay.", _duration_kind(1), "retry_max_s"),
    S(
        "delivery.give_up_after",
        "24h",
        "Retry for this long, then mark the alert `failed`.",
        _duration_kind(60),
        "give_up_after_s",
    ),
    S(
        "retention",
        "180d",
        "Unmatched items older than this are pruned.",
        _duration_kind(3600),
        "retention_s",
    ),
    S(
        "poll_log_retention",
        "30d",
        "`polls` rows older than this are pruned.",
        _duration_kind(3600),
        "poll_log_retention_s",
    ),
    S(
        "websub.listen",
        None,
        "Where `watcher run` serves the WebSub callback (`127.0.0.1:8090`); push is off "
        "unless this and `public_url` are set.",
        _listen_kind(),
    ),
    S(
        "websub.public_url",
        None,
        "The callback's URL as hubs reach it (a reverse proxy in front of `listen`): "
        "each subscription gets `<public_url>/<random token>`.",
        _url_kind(),
    ),
    S(
        "websub.safety_interval",
        "6h",
        "A feed with a live subscription is still polled, at the longer of this and its "
        "own interval.",
        _duration_kind(MIN_INTERVAL_S),
        "safety_interval_s",
    ),
    S(
        "metrics.listen",
        None,
        "Where `watcher run` serves Prometheus `/metrics` and `/healthz` (`127.0.0.1:9464`);"
        " `watcher run --metrics` overrides it. Off unless set.",
        _listen_kind(),
    ),
    S(
        "scale.broker",
        None,
        "Redis for polling on several hosts (`redis://HOST:6379/0`; `rediss://` for TLS, a "
        "password as `redis://:${REDIS_PASSWORD}@HOST:6379/0`): `watcher poll` and `watcher "
        "run` hand fetching, parsing and matching to `watcher worker` processes and store "
        "what they return. Off unless set.",
        _broker_kind(),
    ),
    S(
        "scale.task_timeout",
        "5m",
        "With `scale.broker`: how long a worker may take over one task (then it is stopped) "
        "and how long the coordinator waits for it; a task past it is queued once more, "
        "then recorded as each of its feeds' poll error.",
        _duration_kind(1),
        "task_timeout_s",
    ),
)
SECTIONS = ("feeds", "channels")  # top-level keys with their own tables below

FEED_SETTINGS: tuple[Setting, ...] = (
    S("url", REQUIRED, "http(s) URL, or a local file path (made absolute).", TEXT),
    S("name", None, "Stable name (job ids, rule scopes); default: derived from title/host.", TEXT),
    S("title", None, "Display title; default: the feed's own.", TEXT),
    S("tags", [], "Tags, for rule scopes `tag:NAME`.", _strings_kind("tags")),
    S("enabled", True, "`false` keeps the feed listed but never polled.", BOOL),
    *FEED_DEFAULT_SETTINGS,
)
OPML_SETTINGS: tuple[Setting, ...] = (
    S(
        "opml",
        REQUIRED,
        "Import every feed of this OPML file (titles kept, categories -> tags).",
        PATH,
    ),
    S("tags", [], "Tags added to every imported feed.", _strings_kind("tags")),
    S("enabled", True, "`false` disables every imported feed.", BOOL),
    *FEED_DEFAULT_SETTINGS,
)
CHANNEL_SETTINGS: tuple[Setting, ...] = (
    S("type", REQUIRED, "The channel type (see below).", TEXT),
    S("min_severity", "info", "Only alerts at or above this severity.", SEVERITY),
    S("max_alerts.count", REQUIRED, "At most this many alerts...", _integer_kind(1, 1_000_000)),
    S(
        "max_alerts.per",
        REQUIRED,
        "...per this long; the excess is summarised.",
        _duration_kind(1),
        "per_s",
    ),
)

_Check = Callable[[dict[str, Any]], list[tuple[str, str]]]


@dataclass(frozen=True)
class ChannelType:
    """A channel type's own keys and a check across them (returning (key, message) pairs)."""

    settings: tuple[Setting, ...]
    check: _Check | None = None


def _check_email(options: dict[str, Any]) -> list[tuple[str, str]]:
    smtp = options["smtp"]
    problems = []
    if smtp["tls"] and smtp["starttls"]:
        problems.append(("smtp.tls", "choose one of tls and starttls"))
    if smtp["password"] is not None and smtp["username"] is None:
        problems.append(("smtp.password", "a password needs a username"))
    if smtp["port"] is None:
        smtp["port"] = 465 if smtp["tls"] else 587 if smtp["starttls"] else 25
    return problems


def _check_webhook(options: dict[str, Any]) -> list[tuple[str, str]]:
    """``signature: standard`` needs a ``whsec_<base64>`` secret (checked here unless it
    comes from a variable that is not set; the channel checks it again when built)."""
    if options.get("signature") != "standard":
        return []
    secret = options.get("secret")
    if secret is None:
        return [("secret", "signature: standard needs a secret: whsec_ followed by base64")]
    if envvars.has_references(str(secret)):
        return []
    try:
        standard_key(str(secret))
    except ValueError as e:
        return [("secret", str(e))]
    return []


CHANNEL_TYPES: dict[str, ChannelType] = {
    "console": ChannelType(()),
    "eml": ChannelType(
        (
            S("dir", REQUIRED, "Folder for the .eml files (one per alert).", PATH),
            S("from", "watcher@localhost", "From address written in the files.", _address_kind()),
            S("to", ["reader@localhost"], "To addresses written in the files.", _addresses_kind()),
        )
    ),
    "email": ChannelType(
        (
            S("to", REQUIRED, "Recipient address(es).", _addresses_kind()),
            S("from", REQUIRED, "Sender address.", _address_kind()),
            S("subject_prefix", "[watcher]", "Start of every subject.", TEXT),
            S("smtp.host", "localhost", "SMTP server.", TEXT),
            S(
                "smtp.port",
                None,
                "SMTP port; default 25, 587 with starttls, 465 with tls.",
                _integer_kind(1, 65535),
            ),
            S("smtp.starttls", False, "Upgrade the connection with STARTTLS.", BOOL),
            S("smtp.tls", False, "Connect over TLS (SMTPS).", BOOL),
            S("smtp.username", None, "Login name, e.g. `${SMTP_USER}`.", TEXT),
            S("smtp.password", None, "Password, e.g. `${SMTP_PASSWORD}`.", TEXT),
            S("smtp.timeout", "30s", "SMTP timeout.", _seconds_kind(600)),
            S("smtp.verify", True, "Verify the server's TLS certificate.", BOOL),
            S("smtp.ca_file", None, "CA certificates (PEM) to trust for TLS.", PATH),
        ),
        _check_email,
    ),
    "webhook": ChannelType(
        (
            S("url", REQUIRED, "Where alerts are POSTed as JSON.", _url_kind()),
            S(
                "secret",
                None,
                "Signs each body: `X-Watcher-Signature: sha256=<HMAC>`, or with"
                " `signature: standard` the Standard Webhooks headers (then `whsec_<base64>`).",
                TEXT,
            ),
            S(
                "signature",
                "watcher",
                "How a `secret` signs: `watcher` (`X-Watcher-Signature`) or `standard`"
                " (Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`).",
                _choice_kind(list(SIGNATURES)),
            ),
            S("headers", {}, "Extra HTTP headers.", _headers_kind()),
            S("timeout", "10s", "HTTP timeout.", _seconds_kind(600)),
        ),
        _check_webhook,
    ),
    "apprise": ChannelType(
        (
            S(
                "urls",
                REQUIRED,
                "Apprise URLs (needs the `apprise` extra).",
                _strings_kind("Apprise URLs"),
            ),
        )
    ),
}


def documented_settings() -> list[tuple[str, Setting]]:
    """Every setting with its full YAML path, in the order the docs list them."""
    out = [(s.name, s) for s in SETTINGS]
    out += [(f"feeds[].{s.name}", s) for s in FEED_SETTINGS]
    out += [(f"feeds[].{s.name}", s) for s in OPML_SETTINGS if s.name == "opml"]
    out += [(f"channels.<name>.{s.name}", s) for s in CHANNEL_SETTINGS]
    for type_name, channel_type in CHANNEL_TYPES.items():
        out += [(f"channels.<name>.{s.name} ({type_name})", s) for s in channel_type.settings]
    return out


# --- finding and reading the file ---------------------------------------------------------


def find_config(path: str | None, env: Mapping[str, str]) -> Path:
    """``--config PATH``, else ``$WATCHER_CONFIG``, else ``./watcher.yaml``; it must exist."""
    if path:
        found, source = Path(path), "--config"
    elif env.get(CONFIG_ENV):
        found, source = Path(env[CONFIG_ENV]), f"${CONFIG_ENV}"
    else:
        found, source = Path(DEFAULT_CONFIG), "the default"
    if not found.is_file():
        message = f"config file not found (from {source}); `watcher init` writes one"
        raise ConfigError(Problem(str(found), message))
    return found


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """The validated Settings of the config file at ``path``; raises one ConfigError."""
    return read_settings(path, env)[0]


def read_settings(
    path: Path, env: Mapping[str, str] | None = None
) -> tuple[Settings, tuple[Path, ...]]:
    """``load_settings``, and the paths it looked at on disk besides the file (the rule
    files and folders it names: a folder's rule files are whatever it holds now)."""
    ctx = _Context(
        str(path), os.environ if env is None else env, Path(os.path.abspath(path)).parent
    )
    data = _read_yaml(ctx, path)
    settings = _build_settings(ctx, data, Path(os.path.abspath(path)))
    if ctx.problems:
        raise ConfigError(sorted(ctx.problems, key=lambda p: p.line or 0))
    return settings, tuple(ctx.looked_at)


@dataclass
class _Context:
    """What one load knows: the file, env, folder, each YAML path's line, the problems so far."""

    file: str
    env: Mapping[str, str]
    base: Path
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    unexpanded: set[str] = field(default_factory=set)  # paths whose ${VAR} failed
    deferred: list[Problem] = field(default_factory=list)  # missing variables not needed yet
    secrets: dict[str, str] = field(default_factory=dict)  # value -> name of each variable used
    used: dict[str, list[str]] = field(default_factory=dict)  # YAML path -> values it used
    looked_at: list[Path] = field(default_factory=list)  # paths on disk the settings depend on

    def has_unexpanded(self, key: str) -> bool:
        """Whether ``key`` or a value inside it already failed to expand (one problem is enough)."""
        return any(p == key or p.startswith((f"{key}.", f"{key}[")) for p in self.unexpanded)

    def error(self, key: str, message: str, line: int | None = None) -> None:
        message = self.hide_values(message)
        self.problems.append(Problem(self.file, message, line or self.line(key), key or None))

    def defer(self, key: str, names: Iterable[str]) -> None:
        """Record variables that only the commands using ``key`` need."""
        for name in names:
            message = f"environment variable {name} is not set"
            self.deferred.append(Problem(self.file, message, self.line(key), key))

    def hide_values(self, message: str) -> str:
        """``message`` without any value a ``${VAR}`` expanded to (a config error names the
        variable's key; it never echoes a secret)."""
        for value in sorted(filter(None, self.secrets), key=len, reverse=True):
            name = "${" + self.secrets[value] + "}"
            message = message.replace(repr(value), repr(name))
            if len(value) >= MIN_SECRET:
                message = message.replace(value, name)
        return message

    def line(self, key: str) -> int | None:
        """The line of ``key``, else of its nearest parent that has one."""
        while key and key not in self.lines:
            parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", key)
            key = parent if parent != key else ""
        return self.lines.get(key)

    def resolve(self, path: str) -> Path:
        expanded = Path(path).expanduser()
        return Path(os.path.normpath(expanded if expanded.is_absolute() else self.base / expanded))


def _read_yaml(ctx: _Context, path: Path) -> dict[str, Any]:
    """The file as plain data, every string ``${VAR}``-expanded; YAML errors raise at once."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(Problem(ctx.file, f"cannot read config file: {e}")) from e
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
        check_expansion(node, aliases="*" in text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        reason = getattr(e, "problem", None) or str(e)
        if mark is None:
            raise ConfigError(Problem(ctx.file, f"invalid YAML: {reason}")) from e
        message = f"invalid YAML: {reason} (column {mark.column + 1})"
        raise ConfigError(Problem(ctx.file, message, mark.line + 1)) from e
    data = _plain(ctx, node, "", yaml.SafeLoader("")) if node is not None else {}
    if not isinstance(data, dict):
        ctx.error("", f"the file must hold a mapping of settings, not {describe(data)}", 1)
        raise ConfigError(ctx.problems)
    return data


# libyaml's parser when PyYAML was built with it: 10,000 feeds compose in 0.2 s, not 4 s.
_COMPOSER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _plain(ctx: _Context, node: Node, path: str, loader: yaml.SafeLoader) -> Any:
    """Plain Python data of ``node``; records the line of every YAML path in ``ctx.lines``."""
    ctx.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, SequenceNode):
        return [_plain(ctx, item, f"{path}[{i}]", loader) for i, item in enumerate(node.value)]
    if isinstance(node, MappingNode):
        return _plain_mapping(ctx, node, path, loader)
    value = loader.construct_object(node, deep=True)
    return _expand(ctx, node, value, path, loader) if isinstance(value, str) else value


def _plain_mapping(ctx: _Context, node: MappingNode, path: str, loader: yaml.SafeLoader) -> Any:
    _check_duplicates(ctx, node, path)
    loader.flatten_mapping(node)  # applies `<<: *anchor` merges; later keys override them
    out: dict[str, Any] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, ScalarNode):
            ctx.error(path, "a key must be a plain word, not a list or mapping", line)
            continue
        key = _join(path, key_node.value)
        ctx.lines[key] = line
        out[key_node.value] = _plain(ctx, value_node, key, loader)
    return out


def _check_duplicates(ctx: _Context, node: MappingNode, path: str) -> None:
    """Report a key written twice in one mapping (merged ``<<`` keys may be overridden)."""
    seen: set[str] = set()
    for key_node, _ in node.value:
        if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            if key_node.value in seen:
                line = key_node.start_mark.line + 1
                ctx.error(_join(path, key_node.value), "duplicate key", line)
            seen.add(key_node.value)


# Where a missing ${VAR} is no error at load: only the commands that fetch feeds or deliver
# alerts need these values (SPEC §3), and they refuse to start while one is missing.
_DEFERRED = re.compile(r"channels\.[^.\[]+\.(?!type$).+|(defaults|feeds\[\d+\])\.headers(\..+)?")
# Feed URLs stay templates: stored and shown as written, expanded only when fetched.
_TEMPLATE = re.compile(r"feeds\[\d+\](\.url)?")


def _expand(ctx: _Context, node: Node, text: str, path: str, loader: yaml.SafeLoader) -> Any:
    """``text`` with each ``${NAME}`` replaced from env and ``$${`` made ``${``.

    A feed URL is returned as written (a template); a missing variable in a channel or a
    header is recorded in ``ctx.deferred`` instead of being an error.
    """
    if "${" not in text:
        return text
    problem = envvars.syntax_problem(text)
    if problem is not None:
        ctx.error(path, problem)
        ctx.unexpanded.add(path)
        return text
    used = envvars.values_of(text, ctx.env)
    ctx.secrets.update({value: name for name, value in used.items()})
    ctx.used[path] = list(used.values())
    absent = envvars.missing(text, ctx.env)
    if _TEMPLATE.fullmatch(path):
        ctx.defer(path, absent)
        return text
    if absent:
        if _DEFERRED.fullmatch(path):
            ctx.defer(path, absent)
        for name in absent if not _DEFERRED.fullmatch(path) else ():
            ctx.error(path, f"environment variable {name} is not set")
        ctx.unexpanded.add(path)
        return text
    expanded = envvars.expand(text, ctx.env)
    if expanded == text or not isinstance(node, ScalarNode) or node.style:  # quoted: a string
        return expanded
    # An unquoted `${PORT}` takes the type its value would have had if written in place.
    tag = loader.resolve(ScalarNode, expanded, (True, False))  # type: ignore[no-untyped-call]
    return loader.construct_object(ScalarNode(tag, expanded), deep=True)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- validating against the tables --------------------------------------------------------


def _read_mapping(
    ctx: _Context,
    value: Any,
    path: str,
    settings: Sequence[Setting],
    defaults: Mapping[str, Any],
    extra: Collection[str] = (),
) -> dict[str, Any]:
    """The values of ``settings`` (names relative to ``path``) in ``value``, else ``defaults``.

    Keys outside ``settings`` and ``extra`` are reported with the closest valid one.
    Nested names (``smtp.host``) form sub-mappings, returned as dicts under their first part.
    """
    if value is None:
        value = {}
    if not isinstance(value, dict):
        ctx.error(path, f"must be a mapping, not {describe(value)}")
        value = {}
    groups = _group(settings)
    _check_keys(ctx, value, path, [*groups, *extra])
    out: dict[str, Any] = {}
    for head, member in groups.items():
        if isinstance(member, Setting):
            out[member.key] = _read_leaf(ctx, value.get(head), path, member, defaults)
        elif value.get(head) is None:
            out[head] = defaults.get(head)
        else:
            sub_defaults = _table_defaults(ctx, member)
            out[head] = _read_mapping(ctx, value[head], _join(path, head), member, sub_defaults)
    return out


def _read_leaf(
    ctx: _Context, raw: Any, path: str, setting: Setting, defaults: Mapping[str, Any]
) -> Any:
    if raw is None:
        if setting.default is REQUIRED:
            ctx.error(path, f"missing required key {setting.name!r}")
        return defaults.get(setting.key)
    try:
        value = setting.kind.parse(raw)
    except ValueError as e:
        if not ctx.has_unexpanded(_join(path, setting.name)):
            ctx.error(_join(path, setting.name), str(e))
        return defaults.get(setting.key)
    return _resolve_paths(ctx, value) if setting.kind.path else value


def _resolve_paths(ctx: _Context, value: str | tuple[str, ...]) -> Path | tuple[Path, ...]:
    return ctx.resolve(value) if isinstance(value, str) else tuple(map(ctx.resolve, value))


Groups = dict[str, Setting | tuple[Setting, ...]]
# The groups of each tuple of settings (read once per feed entry): id -> (tuple, groups).
_GROUPS: dict[int, tuple[Sequence[Setting], Groups]] = {}


def _group(settings: Sequence[Setting]) -> Groups:
    """Settings by their first name part; nested ones as a tuple with that part removed."""
    known = _GROUPS.get(id(settings))
    if known is not None and known[0] is settings:
        return known[1]
    groups = _grouped(settings)
    if isinstance(settings, tuple):
        _GROUPS[id(settings)] = (settings, groups)
    return groups


def _grouped(settings: Sequence[Setting]) -> Groups:
    groups: Groups = {}
    for s in settings:
        head, dot, rest = s.name.partition(".")
        if not dot:
            groups[head] = s
        else:
            before = groups.get(head, ())
            assert isinstance(before, tuple), s.name
            groups[head] = (*before, replace(s, name=rest))
    return groups


def _table_defaults(ctx: _Context, settings: Sequence[Setting]) -> dict[str, Any]:
    """The parsed defaults of a table; a group with a required key defaults to None."""
    out: dict[str, Any] = {}
    for head, member in _group(settings).items():
        if isinstance(member, tuple):
            required = any(s.default is REQUIRED for s in member)
            out[head] = None if required else _table_defaults(ctx, member)
        elif member.default is None or member.default is REQUIRED:
            out[member.key] = None
        else:
            value = member.kind.parse(member.default)
            out[member.key] = _resolve_paths(ctx, value) if member.kind.path else value
    return out


def _check_keys(ctx: _Context, value: Mapping[str, Any], path: str, valid: list[str]) -> None:
    for key in value:
        if key not in valid:
            hint = _hint(key, valid) or f"; valid keys: {', '.join(sorted(valid))}"
            ctx.error(_join(path, key), f"unknown key {key!r}{hint}")


# --- building Settings --------------------------------------------------------------------


def _build_settings(ctx: _Context, data: dict[str, Any], path: Path) -> Settings:
    values = _read_mapping(ctx, data, "", SETTINGS, _table_defaults(ctx, SETTINGS), SECTIONS)
    channels = _read_channels(ctx, data.get("channels"))
    health = values["health"]
    _check_channel_names(ctx, health["notify"] or (), channels, "health.notify")
    delivery = values["delivery"]
    if delivery["retry_max_s"] < delivery["retry_initial_s"]:
        ctx.error("delivery.retry_max", "must not be shorter than retry_initial")
    feeds = _read_feeds(ctx, data.get("feeds"), values["defaults"])  # before auto is settled
    defaults = dict(values["defaults"])
    auto = _settle_interval(ctx, defaults, "defaults")
    return Settings(
        path=path,
        database=values["database"],
        rules=_expand_rules(ctx, values["rules"], given=data.get("rules") is not None),
        defaults=FeedDefaults(**defaults, interval_auto=auto),
        display_timezone=values["display_timezone"],
        poll=PollSettings(**values["poll"]),
        feeds=feeds,
        channels=channels,
        health=HealthSettings(**health),
        delivery=DeliverySettings(**delivery),
        retention_s=values["retention_s"],
        poll_log_retention_s=values["poll_log_retention_s"],
        websub=_websub(ctx, values["websub"]),
        metrics=MetricsSettings(**values["metrics"]),
        scale=ScaleSettings(**values["scale"]),
        unresolved=tuple(sorted(ctx.deferred, key=lambda p: p.line or 0)),
    )


def _settle_interval(
    ctx: _Context, values: dict[str, Any], path: str, *, report: bool = True
) -> bool:
    """Whether ``interval`` is ``auto`` (it then starts at ``min_interval``); reports
    bounds the wrong way round. ``values`` are a feed's or the defaults' settings."""
    if report and values["min_interval_s"] > values["max_interval_s"]:
        ctx.error(f"{path}.min_interval", "must not be longer than max_interval")
    if values["interval_s"] != AUTO_INTERVAL:
        return False
    values["interval_s"] = values["min_interval_s"]
    return True


def _websub(ctx: _Context, values: dict[str, Any]) -> WebSubSettings:
    """``websub:``: ``listen`` and ``public_url`` come together (or neither: push off)."""
    listen, public_url = values["listen"], values["public_url"]
    if listen is not None and public_url is None:
        ctx.error("websub.public_url", "needed with websub.listen: the URL hubs call back")
    if public_url is not None and listen is None:
        ctx.error("websub.listen", "needed with websub.public_url: where the callback listens")
    return WebSubSettings(**values)


def rule_files_in(folder: Path) -> list[Path]:
    """A folder's rule files: its ``*.yaml`` and ``*.yml`` files, hidden ones left out, sorted."""
    found = (p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return sorted(p for p in found if not p.name.startswith("."))


def _expand_rules(ctx: _Context, paths: tuple[Path, ...], given: bool) -> tuple[Path, ...]:
    """Rule files: folders become their sorted ``*.yaml``/``*.yml`` files."""
    files: list[Path] = []
    for path in paths:
        ctx.looked_at.append(path)
        if path.is_dir():
            files += rule_files_in(path)
        elif path.is_file():
            files.append(path)
        elif given:
            ctx.error("rules", f"no such rule file or folder: {path}")
    return tuple(dict.fromkeys(files))


def _check_channel_names(
    ctx: _Context, names: Iterable[str], channels: Mapping[str, ChannelConfig], key: str
) -> None:
    for name in names:
        if name not in channels:
            ctx.error(key, f"unknown channel {name!r}{_hint(name, channels)}")


def _read_feeds(ctx: _Context, value: Any, defaults: Mapping[str, Any]) -> tuple[FeedConfig, ...]:
    """Every feed of ``feeds:``; a bare string entry is a URL."""
    if value is None:
        return ()
    if not isinstance(value, list):
        ctx.error("feeds", f"must be a list of feeds, not {describe(value)}")
        return ()
    feed_defaults = {**_table_defaults(ctx, FEED_SETTINGS), **defaults}
    opml_defaults = {**_table_defaults(ctx, OPML_SETTINGS), **defaults}
    feeds: list[tuple[str, FeedConfig]] = []
    for i, entry in enumerate(value):
        path = f"feeds[{i}]"
        if isinstance(entry, str):
            entry = {"url": entry}
        if not isinstance(entry, dict):
            ctx.error(path, f"must be {{url: ...}} or {{opml: ...}}, not {describe(entry)}")
        else:
            is_opml = "opml" in entry
            table = OPML_SETTINGS if is_opml else FEED_SETTINGS
            values = _read_mapping(
                ctx, entry, path, table, opml_defaults if is_opml else feed_defaults
            )
            values["headers"] = {
                **defaults["headers"],
                **values["headers"],
            }  # added to the defaults
            own_bounds = "min_interval" in entry or "max_interval" in entry
            auto = _settle_interval(ctx, values, path, report=own_bounds)
            found = _read_opml_entry(ctx, values, path) if is_opml else [_feed(ctx, values, path)]
            source = AUTO_INTERVAL if auto else "feed" if "interval" in entry else "default"
            feeds += [(path, replace(feed, interval_source=source)) for feed in found]
    _check_feed_names(ctx, feeds)
    return tuple(feed for _, feed in feeds)


def _feed(ctx: _Context, values: dict[str, Any], path: str) -> FeedConfig:
    """One feed entry's FeedConfig; a local path is made absolute, a URL is kept a template."""
    if values["name"] is not None and values["name"].startswith("tag:"):
        ctx.error(f"{path}.name", "a feed name may not start with 'tag:' (rules use it for tags)")
    url = values["url"] or ""
    try:
        if envvars.has_references(url):
            _check_url_template(ctx, url)
        elif url:
            values["url"] = envvars.escape(feed_location(envvars.expand(url, {}), ctx.base))
    except (ValueError, ConfigError) as e:
        ctx.error(f"{path}.url", str(e))
    return FeedConfig(**values)


def _check_url_template(ctx: _Context, url: str) -> None:
    """A URL holding ``${VAR}`` must give an http(s) URL; checked when its variables are set."""
    if envvars.missing(url, ctx.env):
        return
    parts = urlsplit(envvars.expand(url, ctx.env))
    if parts.scheme.lower() not in HTTP_SCHEMES or not parts.netloc:
        names = ", ".join("${" + name + "}" for name in envvars.references(url))
        raise ValueError(f"the URL made with {names} is not an http(s) URL with a host")


def _check_feed_names(ctx: _Context, feeds: Iterable[tuple[str, FeedConfig]]) -> None:
    seen: dict[str, str] = {}
    for path, feed in feeds:
        if feed.name is not None and feed.name in seen:
            also = seen[feed.name]
            ctx.error(f"{path}.name", f"duplicate feed name {feed.name!r} (also {also})")
        elif feed.name is not None:
            seen[feed.name] = path


def _read_opml_entry(ctx: _Context, values: dict[str, Any], path: str) -> list[FeedConfig]:
    opml: Path | None = values.pop("opml")
    extra_tags: tuple[str, ...] = values.pop("tags")
    if opml is None:
        return []
    try:
        feeds = read_opml(opml)
    except ConfigError as e:
        for problem in e.problems:
            where = f"{problem.file}:{problem.line}" if problem.line else problem.file
            ctx.error(f"{path}.opml", f"{where}: {problem.message}")
        return []
    found = []
    for feed in feeds:
        try:
            url = envvars.escape(config_feed_location(feed.url, opml.parent, ctx.base))
        except ValueError as e:
            ctx.error(f"{path}.opml", f"{opml}: entry {feed.url!r}: {e}")
            continue
        tags = tuple(dict.fromkeys(feed.tags + extra_tags))
        found.append(replace(feed, **values, url=url, tags=tags))
    return found


def _read_channels(ctx: _Context, value: Any) -> dict[str, ChannelConfig]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        ctx.error(
            "channels", f"must be a mapping of channel name to settings, not {describe(value)}"
        )
        return {}
    channels = {}
    for name, body in value.items():
        channel = _read_channel(ctx, name, body, f"channels.{name}")
        if channel is not None:
            channels[name] = channel
    return channels


def _read_channel(ctx: _Context, name: str, body: Any, path: str) -> ChannelConfig | None:
    """One channel: the common keys, then its type's own keys and check."""
    channel_type = _channel_type(ctx, body, path)
    if channel_type is None:
        return None
    table = CHANNEL_SETTINGS + channel_type.settings
    values = _read_mapping(ctx, body, path, table, _table_defaults(ctx, table))
    own = _group(channel_type.settings)
    options = {k: v for k, v in values.items() if k in own and v is not None}
    for key, message in channel_type.check(options) if channel_type.check else ():
        ctx.error(_join(path, key), message)
    limit = values["max_alerts"]
    return ChannelConfig(
        name=name,
        type=body["type"],
        options=options,
        min_severity=values["min_severity"],
        max_alerts=RateLimit(limit["count"], limit["per_s"]) if limit else None,
        secrets=tuple(
            dict.fromkeys(v for key, vs in ctx.used.items() if _is_under(key, path) for v in vs)
        ),
        unresolved=tuple(p for p in ctx.deferred if _is_under(p.key, path)),
    )


def _is_under(key: str | None, path: str) -> bool:
    return key is not None and (key == path or key.startswith((f"{path}.", f"{path}[")))


def require_variables(settings: Settings, under: str = "") -> None:
    """Raise ConfigError naming each variable not set that the values ``under`` a YAML path
    need (``channels.hook``; empty: every channel, feed URL and header)."""
    problems = [p for p in settings.unresolved if not under or _is_under(p.key, under)]
    if problems:
        raise ConfigError(problems)


def _channel_type(ctx: _Context, body: Any, path: str) -> ChannelType | None:
    """The type a channel's ``type:`` names; None (and a problem) when it names none."""
    valid = f"valid types: {', '.join(sorted(CHANNEL_TYPES))}"
    if not isinstance(body, dict):
        ctx.error(path, f"must be a mapping with a 'type' ({valid}), not {describe(body)}")
        return None
    type_name = body.get("type")
    if type_name is None:
        ctx.error(path, f"missing required key 'type' ({valid})")
        return None
    found = CHANNEL_TYPES.get(type_name) if isinstance(type_name, str) else None
    if found is None:
        hint = _hint(str(type_name), CHANNEL_TYPES)
        ctx.error(f"{path}.type", f"unknown channel type {type_name!r}{hint} ({valid})")
    return found


# --- docs ---------------------------------------------------------------------------------


def settings_reference() -> str:
    """The Markdown reference of every setting, as docs/configuration.md holds it."""
    lines = ["| Setting | Default | Value | Meaning |", "|---|---|---|---|"]
    for name, s in documented_settings():
        default = _doc_default(s.default)
        if name.startswith("feeds[].") and s in FEED_DEFAULT_SETTINGS:
            default = f"`defaults.{s.name}`"
        lines.append(f"| `{name}` | {default} | {s.kind.name} | {s.help} |")
    return "\n".join(lines) + "\n"


def _doc_default(default: Any) -> str:
    if default is REQUIRED:
        return "required"
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, list):
        return f"`[{', '.join(default)}]`"
    return f"`{default}`" if default != {} else "`{}`"


if __name__ == "__main__":
    print(settings_reference(), end="")
