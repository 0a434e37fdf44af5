"""What the ``aliyun`` provider does beyond the storage-provider contract.

The real OSS and CDN SDKs talk over loopback HTTP to ``FakeAliyun``, which checks
their signatures; ``tests/test_storage_providers.py`` runs the shared contract.
"""

from __future__ import annotations

import http.client
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from bot.clock import ManualClock
from bot.config import Bucket
from bot.errors import (
    ConfigError,
    DomainConflict,
    OwnershipProofRequired,
    ProviderError,
)
from bot.providers.aliyun import (
    AliyunProvider,
    credentials_from_environment,
    oss_region,
)
from tests.support.fake_aliyun import ACCESS_KEY_SECRET, FakeAliyun

ONE = Bucket(name="bucket-one", endpoint="oss-cn-hongkong.aliyuncs.com")
TWO = Bucket(name="bucket-two", endpoint="oss-cn-hongkong.aliyuncs.com")
START = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
WRONG_SECRET = "wrong-secret-4f1d7a0c9e"
STS_TOKEN = "CAIS-fake-sts-token-b83e1f"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def fake(clock: ManualClock) -> Iterator[FakeAliyun]:
    with FakeAliyun(clock=clock) as server:
        for bucket in (ONE, TWO):
            server.add_bucket(bucket.name, "cn-hongkong")
        server.trust("example.com")
        yield server


@pytest.fixture
def provider(fake: FakeAliyun) -> AliyunProvider:
    return fake.provider((ONE, TWO))


def test_requests_go_path_style_signed_for_the_buckets_region(
    fake: FakeAliyun, provider: AliyunProvider
) -> None:
    assert provider.bind(ONE, "img.example.com") is True

    assert fake.operations("oss") == ["ListCname", "PutCname"]
    assert {call.style for call in fake.calls} == {"path"}
    assert {call.bucket for call in fake.calls} == {ONE.name}
    assert fake.holder_of("img.example.com") == ONE.name


def test_a_bucket_in_another_region_is_refused_by_the_signature_scope(
    fake: FakeAliyun,
) -> None:
    elsewhere = Bucket(name="bucket-one", endpoint="oss-cn-hangzhou.aliyuncs.com")
    provider = fake.provider((elsewhere,))

    with pytest.raises(ProviderError) as refused:
        provider.domains(elsewhere)

    assert refused.value.code == "InvalidArgument"
    assert "cn-hangzhou" in str(refused.value)


def test_a_domain_held_by_a_known_bucket_is_a_conflict_naming_it(
    fake: FakeAliyun, provider: AliyunProvider, clock: ManualClock
) -> None:
    provider.bind(ONE, "img.example.com")
    clock.advance(timedelta(hours=1))

    with pytest.raises(DomainConflict) as conflict:
        provider.bind(TWO, "img.example.com")

    assert conflict.value.holder == ONE.name
    assert conflict.value.since == START
    assert (
        str(conflict.value) == "img.example.com is already bound to bucket bucket-one."
    )
    assert fake.holder_of("img.example.com") == ONE.name


@pytest.mark.parametrize(
    ("domain", "held_by"),
    [
        ("img.example.net", None),
        ("img.example.com", "bucket-of-another-account"),
    ],
    ids=["unproven-free-domain", "held-by-an-unknown-bucket"],
)
def test_need_verify_domain_ownership_is_a_conflict_with_an_unnamed_holder(
    fake: FakeAliyun, provider: AliyunProvider, domain: str, held_by: str | None
) -> None:
    if held_by is not None:
        fake.bind(held_by, domain)

    with pytest.raises(DomainConflict) as conflict:
        provider.bind(ONE, domain)

    assert isinstance(conflict.value, OwnershipProofRequired)
    assert conflict.value.holder == ""
    assert conflict.value.since is None
    assert str(conflict.value) == (
        f"The storage provider wants proof that you control the DNS of {domain} "
        "before binding it."
    )
    assert provider.domains(ONE) == []


