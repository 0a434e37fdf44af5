"""The binding workflow driven directly, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from bot.approvals import ApprovalDesk
from bot.approvers import ApproverDirectory
from bot.auto_cname import CnameWriter
from bot.binding import BindingWorkflow, BindRequest, Outcome
from bot.challenges import ChallengeDesk
from bot.clock import ManualClock
from bot.dns_check import AuthoritativeDns
from bot.dns_providers.zones import ManagedZones
from bot.errors import ChangeRefused, InvalidRequest, NotBound
from bot.providers import StorageProvider
from bot.providers.local import LocalProvider
from bot.recheck import RecheckPolicy
from bot.slack_gateway import SlackGateway
from storage import Database
from storage.models import AuditEvent, Binding, BindingState, Challenge, OutboxMessage
from tests.support.configs import FRANKFURT, HANGZHOU, HONGKONG, file_config
from tests.support.dns_lab import DnsLab
from tests.support.fake_slack import FakeSlack


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def workflow(
    db: Database, clock: ManualClock, dns_lab: DnsLab, fake_slack: FakeSlack
) -> BindingWorkflow:
    config = file_config()
    providers: dict[str, StorageProvider] = {"local": LocalProvider(db, clock)}
    approvers = ApproverDirectory(
        config.approvers, SlackGateway(fake_slack.web_client())
    )
    approvals = ApprovalDesk(
        config=config,
        db=db,
        providers=providers,
        clock=clock,
        approvers=approvers,
        cname=CnameWriter(ManagedZones()),
    )
    challenges = ChallengeDesk(
        config=config,
        db=db,
        providers=providers,
        dns=AuthoritativeDns(resolvers=[dns_lab.resolver_address]),
        clock=clock,
        policy=RecheckPolicy(),
        approvals=approvals,
    )
    return BindingWorkflow(
        config=config,
        db=db,
        providers=providers,
        clock=clock,
        challenges=challenges,
        cname=CnameWriter(ManagedZones()),
        approvers=approvers,
    )


def rows(db: Database, model: type) -> list:  # type: ignore[type-arg]
    from sqlmodel import select

    with db.transaction() as tx:
        return list(tx.session.exec(select(model)))


def ask(domain: str, bucket: str = HONGKONG, **kwargs: object) -> BindRequest:
    return BindRequest(
        domain=domain,
        bucket=bucket,
        requested_by="UREQUESTER",
        channel="COPS",
        **kwargs,
    )  # type: ignore[arg-type]


def test_binding_is_stored_audited_and_announced(
    workflow: BindingWorkflow, db: Database
) -> None:
    outcome = workflow.bind(ask(" IMG.Example.com. "))

    assert outcome.outcome is Outcome.CREATED
    [binding] = rows(db, Binding)
    assert (binding.domain, binding.bucket, binding.state) == (
        "img.example.com",
        HONGKONG,
        BindingState.PENDING_DNS,
    )
    assert binding.target == "media-hk.oss-cn-hongkong.aliyuncs.com"
    [event] = rows(db, AuditEvent)
    assert (event.actor, event.action, event.state_before, event.state_after) == (
        "UREQUESTER",
        "bound",
        None,
        "pending_dns",
    )
    [notice] = rows(db, OutboxMessage)
    assert notice.notice == "binding_card"
    assert notice.remember_as == f"binding:{binding.id}"
    assert notice.channel == "COPS"
    assert LocalProvider(db, ManualClock()).holder("img.example.com") is not None


def test_cdn_binding_points_at_the_cdn(workflow: BindingWorkflow, db: Database) -> None:
    workflow.bind(ask("static.example.com", FRANKFURT, cdn=True))
    [binding] = rows(db, Binding)
    assert binding.target == "static.example.com.w.kunlunsl.com"


def test_every_input_problem_is_reported_and_nothing_stored(
    workflow: BindingWorkflow, db: Database
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        workflow.bind(ask("*.example.com", HANGZHOU, cdn=True))
    fields = sorted(problem.field for problem in refused.value.problems)
    assert fields == ["domain", "icp", "options"]
    assert "ICP filing" in str(refused.value)
    assert rows(db, Binding) == [] and rows(db, OutboxMessage) == []


def test_mainland_bucket_binds_with_icp_confirmation(
    workflow: BindingWorkflow,
) -> None:
    outcome = workflow.bind(ask("img.example.com", HANGZHOU, icp_confirmed=True))
    assert outcome.outcome is Outcome.CREATED


def test_a_full_bucket_refuses_the_next_domain(
    workflow: BindingWorkflow, db: Database
) -> None:
    for number in range(3):
        assert workflow.bind(ask(f"d{number}.example.com", FRANKFURT)).outcome is (
            Outcome.CREATED
        )

    outcome = workflow.bind(ask("d3.example.com", FRANKFURT))

    assert outcome.outcome is Outcome.REFUSED
    assert "already has 3 domains" in (outcome.message or "")
    assert len(rows(db, Binding)) == 3
    refusal = rows(db, OutboxMessage)[-1]
    assert refusal.ephemeral and refusal.user == "UREQUESTER"
    assert LocalProvider(db, ManualClock()).holder("d3.example.com") is None


def test_pending_domains_count_towards_the_default_limit_of_twenty(
    workflow: BindingWorkflow, db: Database
) -> None:
    for number in range(20):
        workflow.bind(ask(f"n{number}.example.com"))
    outcome = workflow.bind(ask("n20.example.com"))
    assert outcome.outcome is Outcome.REFUSED
    assert "already has 20 domains" in (outcome.message or "")
    assert len(rows(db, Binding)) == 20


def test_same_domain_same_bucket_is_not_bound_twice(
    workflow: BindingWorkflow, db: Database
) -> None:
    workflow.bind(ask("img.example.com"))
    again = workflow.bind(ask("img.example.com"))
    assert again.outcome is Outcome.ALREADY_BOUND
    assert len(rows(db, Binding)) == 1


def test_domain_bound_elsewhere_is_a_conflict(
    workflow: BindingWorkflow, db: Database
) -> None:
    workflow.bind(ask("img.example.com", HONGKONG))
    outcome = workflow.bind(ask("img.example.com", FRANKFURT))
    assert outcome.outcome is Outcome.CONFLICT
    [binding] = rows(db, Binding)
    assert binding.bucket == HONGKONG
    [challenge] = rows(db, Challenge)
    assert (challenge.domain, challenge.bucket, challenge.holder) == (
        "img.example.com",
        FRANKFURT,
        HONGKONG,
    )


def test_a_retried_request_changes_nothing(
    workflow: BindingWorkflow, db: Database
) -> None:
    first = workflow.bind(ask("img.example.com", request_key="view:V1"))
    second = workflow.bind(ask("img.example.com", request_key="view:V1"))
    assert (first.outcome, second.outcome) == (Outcome.CREATED, Outcome.DUPLICATE)
    assert len(rows(db, OutboxMessage)) == 1


def test_parallel_requests_for_one_domain_make_one_binding(
    workflow: BindingWorkflow, db: Database
) -> None:
    outcomes = []
    barrier = threading.Barrier(6)

    def request(number: int) -> None:
        barrier.wait()
        outcomes.append(workflow.bind(ask("img.example.com")).outcome)

    threads = [threading.Thread(target=request, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes).count(Outcome.CREATED) == 1
    assert len(rows(db, Binding)) == 1
    assert LocalProvider(db, ManualClock()).holder("img.example.com") is not None


def test_release_frees_the_domain_for_another_bucket(
    workflow: BindingWorkflow, db: Database, clock: ManualClock, fake_slack: FakeSlack
) -> None:
    fake_slack.set_usergroup("SOPS", ["UGROUPIE"])
    workflow.bind(ask("img.example.com", HONGKONG))
    clock.advance(timedelta(minutes=5))

    with pytest.raises(ChangeRefused) as refused:
        workflow.release("img.example.com", actor="UOTHER", channel="COPS")
    assert str(refused.value) == (
        "You cannot unbind img.example.com: only the person who bound it or a "
        "configured approver may do that. Nothing changed."
    )
    assert [b.state for b in rows(db, Binding)] == [BindingState.PENDING_DNS]

    released = workflow.release("img.example.com", actor="UGROUPIE", channel="COPS")

    assert released.state is BindingState.RELEASED
    assert workflow.bindings() == []
    assert workflow.bind(ask("img.example.com", FRANKFURT)).outcome is Outcome.CREATED
    actions = [(e.action, e.actor, e.detail) for e in rows(db, AuditEvent)]
    assert actions == [
        ("bound", "UREQUESTER", "to bucket media-hk"),
        (
            "unbind_refused",
            "UOTHER",
            "only the person who bound it or a configured approver may do that",
        ),
        ("released", "UGROUPIE", "from bucket media-hk"),
        ("bound", "UREQUESTER", "to bucket eu-assets"),
    ]
    with pytest.raises(NotBound):
        workflow.release("other.example.com", actor="UOTHER", channel=None)


def test_the_requester_may_release_and_an_unreadable_group_refuses(
    workflow: BindingWorkflow, db: Database
) -> None:
    # No user group SOPS exists at Slack: nobody outside the listed approvers and
    # the requester gets through while it cannot be read.
    workflow.bind(ask("img.example.com", HONGKONG))
    workflow.bind(ask("cdn.example.com", HONGKONG))

    with pytest.raises(ChangeRefused) as refused:
        workflow.release("cdn.example.com", actor="UOTHER", channel=None)
    assert "could not read the approvers' user group from Slack" in str(refused.value)
    assert workflow.release("cdn.example.com", actor="UAPPROVER1", channel=None)
    assert workflow.release("img.example.com", actor="UREQUESTER", channel=None)
    assert workflow.bindings() == []
