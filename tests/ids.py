"""A fixed ID key for tests that make IDs without a stack (whose key is its own)."""

from __future__ import annotations

from app.ids import IdSeal

TEST_SEAL = IdSeal(b"imptrack tests, never a real key")
