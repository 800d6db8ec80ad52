"""The operators' HTTP API: `flowbus.api.app.create_app` builds it, `flowbus api` serves it."""
