"""Storage providers: the bucket side of a binding.

Each provider answers for the buckets configured with its name. ``local`` keeps the
registry in the bot's own database.
"""

from bot.providers.base import BucketDomain, OwnershipToken, StorageProvider

__all__ = ["BucketDomain", "OwnershipToken", "StorageProvider"]
