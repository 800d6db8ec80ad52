"""Approval decisions: who decided, proven by a signed token."""
