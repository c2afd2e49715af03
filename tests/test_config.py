"""watcher.yaml loading: the SPEC example, every kind of error, env vars, paths, rules, OPML."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from watcher import __version__
from watcher.config import (
    find_config,
    load_settings,
    require_variables,
)
from watcher.exceptions import ConfigError, Problem
from watcher.opml import read_opml, write_opml
from watcher.types import (
    ChannelConfig,
    DeliverySettings,
    FeedConfig,
    FeedDefaults,
    FirstPollAlerts,
    HealthSettings,
    PollSettings,
    RateLimit,
    Settings,
)
from watcher.units import parse_duration, parse_size

SPEC_EXAMPLE = """\
database: data/watcher.db          # SQLite file, created on first use
rules: rules/                      # a folder of *.yaml rule files, or a list of files
defaults:
  interval: 15m                    # per-feed poll interval; minimum 1m
  timeout: 20s
  first_poll_alerts: recent        # recent | all | none
  max_age: 2d
  headers: {}
display_timezone: UTC
poll:
  workers: 16
  per_host: 2
  max_bytes: 10MB
  user_agent: "watcher/<version> (+https://example.org)"
feeds:
  - url: https://example.org/world.rss
    name: example-world
    tags: [ukraine, russia]
    interval: 5m
  - url: data/feeds/sample.xml
  - opml: feeds.opml
channels:
  console: {type: console}
  analysts:
    type: email
    to: [desk@example.org]
    from: watcher@example.org
    smtp: {host: localhost, port: 25, starttls: false, tls: false, username: "${SMTP_USER}", \
password: "${SMTP_PASSWORD}"}
    min_severity: medium
    max_alerts: {count: 30, per: 1h}
  ops-hook:
    type: webhook
    url: https://hooks.example.org/watcher
    secret: "${WEBHOOK_SECRET}"
    headers: {Authorization: "Bearer ${HOOK_TOKEN}"}
  chat:
    type: apprise
    urls: ["${SLACK_APPRISE_URL}", "ntfy://ntfy.example.org/kursk"]
  files: {type: eml, dir: data/outbox}
health:
  failing_after: 5
  quiet_after: 7d
  notify: [ops-hook]
delivery:
  retry_initial: 30s
  retry_max: 1h
  give_up_after: 24h
retention: 180d
poll_log_retention: 30d
"""

SPEC_ENV = {
    "SMTP_USER": "mailer",
    "SMTP_PASSWORD": "s3cret",
    "WEBHOOK_SECRET": "hook-key",
    "HOOK_TOKEN": "tok",
    "SLACK_APPRISE_URL": "slack://a/b/c",
}

OPML = """\
<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>subs</title></head>
  <body>
    <outline text="Ukraine">
      <outline type="rss" text="Kyiv Post" title="Kyiv Post" xmlUrl="https://kyiv.example/rss"
               category="/War/Front,osint"/>
      <outline text="Local">
        <outline type="rss" text="Sample" xmlUrl="local/sample.xml"/>
      </outline>
    </outline>
    <outline type="rss" text="Top level" xmlUrl="http://top.example/feed"/>
  </body>
