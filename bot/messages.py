"""Rendering messages and views from the Jinja2 templates in ``bot/templates``.

A template is YAML that describes Block Kit: ``text`` (the plain-text fallback) and
``blocks`` for a message, or a whole view. Every value interpolated with ``{{ }}`` is
escaped twice over, for Slack's mrkdwn (``&``, ``<``, ``>``) and for a YAML
double-quoted string, so that nothing a user typed can ping a channel, forge a link
or break the layout. Text the bot builds on purpose (a mention, a date) is marked
safe with :class:`Mrkdwn`, as the ``user`` and ``date`` filters do.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined

from bot.clock import epoch_seconds
from bot.slack_gateway import Message

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FALLBACK_TEXT = 3000
_TRUNCATED = "… (cut short)"
# libyaml's loader reads a rendered template about ten times faster than PyYAML's
# own, which would otherwise be most of the work of opening a modal. PyYAML's
# wheels ship it; a build without it falls back to the pure-Python loader.
_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Mrkdwn(str):
    """Text that is already valid mrkdwn and must not be escaped again."""

    __slots__ = ()


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters mrkdwn gives a meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _finalize(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, Mrkdwn) else escape_mrkdwn(str(value))
    # json.dumps gives the escapes of a YAML double-quoted string, quotes aside.
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _user(user_id: str | None) -> Mrkdwn:
    if not user_id:
        return Mrkdwn("someone")
    return Mrkdwn(f"<@{escape_mrkdwn(user_id)}>")


def _usergroup(group_id: str) -> Mrkdwn:
    """A mention of a user group, which notifies its members."""
    return Mrkdwn(f"<!subteam^{escape_mrkdwn(group_id)}>")


def _date(
    when: datetime | float | None, style: str = "{date_short_pretty} at {time}"
) -> Mrkdwn:
    """A time each reader sees in their own time zone, with a UTC fallback."""
    if when is None:
        return Mrkdwn("never")
    epoch = epoch_seconds(when) if isinstance(when, datetime) else when
    moment = datetime.fromtimestamp(epoch, UTC)
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return Mrkdwn(f"<!date^{int(epoch)}^{style}|{fallback}>")


def _code(value: Any) -> Mrkdwn:
    """A code span; backticks inside are replaced so the span cannot be closed."""
    text = escape_mrkdwn(str(value)).replace("`", "\u02cb")
    return Mrkdwn(f"`{text}`")


class Renderer:
    """Renders the named template with a context into a message or a view."""

    def __init__(self) -> None:
        self._env = Environment(
            loader=PackageLoader("bot", "templates"),
            undefined=StrictUndefined,
            finalize=_finalize,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._env.filters.update(
            user=_user, usergroup=_usergroup, date=_date, code=_code
        )

    def message(self, name: str, context: dict[str, Any]) -> Message:
        """Render ``<name>.yml.j2`` as a message with blocks and a fallback text."""
        data = self._load(name, context)
        blocks = [_fit(block) for block in data.get("blocks", [])][:MAX_BLOCKS]
        text = str(data["text"])
        if len(text) > MAX_FALLBACK_TEXT:
            text = text[: MAX_FALLBACK_TEXT - len(_TRUNCATED)] + _TRUNCATED
        return Message(text=text, blocks=blocks)

    def view(self, name: str, context: dict[str, Any]) -> dict[str, Any]:
        """Render ``<name>.yml.j2`` as a modal or App Home view."""
        return self._load(name, context)

    def _load(self, name: str, context: dict[str, Any]) -> dict[str, Any]:
        source = self._env.get_template(f"{name}.yml.j2").render(**context)
        data = yaml.load(source, Loader=_YAML_LOADER)
        if not isinstance(data, dict):
            raise ValueError(f"template {name} did not render a mapping")
        return data


def _fit(block: dict[str, Any]) -> dict[str, Any]:
    """Cut a section's text to Slack's limit rather than have the post refused."""
    text = block.get("text")
    if block.get("type") == "section" and isinstance(text, dict):
        body = str(text.get("text", ""))
        if len(body) > MAX_SECTION_TEXT:
            text["text"] = body[: MAX_SECTION_TEXT - len(_TRUNCATED)] + _TRUNCATED
    return block
