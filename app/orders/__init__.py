"""Online earning: order deliveries, the earning rule, coupons used in orders and given back."""