</opml>
"""


def write(folder: Path, text: str, name: str = "watcher.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path, env: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env or {})
    return info.value.problems


def line_of(text: str, marker: str) -> int:
    """1-based line of the first line of ``text`` holding ``marker``."""
    lines = textwrap.dedent(text).splitlines()
    return next(i for i, line in enumerate(lines, 1) if marker in line)


# --- the SPEC example ---------------------------------------------------------------------


def test_spec_example_loads_into_expected_settings(tmp_path: Path) -> None:
    config = write(tmp_path, SPEC_EXAMPLE)
    write(tmp_path, OPML, "feeds.opml")
    write(tmp_path, "- id: a\n  any: [x]\n", "rules/a.yaml")
    write(tmp_path, "- id: b\n  any: [y]\n", "rules/b.yml")

    settings = load_settings(config, SPEC_ENV)

    common = {"interval_s": 900, "timeout_s": 20.0, "max_age_s": 172800, "headers": {}}
    common |= {"first_poll_alerts": FirstPollAlerts.RECENT, "enabled": True}
    expected = Settings(
        path=config,
        database=tmp_path / "data/watcher.db",
        rules=(tmp_path / "rules/a.yaml", tmp_path / "rules/b.yml"),
        defaults=FeedDefaults(),
        display_timezone="UTC",
        poll=PollSettings(16, 2, 10 * 1024 * 1024, "watcher/<version> (+https://example.org)"),
        feeds=(
            FeedConfig(
                **common | {"interval_s": 300, "interval_source": "feed"},
                url="https://example.org/world.rss",
                name="example-world",
                tags=("ukraine", "russia"),
            ),
            FeedConfig(**common, url=str(tmp_path / "data/feeds/sample.xml")),
            FeedConfig(
                **common,
                url="https://kyiv.example/rss",
                title="Kyiv Post",
                tags=("Ukraine", "War", "Front", "osint"),
            ),
            FeedConfig(
                **common,
                url=str(tmp_path / "local/sample.xml"),
                title="Sample",
                tags=("Ukraine", "Local"),
            ),
            FeedConfig(**common, url="http://top.example/feed", title="Top level"),
        ),
        channels={
            "console": ChannelConfig("console", "console"),
            "analysts": ChannelConfig(
                "analysts",
                "email",
                {
                    "to": ("desk@example.org",),
                    "from": "watcher@example.org",
                    "subject_prefix": "[watcher]",
                    "smtp": {
                        "host": "localhost",
                        "port": 25,
                        "starttls": False,
                        "tls": False,
                        "username": "mailer",
                        "password": "s3cret",
                        "timeout": 30.0,
                        "verify": True,
                        "ca_file": None,
                    },
                },
                min_severity="medium",
                max_alerts=RateLimit(30, 3600),
                secrets=("mailer", "s3cret"),
            ),
            "ops-hook": ChannelConfig(
                "ops-hook",
                "webhook",
                {
                    "url": "https://hooks.example.org/watcher",
                    "secret": "hook-key",
                    "signature": "watcher",
                    "headers": {"Authorization": "Bearer tok"},
                    "timeout": 10.0,
                },
                secrets=("hook-key", "tok"),
            ),
            "chat": ChannelConfig(
                "chat",
                "apprise",
                {"urls": ("slack://a/b/c", "ntfy://ntfy.example.org/kursk")},
                secrets=("slack://a/b/c",),
            ),
            "files": ChannelConfig(
                "files",
                "eml",
                {
                    "dir": tmp_path / "data/outbox",
                    "from": "watcher@localhost",
                    "to": ("reader@localhost",),
                },
            ),
        },
        health=HealthSettings(5, 7 * 86400, ("ops-hook",)),
        delivery=DeliverySettings(30, 3600, 86400),
        retention_s=180 * 86400,
        poll_log_retention_s=30 * 86400,
    )
    assert settings == expected


def test_empty_file_gives_documented_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), {})
    assert settings.database == tmp_path / "watcher.db"
    assert settings.rules == ()
    assert settings.defaults == FeedDefaults()
    assert settings.poll == PollSettings(user_agent=f"watcher/{__version__}")
    assert settings.health == HealthSettings()
    assert settings.delivery == DeliverySettings()
    assert (settings.feeds, settings.channels) == ((), {})


def test_feed_overrides_every_default_key(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """\
        defaults:
          interval: 10m
          timeout: 5s
          first_poll_alerts: none
          max_age: 1d
          headers: {X-A: "1", X-B: "2"}
        feeds:
          - url: https://a.example/rss
          - url: https://b.example/rss
            interval: 1h30m
            timeout: 2.5s
            first_poll_alerts: all
            max_age: 3d
            headers: {X-B: "override", X-C: 3}
            enabled: false
            title: B
        """,
    )
    a, b = load_settings(config, {}).feeds
    assert (a.interval_s, a.timeout_s, a.first_poll_alerts, a.max_age_s) == (
        600,
        5.0,
        "none",
        86400,
    )
    assert a.headers == {"X-A": "1", "X-B": "2"}
    assert (b.interval_s, b.timeout_s, b.first_poll_alerts, b.max_age_s) == (
        5400,
        2.5,
        "all",
        259200,
    )
    assert b.headers == {"X-A": "1", "X-B": "override", "X-C": "3"}
    assert (b.enabled, b.title) == (False, "B")


# --- errors -------------------------------------------------------------------------------

ERROR_CASES = [
    ("databse: x.db\n", "databse", "databse", "unknown key 'databse'; did you mean 'database'?"),
    (
        "feeds:\n  - url: https://a.example/\n  - url: https://b.example/\n"
        "  - url: https://c.example/\n    intervl: 5m\n",
        "intervl",
        "feeds[2].intervl",
        "did you mean 'interval'?",
    ),
    (
        "channels:\n  analysts:\n    type: email\n    to: a@example.org\n    from: w@example.org\n"
        "    smtp:\n      host: mail\n      port: twenty-five\n",
        "port:",
        "channels.analysts.smtp.port",
        "must be an integer, not a string ('twenty-five')",
    ),
    (
        "channels:\n  m:\n    type: email\n    to: a@x.org\n    from: w@x.org\n"
        "    smtp: {port: 70000}\n",
        "smtp:",
        "channels.m.smtp.port",
        "between 1 and 65535",
    ),
    ("defaults:\n  interval: 30s\n", "interval", "defaults.interval", "at least 1m, not 30s"),
    ("defaults:\n  interval: soon\n", "interval", "defaults.interval", "invalid duration 'soon'"),
    (
        "defaults:\n  first_poll_alerts: recnt\n",
        "first_poll",
        "defaults.first_poll_alerts",
        "'recnt' is not one of recent, all, none; did you mean 'recent'?",
    ),
    (
        "channels:\n  c: {type: console, min_severity: urgent}\n",
        "urgent",
        "channels.c.min_severity",
        "not one of info, low, medium, high, critical",
    ),
    ("display_timezone: Mars/Olympus\n", "Mars", "display_timezone", "unknown time zone"),
    (
        "channels:\n  c:\n    type: emial\n",
        "emial",
        "channels.c.type",
        "unknown channel type 'emial'; did you mean 'email'? "
        "(valid types: apprise, console, email, eml, webhook)",
    ),
    ("channels:\n  c: {dir: x}\n", "c:", "channels.c", "missing required key 'type'"),
    ("channels:\n  c: console\n", "c:", "channels.c", "must be a mapping with a 'type'"),
    (
        "channels:\n  hook:\n    type: webhook\n",
        "hook:",
        "channels.hook",
        "missing required key 'url'",
    ),
    (
        "channels:\n  hook: {type: webhook, url: ftp://x.example}\n",
        "hook",
        "channels.hook.url",
        "is not an http(s) URL",
    ),
    (
        "channels:\n  c: {type: console, colour: red}\n",
        "colour",
        "channels.c.colour",
        "unknown key 'colour'; valid keys: max_alerts, min_severity, type",
    ),
    (
        "channels:\n  c:\n    type: console\n    max_alerts: {count: 3}\n",
        "max_alerts",
        "channels.c.max_alerts",
        "missing required key 'per'",
    ),
    (
        "channels:\n  c: {type: console}\nhealth:\n  notify: [ops, c]\n",
        "notify",
        "health.notify",
        "unknown channel 'ops'",
    ),
    (
        "feeds:\n  - {url: 'https://a.example/', name: a}\n"
        "  - {url: 'https://b.example/', name: a}\n",
        "b.example",
        "feeds[1].name",
        "duplicate feed name 'a' (also feeds[0])",
    ),
    (
        "feeds:\n  - url: ftp://files.example/feed.xml\n",
        "ftp",
        "feeds[0].url",
        "unsupported URL scheme 'ftp'",
    ),
    ("feeds:\n  - name: nourl\n", "name", "feeds[0]", "missing required key 'url'"),
    ("feeds:\n  - {url: x.xml, tags: [1]}\n", "tags", "feeds[0].tags", "must be a list of tags"),
    ("feeds: https://a.example/\n", "feeds", "feeds", "must be a list of feeds"),
    ("poll:\n  max_bytes: 10XB\n", "max_bytes", "poll.max_bytes", "invalid size '10XB'"),
    ("poll:\n  workers: true\n", "workers", "poll.workers", "must be an integer, not a boolean"),
    ("poll: [1, 2]\n", "poll", "poll", "must be a mapping, not a list"),
    ("retention: forever\n", "retention", "retention", "invalid duration 'forever'"),
    ("rules: [missing.yaml]\n", "rules", "rules", "no such rule file or folder"),
    ("database: a.db\ndatabase: b.db\n", "b.db", "database", "duplicate key"),
    (
        "delivery:\n  retry_initial: 2h\n  retry_max: 1h\n",
        "retry_max",
        "delivery.retry_max",
        "must not be shorter than retry_initial",
    ),
    (
        "channels:\n  m:\n    type: email\n    to: a@x.org\n    from: w@x.org\n"
        "    smtp: {tls: true, starttls: true}\n",
        "smtp",
        "channels.m.smtp.tls",
        "choose one of tls and starttls",
    ),
    (
        "channels:\n  m:\n    type: email\n    to: [not-an-address]\n    from: w@x.org\n",
        "not-an",
        "channels.m.to",
        "'not-an-address' is not an email address",
    ),
    (
        'defaults:\n  headers: {X-Evil: "a\\r\\nBcc: x"}\n',
        "X-Evil",
        "defaults.headers",
        "header X-Evil: value must be one line",
    ),
    ("user_agent: x\n", "user_agent", "user_agent", "unknown key 'user_agent'"),
    (
        "feeds:\n  - {url: 'https://a.example/', name: 'tag:x'}\n",
        "tag:x",
        "feeds[0].name",
        "may not start with 'tag:'",
    ),
]


@pytest.mark.parametrize(("text", "marker", "key", "message"), ERROR_CASES)
def test_each_error_names_file_key_line_and_reason(
    tmp_path: Path, text: str, marker: str, key: str, message: str
) -> None:
    config = write(tmp_path, text)
    problems = problems_of(config)
    assert len(problems) == 1, problems
    (problem,) = problems
    assert problem.key == key
    assert message in problem.message
    assert problem.line == line_of(text, marker)
    assert str(problem).startswith(f"{config}:{problem.line}: {key}: ")


def test_invalid_yaml_is_one_problem_with_its_line(tmp_path: Path) -> None:
    text = "database: a.db\nfeeds:\n  - url: [unclosed\nchannels: {}\n"
    problems = problems_of(write(tmp_path, text))
    assert len(problems) == 1
    assert problems[0].message.startswith("invalid YAML")
    assert problems[0].line == 4
    assert problems[0].file == str(tmp_path / "watcher.yaml")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, "- a\n- b\n"))
    assert "must hold a mapping" in problem.message


def test_every_problem_is_reported_at_once_in_line_order(tmp_path: Path) -> None:
    text = """\
    databse: x.db
    defaults:
      interval: 10s
    feeds:
      - url: https://a.example/
        intervl: 5m
    channels:
      hook:
        type: webhook
        url: "${HOOK_URL}"
        timeout: -3
    """
    err = pytest.raises(ConfigError, load_settings, write(tmp_path, text), {}).value
    keys = [p.key for p in err.problems]
    assert keys == [
        "databse",
        "defaults.interval",
        "feeds[0].intervl",
        "channels.hook.timeout",
    ]
    assert [p.line for p in err.problems] == [1, 3, 6, 11]
    assert len(str(err).splitlines()) == 4
    assert "HOOK_URL" not in str(err)  # only the commands that deliver need it


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="cannot read config file") as info:
        load_settings(missing, {})
    assert info.value.problems[0].file == str(missing)


# --- environment variables ----------------------------------------------------------------


def test_env_vars_expand_anywhere_in_strings_and_dollar_dollar_is_literal(tmp_path: Path) -> None:
    text = """\
    poll:
      user_agent: "bot/${VERSION} (${CONTACT}) costs $$5 and $${NOT_A_VAR}"
      workers: ${WORKERS}
    channels:
      hook:
        type: webhook
        url: https://${HOST}/hook
        headers: {Authorization: "Bearer ${TOKEN}"}
    """
    env = {"VERSION": "2", "CONTACT": "me@x.org", "WORKERS": "8", "HOST": "h.example"}
    env["TOKEN"] = "t$k"
    settings = load_settings(write(tmp_path, text), env)
    assert settings.poll.user_agent == "bot/2 (me@x.org) costs $$5 and ${NOT_A_VAR}"
    assert settings.poll.workers == 8  # unquoted: typed as if written in place
    hook = settings.channels["hook"].options
    assert hook["url"] == "https://h.example/hook"
    assert hook["headers"] == {"Authorization": "Bearer t$k"}


def test_quoted_variable_stays_a_string(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, 'poll:\n  workers: "${N}"\n'), {"N": "8"})
    assert (problem.key, problem.line) == ("poll.workers", 2)
    assert "must be an integer, not a string ('${N}')" in problem.message  # named, not echoed


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a ${unterminated", "unclosed '${'"),
        ("${1BAD}", "invalid environment variable name '1BAD'"),
    ],
)
def test_bad_variables_name_the_variable_and_key(tmp_path: Path, value: str, message: str) -> None:
    text = "channels:\n  m:\n    type: email\n    to: a@x.org\n    from: w@x.org\n"
    text += f'    smtp:\n      username: me\n      password: "{value}"\n'
    (problem,) = problems_of(write(tmp_path, text))
    assert problem.key == "channels.m.smtp.password"
    assert problem.line == 8
    assert message in problem.message


def test_channel_feed_url_and_header_variables_are_needed_only_when_used(
    tmp_path: Path,
) -> None:
    text = """\
    defaults:
      headers: {X-Key: "${DEFAULT_KEY}"}
    feeds:
      - url: "https://a.example/rss?k=${FEED_KEY}"
        headers: {Authorization: "Basic ${FEED_AUTH}"}
    channels:
      hook: {type: webhook, url: "${HOOK_URL}", secret: "${SECRET}"}
      mail:
        type: email
        to: a@x.org
        from: w@x.org
        smtp:
          port: ${SMTP_PORT}
          username: me
          password: "${SMTP_PASSWORD}"
    """
    settings = load_settings(write(tmp_path, text), {})
    missing = [(p.key, p.line, p.message.split()[2]) for p in settings.unresolved]
    assert missing == [
        ("defaults.headers.X-Key", 2, "DEFAULT_KEY"),
        ("feeds[0].url", 4, "FEED_KEY"),
        ("feeds[0].headers.Authorization", 5, "FEED_AUTH"),
        ("channels.hook.url", 7, "HOOK_URL"),
        ("channels.hook.secret", 7, "SECRET"),
        ("channels.mail.smtp.port", 13, "SMTP_PORT"),
        ("channels.mail.smtp.password", 15, "SMTP_PASSWORD"),
    ]
    assert [p.key for p in settings.channels["hook"].unresolved] == [
        "channels.hook.url",
        "channels.hook.secret",
    ]
    assert settings.feeds[0].url == "https://a.example/rss?k=${FEED_KEY}"
    with pytest.raises(ConfigError) as info:
        require_variables(settings, "channels.mail")
    assert len(info.value.problems) == 2 and "SMTP_PORT" in str(info.value)
    with pytest.raises(ConfigError) as info:
        require_variables(settings)
    assert len(info.value.problems) == 7


def test_feed_urls_stay_templates_and_channel_values_are_expanded(tmp_path: Path) -> None:
    text = """\
    feeds:
      - url: "https://u:${PASS}@a.example/rss"
      - https://b.example/$${literal}
    channels:
      hook: {type: webhook, url: "https://h.example/${TOKEN}", headers: {X-A: "${TOKEN}"}}
    """
    env = {"PASS": "pw-123456", "TOKEN": "tok-7890"}
    settings = load_settings(write(tmp_path, text), env)
    assert [f.url for f in settings.feeds] == [
        "https://u:${PASS}@a.example/rss",
        "https://b.example/$${literal}",  # a literal '${', still written as a template
    ]
    hook = settings.channels["hook"]
    assert hook.options["url"] == "https://h.example/tok-7890"
    assert hook.secrets == ("tok-7890",) and not settings.unresolved


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ('feeds:\n  - url: "${FEED_URL}"\n', "feeds[0].url"),
        ('channels:\n  h: {type: webhook, url: "${FEED_URL}"}\n', "channels.h.url"),
        ("poll:\n  workers: ${FEED_URL}\n", "poll.workers"),
    ],
)
def test_a_config_error_names_the_variable_never_its_value(
    tmp_path: Path, entry: str, key: str
) -> None:
    (problem,) = problems_of(write(tmp_path, entry), {"FEED_URL": "ftp://user:s3cret@x/"})
    assert problem.key == key
    assert "s3cret" not in str(problem) and "${FEED_URL}" in problem.message


def test_a_variable_elsewhere_is_still_needed_by_every_command(tmp_path: Path) -> None:
    text = 'database: "${DATA}/w.db"\nfeeds:\n  - {url: "https://a.example/", name: "${N}"}\n'
    problems = problems_of(write(tmp_path, text))
    assert [(p.key, p.message) for p in problems] == [
        ("database", "environment variable DATA is not set"),
        ("feeds[0].name", "environment variable N is not set"),
    ]


def test_env_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_TEST_UA", "from-environ")
    config = write(tmp_path, "poll:\n  user_agent: ${WATCHER_TEST_UA}\n")
    assert load_settings(config).poll.user_agent == "from-environ"


# --- durations and sizes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1w", 604800), (45, 45)]
    + [("90", 90), ("1h30m", 5400), (" 5m ", 300), (0, 0)],
)
def test_parse_duration(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [("5x", "invalid duration '5x'"), ("", "invalid duration"), ("m5", "invalid duration")]
    + [("-5m", "invalid duration"), (-1, "cannot be negative"), (True, "not a boolean")]
    + [(1.5, "not a number"), ("1.5h", "invalid duration")],
)
def test_parse_duration_rejects(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "size"),
    [("512KB", 512 * 1024), ("10MB", 10 * 1024**2), ("1GB", 1024**3), ("100", 100), (2048, 2048)]
    + [("1.5MB", 1572864), ("64kb", 65536), ("3B", 3), ("2MiB", 2 * 1024**2)],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [("10XB", "invalid size '10XB'"), ("MB", "invalid size"), (-1, "cannot be negative")]
    + [(False, "not a boolean"), ("ten MB", "invalid size")],
)
def test_parse_size_rejects(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_size(text)  # type: ignore[arg-type]


# --- paths and rules ----------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = """\
    database: ../db/w.db
    rules: [extra/one.yaml]
    feeds:
      - url: feeds/a.xml
      - url: /srv/feeds/b.xml
      - url: file:///srv/feeds/c.xml
      - opml: lists/subs.opml
    channels:
      out: {type: eml, dir: outbox}
    """
    config = write(tmp_path, text, "conf/watcher.yaml")
    write(tmp_path, "[]\n", "conf/extra/one.yaml")
    write(tmp_path, OPML, "conf/lists/subs.opml")
    monkeypatch.chdir(tmp_path)  # a relative config path is made absolute too
    settings = load_settings(Path("conf/watcher.yaml"), {})
    conf = tmp_path / "conf"
    assert settings.path == config
    assert settings.database == tmp_path / "db/w.db"
    assert settings.rules == (conf / "extra/one.yaml",)
    urls = [f.url for f in settings.feeds]
    assert urls[:3] == [str(conf / "feeds/a.xml"), "/srv/feeds/b.xml", "/srv/feeds/c.xml"]
    assert str(conf / "lists/local/sample.xml") in urls  # OPML paths: against the OPML file
    assert settings.channels["out"].options["dir"] == conf / "outbox"


def test_rules_folder_expands_to_sorted_yaml_files(tmp_path: Path) -> None:
    for name in ("b.yml", "a.yaml", "c.txt", ".hidden.yaml", "sub/d.yaml"):
        write(tmp_path, "[]\n", f"rules/{name}")
    write(tmp_path, "[]\n", "more/z.yaml")
    write(tmp_path, "[]\n", "single.rules")
    settings = load_settings(write(tmp_path, "rules: rules\n"), {})
    assert settings.rules == (tmp_path / "rules/a.yaml", tmp_path / "rules/b.yml")
    listed = load_settings(write(tmp_path, "rules: [single.rules, rules/, more]\n"), {})
    assert listed.rules == (
        tmp_path / "single.rules",
        tmp_path / "rules/a.yaml",
        tmp_path / "rules/b.yml",
        tmp_path / "more/z.yaml",
    )


def test_empty_rules_folder_gives_no_rules(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    assert load_settings(write(tmp_path, "rules: rules/\n"), {}).rules == ()


# --- OPML ---------------------------------------------------------------------------------


def test_opml_entry_imports_feeds_with_entry_overrides(tmp_path: Path) -> None:
    write(tmp_path, OPML, "subs.opml")
    text = (
        "feeds:\n  - opml: subs.opml\n    interval: 1h\n    tags: [imported]\n    enabled: false\n"
    )
    feeds = load_settings(write(tmp_path, text), {}).feeds
    assert [f.url for f in feeds] == [
        "https://kyiv.example/rss",
        str(tmp_path / "local/sample.xml"),
        "http://top.example/feed",
    ]
    assert {f.interval_s for f in feeds} == {3600}
    assert {f.enabled for f in feeds} == {False}
    assert feeds[0].tags == ("Ukraine", "War", "Front", "osint", "imported")
    assert feeds[2].tags == ("imported",)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("/etc/passwd", "a local file outside"),
        ("file:///etc/passwd", "a local file outside"),
        ("../../outside.xml", "a local file outside"),
        ("javascript:alert(1)", "not an http(s) URL (scheme 'javascript')"),
    ],
)
def test_an_opml_file_in_the_config_may_name_only_urls_and_files_under_its_folder(
    tmp_path: Path, entry: str, reason: str
) -> None:
    body = (
        '<opml version="2.0"><body><outline xmlUrl="https://ok.example/rss"/>'
        '<outline xmlUrl="feeds/here.xml"/><outline xmlUrl="file:{inside}"/>'
        '<outline xmlUrl="{entry}"/></body></opml>'
    )
    inside = tmp_path / "conf/b.xml"
    write(tmp_path, body.format(entry=entry, inside=inside), "conf/lists/subs.opml")
    config = write(tmp_path, "feeds:\n  - opml: lists/subs.opml\n", "conf/watcher.yaml")
    (problem,) = problems_of(config)
    assert (problem.key, problem.line) == ("feeds[0].opml", 2)
    assert f"subs.opml: entry {entry!r}: {reason}" in problem.message
    good = body.format(entry="https://also.example/rss", inside=inside)
    write(tmp_path, good, "conf/lists/subs.opml")
    assert [f.url for f in load_settings(config, {}).feeds] == [
        "https://ok.example/rss",
        str(tmp_path / "conf/lists/feeds/here.xml"),
        str(tmp_path / "conf/b.xml"),
        "https://also.example/rss",
    ]


def test_broken_opml_is_a_config_problem_naming_both_files(tmp_path: Path) -> None:
    write(tmp_path, "<opml version='2.0'>\n<body>\n<outline\n", "bad.opml")
    text = "feeds:\n  - url: https://a.example/\n  - opml: bad.opml\n"
    (problem,) = problems_of(write(tmp_path, text))
    assert (problem.key, problem.line) == ("feeds[1].opml", 3)
    assert f"{tmp_path / 'bad.opml'}:" in problem.message
    assert "invalid OPML" in problem.message


def test_missing_opml_file_is_reported(tmp_path: Path) -> None:
    (problem,) = problems_of(write(tmp_path, "feeds:\n  - opml: gone.opml\n"))
    assert problem.key == "feeds[0].opml"
    assert "cannot read OPML file" in problem.message


def test_read_opml_refuses_entities(tmp_path: Path) -> None:
    bomb = '<?xml version="1.0"?>\n<!DOCTYPE opml [<!ENTITY a "aaaa">]>\n<opml><body/></opml>\n'
    with pytest.raises(ConfigError, match="may not declare XML entities"):
        read_opml(write(tmp_path, bomb, "bomb.opml"))


def test_read_opml_rejects_other_xml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not an OPML file"):
        read_opml(write(tmp_path, "<rss><channel/></rss>\n", "feed.xml"))


def test_write_opml_round_trips_url_title_and_tags(tmp_path: Path) -> None:
    feeds = [
        FeedConfig(url="https://a.example/rss?x=1&y=2", title="A & <B>", tags=("war", "osint")),
        FeedConfig(url="https://b.example/atom", name="b-feed"),
    ]
    text = write_opml(feeds)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    back = read_opml(write(tmp_path, text, "out.opml"))
    assert [(f.url, f.title, f.tags) for f in back] == [
        ("https://a.example/rss?x=1&y=2", "A & <B>", ("war", "osint")),
        ("https://b.example/atom", "b-feed", ()),  # an untitled feed is shown by its name
    ]


# --- finding the file ---------------------------------------------------------------------


def test_find_config_prefers_option_then_env_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    option, from_env = write(tmp_path, "", "a.yaml"), write(tmp_path, "", "b.yaml")
    write(tmp_path, "", "watcher.yaml")
    monkeypatch.chdir(tmp_path)
    env = {"WATCHER_CONFIG": str(from_env)}
    assert find_config(str(option), env) == option
    assert find_config(None, env) == from_env
    assert find_config(None, {}) == Path("watcher.yaml")


@pytest.mark.parametrize(
    ("option", "env", "named", "source"),
    [
        ("gone.yaml", {}, "gone.yaml", "--config"),
        (None, {"WATCHER_CONFIG": "env.yaml"}, "env.yaml", "$WATCHER_CONFIG"),
        (None, {}, "watcher.yaml", "the default"),
    ],
)
def test_find_config_names_a_missing_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    option: str | None,
    env: dict[str, str],
    named: str,
    source: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        find_config(option, env)
    assert info.value.problems[0].file == named
    assert str(info.value).startswith(f"{named}: config file not found (from {source})")


def test_feed_entry_may_be_a_bare_url_and_anchors_merge(tmp_path: Path) -> None:
    text = """\
    feeds:
      - https://a.example/rss
      - &slow {url: "https://b.example/rss", interval: 2h, tags: [slow]}
      - {<<: *slow, url: "https://c.example/rss", name: c}
    """
    a, b, c = load_settings(write(tmp_path, text), {}).feeds
    assert (a.url, a.interval_s) == ("https://a.example/rss", 900)
    assert (b.url, b.interval_s, b.tags) == ("https://b.example/rss", 7200, ("slow",))
    assert (c.url, c.name, c.interval_s, c.tags) == ("https://c.example/rss", "c", 7200, ("slow",))


def test_a_feed_entry_of_the_wrong_shape_is_one_problem(tmp_path: Path) -> None:
    text = "feeds:\n  - https://a.example/rss\n  - [https://b.example/rss]\n"
    (problem,) = problems_of(write(tmp_path, text))
    assert (problem.key, problem.line) == ("feeds[1]", 3)
    assert problem.message == "must be {url: ...} or {opml: ...}, not a list"


def test_full_text_defaults_to_never_and_is_set_per_feed(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """\
        defaults:
          full_text: short
        feeds:
          - url: https://a.example/rss
          - url: https://b.example/rss
            full_text: always
        """,
    )
    settings = load_settings(config, {})
    a, b = settings.feeds
    assert (settings.defaults.full_text, a.full_text, b.full_text) == ("short", "short", "always")
    bare = load_settings(write(tmp_path, "feeds:\n  - url: https://a.example/rss\n"), {})
    assert (bare.defaults.full_text, bare.feeds[0].full_text) == ("never", "never")


def test_a_wrong_full_text_names_the_key_and_the_values(tmp_path: Path) -> None:
    config = write(tmp_path, "feeds:\n  - url: https://a.example/rss\n    full_text: sometimes\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    message = str(caught.value)
    assert "feeds[0].full_text" in message
    assert "'sometimes' is not one of never, short, always" in message
