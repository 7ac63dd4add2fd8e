"""Shopify webhook deliveries: what one is (delivery.py) and where each topic goes (dispatch.py)."""
