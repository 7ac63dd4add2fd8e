"""Everything that talks to or verifies Shopify. `shopifyapp` does the protocol work."""
