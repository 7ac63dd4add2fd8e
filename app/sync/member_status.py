"""A linked member's state at the register (member_links.member_status)."""
from __future__ import annotations

from enum import StrEnum


class MemberStatus(StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"  # 退会 / 名寄せ at the register (Smaregi status 3, 4)
    DELETED = "deleted"


# The shopper gets `not_registered`; the merchant sees the state on the link.
UNREGISTERED = (MemberStatus.WITHDRAWN.value, MemberStatus.DELETED.value)