@pytest.mark.parametrize(
    ("domain", "fault", "code", "words"),
    [
        ("static.aliyuncs.com", None, "InvalidArgument", "cannot be bound"),
        (
            "img.example.com",
            ("TooManyCname", "The bucket holds 100 domains already.", 400),
            "TooManyCname",
            "100 domains already",
        ),
        (
            "img.example.com",
            ("AccessDenied", "The bucket policy denies PutCname.", 403),
            "AccessDenied",
            "RAM policy allows this operation",
        ),
    ],
    ids=["reserved-suffix", "injected-400", "access-denied"],
)
def test_other_refusals_carry_the_oss_code_and_message(
    fake: FakeAliyun,
    provider: AliyunProvider,
    domain: str,
    fault: tuple[str, str, int] | None,
    code: str,
    words: str,
) -> None:
    if fault is not None:
        fake.fail("PutCname", fault[0], fault[1], status=fault[2])

    with pytest.raises(ProviderError) as refused:
        provider.bind(ONE, domain)

    assert refused.value.code == code
    assert words in str(refused.value)
    assert str(refused.value).startswith(
        f"aliyun PutCname for bucket bucket-one failed: {code}: "
    )


def test_an_unknown_bucket_is_named_in_the_error(fake: FakeAliyun) -> None:
    ghost = Bucket(name="bucket-ghost", endpoint="oss-cn-hongkong.aliyuncs.com")
    provider = fake.provider((ghost,))

    with pytest.raises(ProviderError) as refused:
        provider.bind(ghost, "img.example.com")

    assert refused.value.code == "NoSuchBucket"
    assert "bucket-ghost" in str(refused.value)


def test_ownership_token_is_the_same_while_valid_and_new_after_expiry(
    fake: FakeAliyun, provider: AliyunProvider, clock: ManualClock
) -> None:
    first = provider.ownership_token(TWO, "img.example.com")
    assert first.expires_at == START + timedelta(hours=72)
    assert fake.operations("oss") == ["GetCnameToken", "CreateCnameToken"]

    clock.advance(timedelta(hours=71))
    assert provider.ownership_token(TWO, "img.example.com") == first
    assert fake.operations("oss")[-1] == "GetCnameToken"

    clock.advance(timedelta(hours=2))
    renewed = provider.ownership_token(TWO, "img.example.com")
    assert renewed.token != first.token
    assert renewed.expires_at == clock.now() + timedelta(hours=72)
    issued = fake.token_for(TWO.name, "img.example.com")
    assert issued is not None and issued.token == renewed.token


def test_take_over_waits_for_the_txt_record_then_moves_the_domain(
    fake: FakeAliyun, provider: AliyunProvider
) -> None:
    provider.bind(ONE, "img.example.com")
    token = provider.ownership_token(TWO, "img.example.com")

    with pytest.raises(ProviderError) as early:
        provider.take_over(TWO, "img.example.com")
    assert early.value.code == "NeedVerifyDomainOwnership"
    assert "_dnsauth.img.example.com" in str(early.value)

    fake.publish_txt("img.example.com", "not-the-token")
    with pytest.raises(ProviderError):
        provider.take_over(TWO, "img.example.com")

    fake.publish_txt("img.example.com", token.token)
    assert provider.take_over(TWO, "img.example.com") is True
    held = provider.holder("img.example.com")
    assert held is not None and held.bucket == TWO.name
    assert provider.domains(ONE) == []
    assert provider.take_over(TWO, "img.example.com") is False


def test_release_treats_no_such_cname_as_not_bound(
    fake: FakeAliyun, provider: AliyunProvider
) -> None:
    provider.bind(ONE, "img.example.com")
    fake.fail("DeleteCname", "NoSuchCname", "No such CNAME here.", status=404)

    assert provider.release(ONE, "img.example.com") is False


