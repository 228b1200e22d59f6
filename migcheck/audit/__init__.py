"""The fleet audit: every guest of an inventory against every candidate host (``migcheck audit``)."""
