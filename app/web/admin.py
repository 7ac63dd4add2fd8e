"""Admin JSON API for App Home. Every call carries `Authorization: Bearer <session token>`; the
shop in the verified token is the only shop these endpoints read or change."""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, jsonify, request

from .. import merchant
from ..points import audit
from ..points.errors import InvalidRequest, NotFound
from ..sync import customer_import, reasons
from . import services

bp = Blueprint("admin", __name__, url_prefix="/admin/api")


def authenticated(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        proof = services().verifier.admin_session(request.method, dict(request.headers), request.url)
        return view(merchant.admin_shop(services(), proof.shop_domain), *args, **kwargs)
    return wrapper


MAX_ROW_ID = 2**31 - 1  # our rows' primary keys are INTEGER


def _row_id(value) -> bool:
    """An id one of our rows can have. Beyond that it names no row (and would be a database error):
    the same answer as any unknown id."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ROW_ID


def body() -> dict:
    """The JSON object sent, `{}` when nothing was sent. A body that is there but unreadable is
    refused: read as `{}` it would mean "everything" to the retry."""
    if not request.get_data(cache=True):
        return {}
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return data


@bp.get("/dashboard")
@authenticated
def dashboard(shop):
    return jsonify(merchant.dashboard(services(), shop))


@bp.get("/settings")
@authenticated
def get_settings(shop):
    return jsonify(merchant.get_settings(services(), shop))


@bp.put("/settings")
@authenticated
def put_settings(shop):
    try:
        return jsonify(merchant.save_settings(services(), shop, request.get_json(silent=True)))
    except merchant.SettingsInvalid as exc:
        return jsonify({"errors": exc.errors}), 422


@bp.get("/earning")
@authenticated
def get_earning(shop):
    return jsonify(merchant.get_earning(services(), shop))


@bp.put("/earning")
@authenticated
def put_earning(shop):
    try:
        return jsonify(merchant.save_earning(services(), shop, request.get_json(silent=True)))
    except merchant.SettingsInvalid as exc:
        return jsonify({"errors": exc.errors}), 422


@bp.get("/earning/summary")
@authenticated
def earning_summary(shop):
    return jsonify(merchant.earning_summary(services(), shop))


@bp.post("/smaregi/test")
@authenticated
def test_connection(shop):
    return jsonify(merchant.test_connection(services(), shop))


@bp.get("/directory")
@authenticated
def directory(shop):
    return jsonify(merchant.directory_progress(services(), shop))


@bp.post("/directory/import")
@authenticated
def directory_import(shop):
    return jsonify(merchant.directory_progress(services(), shop, start=True)), 202


@bp.get("/sync/problems")
@authenticated
def problems(shop):
    return jsonify({"problems": merchant.problems(services(), shop)})


@bp.post("/sync/retry")
@authenticated
def retry(shop):
    ids = body().get("link_ids")
    if ids is not None and (not isinstance(ids, list) or not all(_row_id(i) for i in ids)):
        raise InvalidRequest("link_ids must be a list of ids")
    return jsonify({"queued": merchant.retry(services(), shop, ids)})


@bp.post("/sync/conflicts/<int:link_id>/resolve")
@authenticated
def resolve_conflict(shop, link_id: int):
    chosen = str(body().get("smaregi_customer_id") or "")
    if not _row_id(link_id) or not merchant.resolve_conflict(services(), shop, link_id, chosen):
        raise InvalidRequest("Not a conflict of this shop, or not one of its candidates.")
    return jsonify({"resolved": True})


@bp.get("/conversions")
@authenticated
def conversions(shop):
    return jsonify({"conversions": merchant.conversions(services(), shop, request.args.get("q", ""),
                                                        request.args.get("status", ""))})


@bp.post("/conversions/<conversion_id>/review")
@authenticated
def review(shop, conversion_id: str):
    deducted = body().get("points_were_deducted")
    if not isinstance(deducted, bool):
        raise InvalidRequest("points_were_deducted: true or false")
    if not merchant.resolve_review(services(), shop, conversion_id, deducted):
        raise NotFound("No conversion awaiting review.")
    return jsonify({"resolved": True})


@bp.get("/movements/review")
@authenticated
def movements_to_review(shop):
    return jsonify({"movements": merchant.movements_to_review(services(), shop)})


MOVEMENT_ACTIONS = ("recheck", "retry", "applied", "not_applied")


@bp.post("/movements/<movement_id>/<action>")
@authenticated
def decide_movement(shop, movement_id: str, action: str):
    if action not in MOVEMENT_ACTIONS:
        raise NotFound("No such action.")
    if len(movement_id) > 64 or not merchant.decide_movement(services(), shop, movement_id, action):
        raise NotFound("No point movement of this shop awaiting review (or not this action).")
    return jsonify({"done": True})


@bp.get("/customers")
@authenticated
def customers(shop):
    """`?ids=1,2`: the names Shopify has for these customers, read now (not stored), with admin links."""
    try:
        ids = [int(i) for i in request.args.get("ids", "").split(",") if i.strip()]
    except ValueError:
        return jsonify({"error": {"code": "invalid_request", "message": "ids: comma-separated customer ids"}}), 400
    from ..shopify.customers import customer_names

    names = customer_names(services().admin, shop.domain, ids)
    return jsonify({"customers": {str(n.customer_id): {"name": n.name, "admin_url": n.admin_url} for n in names}})


@bp.get("/data-requests")
@authenticated
def data_requests(shop):
    return jsonify({"data_requests": merchant.data_requests(services(), shop)})


@bp.get("/audit")
@authenticated
def audit_overview(shop):
    return jsonify(audit.overview(services(), shop.shop_id))


@bp.post("/audit/run")
@authenticated
def audit_run(shop):
    audit.request_audit(services(), shop.shop_id)
    return jsonify(audit.overview(services(), shop.shop_id)), 202


@bp.post("/audit/findings/<int:finding_id>/fix")
@authenticated
def audit_fix(shop, finding_id: int):
    if not _row_id(finding_id) or not audit.fix(services(), shop.shop_id, finding_id):
        raise InvalidRequest("No open finding of this shop with a safe fix; check it in Smaregi.")
    return jsonify({"fixed": True})


@bp.post("/audit/findings/<int:finding_id>/dismiss")
@authenticated
def audit_dismiss(shop, finding_id: int):
    if not _row_id(finding_id) or not audit.dismiss(services(), shop.shop_id, finding_id):
        raise NotFound("No open finding of this shop.")
    return jsonify({"dismissed": True})
@bp.get("/import")
@authenticated
def import_status(shop):
    return jsonify(_import_json(shop))


@bp.post("/import")
@authenticated
def import_start(shop):
    customer_import.start(services().db, shop.shop_id)
    return jsonify(_import_json(shop)), 202


@bp.post("/import/cancel")
@authenticated
def import_cancel(shop):
    customer_import.cancel(services().db, shop.shop_id)
    return jsonify(_import_json(shop))


def _import_json(shop) -> dict:
    db = services().db
    imp = customer_import.status(db, shop.shop_id).admin_json()
    return {"import": {**imp, **reasons.recognise(imp["reason"])},
            "held": [{**h, **reasons.recognise(h["reason"])} for h in customer_import.held_customers(db, shop.shop_id)]}