def test_cdn_target_adds_the_domain_with_the_bucket_as_oss_origin(
    fake: FakeAliyun, provider: AliyunProvider
) -> None:
    assert provider.offers_cdn(ONE) is True

    target = provider.cdn_target(ONE, "img.example.com")

    assert target == "img.example.com.w.kunlunsl.com"
    added = fake.cdn_domain("img.example.com")
    assert added is not None and added.cdn_type == "web"
    assert [(s["type"], s["content"]) for s in added.sources] == [
        ("oss", "bucket-one.oss-cn-hongkong.aliyuncs.com")
    ]

    assert provider.cdn_target(ONE, "img.example.com") == target
    assert fake.operations("cdn") == [
        "AddCdnDomain",
        "DescribeCdnDomainDetail",
        "AddCdnDomain",
        "DescribeCdnDomainDetail",
    ]


def test_cdn_target_prefers_the_buckets_template(
    fake: FakeAliyun, provider: AliyunProvider
) -> None:
    templated = ONE.model_copy(update={"cdn_domain": "{domain}.cdn.example.net"})

    assert provider.cdn_target(templated, "img.example.com") == (
        "img.example.com.cdn.example.net"
    )
    assert fake.operations("cdn") == []


def test_cdn_refusals_carry_the_cdn_code(
    fake: FakeAliyun, provider: AliyunProvider
) -> None:
    fake.fail("AddCdnDomain", "CdnServiceNotFound", "CDN is not activated.", status=403)

    with pytest.raises(ProviderError) as refused:
        provider.cdn_target(ONE, "img.example.com")

    assert refused.value.code == "CdnServiceNotFound"
    assert str(refused.value) == (
        "aliyun AddCdnDomain failed: CdnServiceNotFound: CDN is not activated."
    )


@pytest.mark.parametrize(
    ("environ_secret", "key_id", "oss_code", "cdn_code"),
    [
        (WRONG_SECRET, None, "SignatureDoesNotMatch", "SignatureDoesNotMatch"),
        (None, "LTAI5tUNKNOWNkey000000", "InvalidAccessKeyId", None),
    ],
    ids=["wrong-secret", "unknown-key"],
)
def test_bad_credentials_are_refused_with_a_hint(
    fake: FakeAliyun,
    environ_secret: str | None,
    key_id: str | None,
    oss_code: str,
    cdn_code: str | None,
) -> None:
    environ = fake.environ(secret=environ_secret)
    if key_id is not None:
        environ["ALIBABA_CLOUD_ACCESS_KEY_ID"] = key_id
    provider = fake.provider((ONE,), environ=environ)

    with pytest.raises(ProviderError) as oss_refusal:
        provider.bind(ONE, "img.example.com")
    with pytest.raises(ProviderError) as cdn_refusal:
        provider.cdn_target(ONE, "img.example.com")

    assert oss_refusal.value.code == oss_code
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in str(oss_refusal.value)
    assert cdn_refusal.value.code == (cdn_code or "InvalidAccessKeyId.NotFound")
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in str(cdn_refusal.value)
    assert fake.holder_of("img.example.com") is None
    assert fake.calls == []


