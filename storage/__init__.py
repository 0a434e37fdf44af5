"""Persistence: the tables and the only code that knows SQL."""

from storage.database import Database, database_url, failure_reason
from storage.repositories import Transaction

__all__ = ["Database", "Transaction", "database_url", "failure_reason"]
