"""The member card the register scans: the member's code as a CODE128 barcode and a QR code.

Drawn here, never in the browser, with kept encoders (python-barcode's CODE128, segno's QR) as SVG
with a viewBox, black on white with quiet zones so the page can show them full screen at any
size. Only ever for the verified shopper: the code is the one the balance shows (the directory's
current code, else the one we set, else a member found by the Shopify id).
"""
from __future__ import annotations

import base64
import hashlib
import io
import time
from dataclasses import dataclass
from functools import lru_cache

import barcode
import segno

from ..services import Services
from ..smaregi.errors import ContractPaused, SmaregiError, SmaregiTimeout
from .errors import PosTimeout, PosUnavailable
from .member import Shopper, find_member, linked_member, shop_and_settings_in

CARD_VERSION = "1"  # part of the ETag: bump when the drawing changes
LOOKUP_BUDGET_S = 1.0
QUIET_MODULES = 10  # CODE128 needs ≥ 10 modules of white either side
BAR_HEIGHT_MODULES = 60
QR_BORDER = 4  # the QR standard's quiet zone


@dataclass(frozen=True)
class MemberCard:
    code: str
    barcode_svg: str
    qr_svg: str

    @property
    def etag(self) -> str:
        return hashlib.sha256(f"{CARD_VERSION}:{self.code}".encode()).hexdigest()[:32]

    def as_json(self) -> dict:
        return {"member": {"code": self.code},
                "barcode": {"format": "CODE128", "svg": self.barcode_svg, "data_uri": _data_uri(self.barcode_svg)},
                "qr": {"format": "QR", "svg": self.qr_svg, "data_uri": _data_uri(self.qr_svg)}}


def member_card(services: Services, shopper: Shopper) -> MemberCard:
    """Raises NotRegistered for a customer with no member (or one withdrawn/deleted at the register)."""
    with services.db.transaction() as session:
        _, settings = shop_and_settings_in(session, services.config, shopper.shop_domain)
        linked = linked_member(session, settings.contract_id, settings.shop_id, shopper.customer_id)
    if linked is None:  # no link yet: the member whose code is the Shopify id, as the balance does
        try:
            linked = find_member(services.smaregi.contract(settings.contract_id), shopper.customer_id, None,
                                 time.monotonic() + LOOKUP_BUDGET_S)
        except (SmaregiTimeout, ContractPaused):
            raise PosTimeout() from None
        except SmaregiError:
            raise PosUnavailable() from None
    return draw(linked.code)


@lru_cache(maxsize=4096)
def draw(code: str) -> MemberCard:
    return MemberCard(code, barcode_svg(code), qr_svg(code))


def barcode_svg(code: str) -> str:
    """python-barcode encodes (start, data, checksum, stop); this only draws its modules as bars."""
    modules = barcode.get("code128", code).build()[0]
    width = len(modules) + 2 * QUIET_MODULES
    bars, x = [], 0
    while x < len(modules):
        if modules[x] == "1":
            run = len(modules[x:]) - len(modules[x:].lstrip("1"))
            bars.append(f'<rect x="{x + QUIET_MODULES}" y="0" width="{run}" height="{BAR_HEIGHT_MODULES}"/>')
            x += run
        else:
            x += 1
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {BAR_HEIGHT_MODULES}" '
            f'shape-rendering="crispEdges" role="img" aria-label="CODE128 {_escape(code)}">'
            f'<rect width="{width}" height="{BAR_HEIGHT_MODULES}" fill="#fff"/><g fill="#000">{"".join(bars)}</g></svg>')


def qr_svg(code: str) -> str:
    out = io.BytesIO()
    segno.make(code, error="m", micro=False).save(
        out, kind="svg", scale=1, border=QR_BORDER, dark="#000", light="#fff", xmldecl=False, omitsize=True,
        svgclass=None, lineclass=None)
    return out.getvalue().decode()


def _data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
