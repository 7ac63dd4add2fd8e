"""Points: the live balance read model and the points→coupon conversion (the money path)."""
