"""domainbot: binds a team's own domain names to object-storage buckets from Slack."""

__version__ = "0.1.0"