def test_no_secret_reaches_errors_or_logs(
    fake: FakeAliyun, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = fake.provider((ONE, TWO))
    bad = fake.provider((ONE,), environ=fake.environ(secret=WRONG_SECRET))
    errors: list[Exception] = []

    good.bind(ONE, "img.example.com")
    good.ownership_token(TWO, "img.example.com")
    good.cdn_target(ONE, "img.example.com")
    for attempt in (
        lambda: good.bind(TWO, "img.example.com"),
        lambda: good.take_over(TWO, "img.example.com"),
        lambda: bad.bind(ONE, "cdn.example.com"),
        lambda: bad.cdn_target(ONE, "cdn.example.com"),
    ):
        with pytest.raises((ProviderError, DomainConflict)) as caught:
            attempt()
        errors.append(caught.value)

    texts = [caplog.text, *(str(e) for e in errors), *(repr(e) for e in errors)]
    for secret in (ACCESS_KEY_SECRET, WRONG_SECRET):
        assert not any(secret in text for text in texts)
    assert "PutCname" in caplog.text


@pytest.mark.parametrize(
    ("service", "path", "status", "code"),
    [
        ("oss", "/bucket-one/?cname&comp=add", 403, "AccessDenied"),
        ("cdn", "/?DomainName=img.example.com", 400, "IncompleteSignature"),
    ],
)
def test_the_fake_refuses_unsigned_requests(
    fake: FakeAliyun, service: str, path: str, status: int, code: str
) -> None:
    url = fake.oss_url if service == "oss" else fake.cdn_url
    connection = http.client.HTTPConnection(urlsplit(url).netloc, timeout=5)
    try:
        connection.request("POST", path, body=b"<BucketCnameConfiguration/>")
        response = connection.getresponse()
        answer = response.read().decode()
    finally:
        connection.close()

    assert response.status == status
    assert code in answer
    assert fake.calls == []


def test_an_sts_pair_sends_its_token_and_never_logs_it(
    fake: FakeAliyun, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    environ = fake.environ()
    environ["ALIBABA_CLOUD_SECURITY_TOKEN"] = STS_TOKEN
    provider = fake.provider((ONE,), environ=environ)

    provider.bind(ONE, "img.example.com")
    provider.cdn_target(ONE, "img.example.com")

    assert {call.security_token for call in fake.calls} == {STS_TOKEN}
    assert STS_TOKEN not in caplog.text


def test_an_unreachable_service_is_a_provider_error(fake: FakeAliyun) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}"
    provider = AliyunProvider(
        buckets=(ONE,),
        environ=fake.environ(),
        oss_endpoint_override=closed,
        cdn_endpoint=closed,
    )

    try:
        with pytest.raises(ProviderError) as oss_down:
            provider.domains(ONE)
        with pytest.raises(ProviderError) as cdn_down:
            provider.cdn_target(ONE, "img.example.com")
    finally:
        provider.close()

    assert "could not reach OSS" in str(oss_down.value)
    assert "could not reach Alibaba Cloud CDN" in str(cdn_down.value)


@pytest.mark.parametrize(
    ("endpoint", "region"),
    [
        ("oss-cn-hangzhou.aliyuncs.com", "cn-hangzhou"),
        ("oss-cn-hangzhou-internal.aliyuncs.com", "cn-hangzhou"),
        ("oss-ap-southeast-1.aliyuncs.com", "ap-southeast-1"),
        ("cn-shanghai.oss.aliyuncs.com", "cn-shanghai"),
        ("oss-accelerate.aliyuncs.com", None),
        ("storage.example.com", None),
    ],
)
def test_oss_region_comes_from_the_endpoint(endpoint: str, region: str | None) -> None:
    assert oss_region(endpoint) == region


def test_settings_problems_are_reported_together() -> None:
    global_endpoint = Bucket(name="bucket-fast", endpoint="oss-accelerate.aliyuncs.com")

    with pytest.raises(ConfigError) as refused:
        AliyunProvider(
            buckets=(ONE, global_endpoint),
            environ={},
            oss_endpoint_override="127.0.0.1:9000",
        )

    assert len(refused.value.problems) == 2
    assert "buckets[bucket-fast].endpoint" in refused.value.problems[0]
    assert "http://127.0.0.1:9000" in refused.value.problems[1]


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tSOMEkey"}, "ACCESS_KEY_SECRET"),
        ({"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s3cr3t"}, "ACCESS_KEY_ID"),
    ],
)
def test_half_an_access_key_pair_is_a_config_error(
    environ: dict[str, str], missing: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        credentials_from_environment(environ)

    assert f"ALIBABA_CLOUD_{missing}" in refused.value.problems[0]
    assert "s3cr3t" not in str(refused.value)
