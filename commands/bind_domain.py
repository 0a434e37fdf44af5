"""``/bind-domain``: the modal, its submission, and the one-line form for power users.

Everything that needs the database or the network happens after the ack; input is
checked before it, since that needs neither and lets a refused modal stay open with
the problem shown next to the field.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App

from bot.binding import BindRequest
from bot.config import Bucket
from bot.errors import InvalidRequest, SlackError
from bot.messages import Mrkdwn, escape_mrkdwn
from bot.services import Services
from commands.after_ack import run_after_ack

logger = logging.getLogger(__name__)

CALLBACK_ID = "bind_domain"
FLAGS = {"cdn": "cdn", "auto-cname": "auto_cname", "icp": "icp"}
USAGE = (
    "Usage: `/bind-domain` opens a form, or `/bind-domain <domain> <bucket> [cdn] "
    "[auto-cname] [icp]` binds at once. `icp` confirms the domain has an ICP "
    "filing, needed for buckets in mainland China."
)
OPTIONS = [
    {
        "value": "cdn",
        "text": "CDN acceleration",
        "description": "Point the domain at the bucket's CDN instead of the bucket",
    },
    {
        "value": "auto_cname",
        "text": "Add the CNAME record automatically",
        "description": "Only in DNS zones the bot manages; else you get the steps",
    },
]


@dataclass(frozen=True)
class ModalState:
    """Where the modal was opened from, carried in ``private_metadata``."""

    channel: str | None
    user: str

    def dump(self) -> str:
        return json.dumps({"channel": self.channel, "user": self.user})

    @classmethod
    def load(cls, text: str) -> ModalState:
        data = json.loads(text or "{}")
        return cls(channel=data.get("channel"), user=str(data.get("user", "")))


def register(app: App, services: Services) -> None:
    app.command("/bind-domain")(_command(services))
    app.view(CALLBACK_ID)(_submission(services))
    app.action("bucket_select")(_bucket_chosen(services))


def bind_view(
    services: Services,
    state: ModalState,
    *,
    selected: str | None = None,
    domain: str | None = None,
    options: list[str] | None = None,
) -> dict[str, Any]:
    """The modal, with the ICP block when the selected bucket needs it."""
    buckets = services.config.file.buckets
    chosen = services.config.file.bucket(selected) if selected else None
    if chosen is None and len(buckets) == 1:
        chosen = buckets[0]
    return services.renderer.view(
        "bind_modal",
        {
            "metadata": Mrkdwn(state.dump()),
            # TODO: a static select holds at most 100 options, so only the first
            # 100 buckets are offered (the one-line form reaches every bucket); an
            # external select would list them all. The mark can go with it.
            "buckets": [_bucket_option(bucket) for bucket in buckets[:100]],
            "selected": _bucket_option(chosen) if chosen else None,
            "domain": domain,
            "option_list": OPTIONS,
            "initial_options": options or [],
        },
    )


def _bucket_option(bucket: Bucket) -> dict[str, Any]:
    label = f"{bucket.name} ({bucket.region})"
    return {
        "name": bucket.name,
        "label": label[:75],
        "region": bucket.region,
        "needs_icp": bucket.needs_icp,
    }


def _command(services: Services) -> Callable[..., None]:
    def handle(ack: Ack, command: dict[str, Any]) -> None:
        text = str(command.get("text") or "").strip()
        user, channel = str(command["user_id"]), command.get("channel_id")
        if not text:
            ack()
            # The form is opened here, not on the after-ack pool: the trigger is
            # good for 3 s and the person is waiting, so it waits for no gap.
            # TODO: under a flood of commands the acks queue behind these calls
            # (benchmarks/bench_acks.py with no pause: p99 3.5 times a bare
            # app's). Opening forms from a process of its own would end that; the
            # mark can go when that benchmark meets its target with no pause.
            state = ModalState(channel=channel, user=user)
            try:
                services.slack.open_view(
                    str(command["trigger_id"]), bind_view(services, state)
                )
            except SlackError as err:
                logger.warning("could not open modal user=%s: %s", user, err.code)
            return
        request = _parse_line(text, user, channel, command.get("trigger_id"))
        if isinstance(request, str):
            ack(text=request, response_type="ephemeral")
            return
        try:
            checked = services.workflow.check_input(request)
        except InvalidRequest as err:
            ack(text=_problems_text(err), response_type="ephemeral")
            return
        ack(
            text=f"Binding {checked.domain} to bucket {checked.bucket.name}; "
            "the details follow in the channel.",
            response_type="ephemeral",
        )
        run_after_ack(
            services,
            "bind",
            lambda: services.workflow.bind(request),
            user=user,
            channel=channel,
        )

    return handle


def _parse_line(
    text: str, user: str, channel: str | None, trigger: object
) -> BindRequest | str:
    words = text.split()
    if words[0].lower() in {"help", "-h", "--help"}:
        return USAGE
    if len(words) < 2:
        return f"Name the bucket too. {USAGE}"
    flags = [word.lower() for word in words[2:]]
    unknown = [word for word in flags if word not in FLAGS]
    if unknown:
        names = ", ".join(f"`{escape_mrkdwn(word)}`" for word in unknown)
        return f"Unknown option {names}. {USAGE}"
    return BindRequest(
        domain=words[0],
        bucket=words[1],
        requested_by=user,
        channel=channel,
        cdn="cdn" in flags,
        auto_cname="auto-cname" in flags,
        icp_confirmed="icp" in flags,
        request_key=f"command:{trigger}" if trigger else None,
    )


def _problems_text(err: InvalidRequest) -> str:
    lines = [f"• {escape_mrkdwn(str(problem))}" for problem in err.problems]
    return "Nothing was bound:\n" + "\n".join(lines)


def _submission(services: Services) -> Callable[..., None]:
    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        state = ModalState.load(view.get("private_metadata", ""))
        values = view.get("state", {}).get("values", {})
        options = _selected(values, "options")
        request = BindRequest(
            domain=str(values.get("domain", {}).get("value", {}).get("value") or ""),
            bucket=_bucket_value(values),
            requested_by=str(body["user"]["id"]),
            channel=state.channel,
            cdn="cdn" in options,
            auto_cname="auto_cname" in options,
            icp_confirmed="confirmed" in _selected(values, "icp"),
            request_key=f"view:{view['id']}",
        )
        try:
            services.workflow.check_input(request)
        except InvalidRequest as err:
            ack(response_action="errors", errors=_field_errors(err, values))
            return
        ack()
        run_after_ack(
            services,
            "bind",
            lambda: services.workflow.bind(request),
            user=request.requested_by,
            channel=request.channel,
        )

    return handle


def _field_errors(err: InvalidRequest, values: dict[str, Any]) -> dict[str, str]:
    """Slack wants each error keyed by a block that is in the modal."""
    errors: dict[str, list[str]] = {}
    for problem in err.problems:
        block = problem.field if problem.field in values else "bucket"
        if problem.field == "icp" and "icp" not in values:
            block = "bucket"
        errors.setdefault(block, []).append(str(problem))
    return {block: " ".join(messages)[:2000] for block, messages in errors.items()}


def _bucket_chosen(services: Services) -> Callable[..., None]:
    def handle(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        view = body.get("view") or {}
        values = view.get("state", {}).get("values", {})
        state = ModalState.load(view.get("private_metadata", ""))
        new_view = bind_view(
            services,
            state,
            selected=_bucket_value(values),
            domain=values.get("domain", {}).get("value", {}).get("value"),
            options=sorted(_selected(values, "options")),
        )
        try:
            services.slack.update_view(view["id"], new_view, view.get("hash", ""))
        except SlackError as err:
            # A hash conflict means the user changed the form meanwhile; the next
            # change of bucket redraws it.
            logger.info("modal not redrawn view=%s: %s", view.get("id"), err.code)

    return handle


def _bucket_value(values: dict[str, Any]) -> str:
    selected = values.get("bucket", {}).get("bucket_select", {}).get("selected_option")
    return str(selected["value"]) if selected else ""


def _selected(values: dict[str, Any], block: str) -> set[str]:
    element = values.get(block, {}).get("value", {})
    return {str(o["value"]) for o in element.get("selected_options") or []}
