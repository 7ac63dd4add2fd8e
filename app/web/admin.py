"""Admin JSON API for App Home. Every call carries `Authorization: Bearer <session token>`; the
shop in the verified token is the only shop these endpoints read or change."""
from __future__ import annotations

from functools import wraps

from flask import Blueprint, Response, jsonify, request

from .. import merchant
from ..shopify.verify import InvalidSignature
from . import services
from .app_home import PATCH_ID_TOKEN_PATH

bp = Blueprint("admin", __name__, url_prefix="/admin/api")


def authenticated(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not request.headers.get("Authorization"):  # a document URL's ?id_token= is not enough here
            return jsonify({"error": {"code": "invalid_session", "message": "Bearer token required."}}), 401
        try:
            proof = services().verifier.app_home(request.method, dict(request.headers), request.url,
                                                 PATCH_ID_TOKEN_PATH)
        except InvalidSignature as exc:
            # 401 + X-Shopify-Retry-Invalid-Session-Request: App Bridge fetches a fresh token and retries.
            return Response('{"error": {"code": "invalid_session", "message": "Session expired."}}',
                            status=401 if exc.status == 302 else exc.status, headers=exc.headers,
                            content_type="application/json")
        return view(merchant.admin_shop(services(), proof.shop_domain), *args, **kwargs)
    return wrapper


def body() -> dict:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


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
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, int) for i in ids)):
        return jsonify({"error": {"code": "invalid_request", "message": "link_ids must be a list of ids"}}), 400
    return jsonify({"queued": merchant.retry(services(), shop, ids)})


@bp.post("/sync/conflicts/<int:link_id>/resolve")
@authenticated
def resolve_conflict(shop, link_id: int):
    chosen = str(body().get("smaregi_customer_id") or "")
    if not merchant.resolve_conflict(services(), shop, link_id, chosen):
        return jsonify({"error": {"code": "invalid_request", "message": "Not a conflict of this shop, or not "
                                                                        "one of its candidates."}}), 400
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
        return jsonify({"error": {"code": "invalid_request", "message": "points_were_deducted: true or false"}}), 400
    if not merchant.resolve_review(services(), shop, conversion_id, deducted):
        return jsonify({"error": {"code": "invalid_request", "message": "No conversion awaiting review."}}), 404
    return jsonify({"resolved": True})


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
