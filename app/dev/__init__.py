"""Local stand-ins (Smaregi, Shopify Admin, a dev storefront) and the one-command dev runner."""
