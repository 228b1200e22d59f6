"""The neutral report object and its renderers (table, JSON)."""
