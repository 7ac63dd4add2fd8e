"""Shopify customers → Smaregi members: intake, matching rules, the member directory and the worker."""
