"""Configurations the tests use: buckets in and out of mainland China, one with CDN."""

from __future__ import annotations

from typing import Any

from bot.config import FileConfig

HANGZHOU = "test-1-001"
HONGKONG = "media-hk"
FRANKFURT = "eu-assets"


def file_config(**overrides: Any) -> FileConfig:
    data: dict[str, Any] = {
        "buckets": [
            {"name": HANGZHOU, "endpoint": "oss-cn-hangzhou.aliyuncs.com"},
            {"name": HONGKONG, "endpoint": "oss-cn-hongkong.aliyuncs.com"},
            {
                "name": FRANKFURT,
                "endpoint": "oss-eu-central-1.aliyuncs.com",
                "cdn_domain": "{domain}.w.kunlunsl.com",
                "max_domains": 3,
            },
        ],
        "approvers": {"users": ["UAPPROVER1"], "usergroups": ["SOPS"]},
    }
    data.update(overrides)
    return FileConfig.model_validate(data)


TOML = """
[[buckets]]
name = "test-1-001"
endpoint = "oss-cn-hangzhou.aliyuncs.com"

[[buckets]]
name = "media-hk"
endpoint = "oss-cn-hongkong.aliyuncs.com"

[[buckets]]
name = "eu-assets"
endpoint = "oss-eu-central-1.aliyuncs.com"
cdn_domain = "{domain}.w.kunlunsl.com"
max_domains = 3

[approvers]
users = ["UAPPROVER1"]
usergroups = ["SOPS"]
"""
