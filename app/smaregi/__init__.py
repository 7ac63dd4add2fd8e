"""The Smaregi Platform API: one client per contract, a token cache and a rate limit shared by all processes."""
