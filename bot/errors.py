"""The one exception hierarchy of domainbot.

Every error the bot raises on purpose derives from :class:`DomainbotError`. Each
class keeps the facts it is about as attributes and builds its message from them, so
a handler can both show the message to a person and act on the facts::

    DomainbotError
    ├── ConfigError                 a setting is missing or wrong; the bot cannot start
    ├── RequestRefused              a user's request breaks a rule; nothing was changed
    │   ├── InvalidRequest          several problems with one request, together
    │   ├── InvalidDomain           the domain name itself is not acceptable
    │   ├── CdnNotConfigured        CDN acceleration asked for a bucket without one
    │   ├── UnknownBucket           the bucket is not in the configuration
    │   ├── IcpConfirmationMissing  a mainland-China bucket needs the ICP confirmation
    │   ├── BucketFull              the bucket already holds its maximum of domains
    │   ├── DomainConflict          another bucket holds the domain
    │   │   └── OwnershipProofRequired  the provider wants DNS proof first
    │   ├── NotBound                the domain is not bound (unbind, check)
    │   └── ChangeRefused           only its requester or an approver may do that
    ├── DnsError                    an authoritative server could not be asked
    ├── ProviderError               a storage or DNS provider refused or failed
    │   └── RecordConflict          a DNS record is in the way of the one to write
    └── SlackError                  Slack's Web API refused a call or was unreachable

Messages say what happened and what to do next; they never contain secrets.
"""

from __future__ import annotations

from datetime import datetime


class DomainbotError(Exception):
    """Base class of every error domainbot raises on purpose."""


class ConfigError(DomainbotError):
    """The configuration cannot be used; the bot refuses to start.

    ``problems`` holds one line per problem, each naming the setting and the fix.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class RequestRefused(DomainbotError):
    """A user's request was refused by a rule; nothing was stored or changed.

    ``field`` names the input the problem belongs to (``domain``, ``bucket``, ``icp``)
    so that a form can show the message next to it.
    """

    field = "domain"


class InvalidRequest(RequestRefused):
    """Every problem found with one request, so a form can show them all at once."""

    def __init__(self, problems: list[RequestRefused]) -> None:
        self.problems = problems
        super().__init__(" ".join(str(problem) for problem in problems))


class InvalidDomain(RequestRefused):
    """The text given as a domain name is not a host name the bot can bind."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason
        super().__init__(reason)


class UnknownBucket(RequestRefused):
    field = "bucket"

    def __init__(self, bucket: str, known: list[str]) -> None:
        self.bucket = bucket
        self.known = known
        names = ", ".join(known) or "none are configured"
        if not bucket:
            super().__init__(f"Choose a bucket: {names}.")
            return
        super().__init__(
            f"There is no bucket called {bucket!r} in the bot's configuration. "
            f"Pick one of: {names}."
        )


class IcpConfirmationMissing(RequestRefused):
    field = "icp"

    def __init__(self, bucket: str, endpoint: str) -> None:
        self.bucket = bucket
        self.endpoint = endpoint
        super().__init__(
            f"Bucket {bucket} is in a mainland-China region ({endpoint}), where a "
            "domain must have an ICP filing. Confirm that this domain has one, or "
            "choose a bucket outside mainland China."
        )


class CdnNotConfigured(RequestRefused):
    field = "options"

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        super().__init__(
            f"CDN acceleration is not set up for bucket {bucket}. Turn the CDN "
            "switch off, or ask an operator to set cdn_domain for this bucket."
        )


class BucketFull(RequestRefused):
    field = "bucket"

    def __init__(self, bucket: str, limit: int) -> None:
        self.bucket = bucket
        self.limit = limit
        super().__init__(
            f"Bucket {bucket} already has {limit} domains bound or pending, its "
            f"maximum. Unbind one with /unbind-domain, or ask an operator to raise "
            f"max_domains for this bucket."
        )


class DomainConflict(RequestRefused):
    """Another bucket holds the domain; its owner must prove control to take it."""

    def __init__(self, domain: str, holder: str, since: datetime | None) -> None:
        self.domain = domain
        self.holder = holder
        self.since = since
        super().__init__(f"{domain} is already bound to bucket {holder}.")


class OwnershipProofRequired(DomainConflict):
    """The storage provider wants proof of control of the domain's DNS first.

    Raised when the provider refuses a binding until a TXT record proves ownership
    and names no bucket of this bot's as the holder (OSS does not say who, if
    anyone, holds the domain). ``holder`` is empty.
    """

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.holder = ""
        self.since = None
        RequestRefused.__init__(
            self,
            f"The storage provider wants proof that you control the DNS of "
            f"{domain} before binding it.",
        )


class NotBound(RequestRefused):
    def __init__(self, domain: str) -> None:
        self.domain = domain
        super().__init__(
            f"{domain} is not bound to any bucket. /domains lists the bound domains."
        )


class ChangeRefused(RequestRefused):
    """Someone who may not change a binding asked to; the attempt is audited.

    ``change`` is what they asked, as a verb phrase (``unbind``).
    """

    def __init__(self, domain: str, change: str, reason: str) -> None:
        self.domain = domain
        self.change = change
        self.reason = reason
        super().__init__(f"You cannot {change} {domain}: {reason}. Nothing changed.")


class DnsError(DomainbotError):
    """A DNS question could not be answered: a timeout, SERVFAIL, REFUSED or the like.

    These are passing faults: the check is retried later.
    """

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"could not look up {name}: {reason}")


class ProviderError(DomainbotError):
    """A storage or DNS provider refused an operation or could not be reached.

    ``code`` is the provider's own error code where it gave one.
    """

    def __init__(
        self, provider: str, operation: str, message: str, code: str | None = None
    ) -> None:
        self.provider = provider
        self.operation = operation
        self.code = code
        self.detail = message
        prefix = f"{code}: " if code else ""
        super().__init__(f"{provider} {operation} failed: {prefix}{message}")


class RecordConflict(ProviderError):
    """Records already at a name stand in the way; nothing was overwritten.

    ``found`` lists them in words such as ``CNAME old.example.net``.
    """

    def __init__(self, provider: str, name: str, found: list[str]) -> None:
        self.name = name
        self.found = found
        super().__init__(
            provider,
            "write",
            f"{name} already has {', '.join(found)}; nothing was overwritten",
            code="RecordConflict",
        )


class SlackError(DomainbotError):
    """A Slack Web API call failed.

    ``code`` is Slack's error string (``channel_not_found``, ``ratelimited``) or
    ``unreachable`` when no answer came; ``retry_after`` is the wait Slack asked for.
    """

    # Errors that will not go away by trying the same call again.
    PERMANENT = frozenset(
        {
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "user_not_in_channel",
            "user_not_found",
            "cant_update_message",
            "message_not_found",
            "invalid_blocks",
            "invalid_arguments",
            "msg_too_long",
            "no_text",
            "not_authed",
            "invalid_auth",
            "account_inactive",
            "token_revoked",
            "missing_scope",
            "expired_url",
            "used_url",
        }
    )

    def __init__(
        self, method: str, code: str, *, retry_after: float | None = None
    ) -> None:
        self.method = method
        self.code = code
        self.retry_after = retry_after
        super().__init__(f"Slack {method} failed: {code}")

    @property
    def permanent(self) -> bool:
        return self.code in self.PERMANENT
