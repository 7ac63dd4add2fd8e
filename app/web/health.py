from __future__ import annotations

from flask import Blueprint, jsonify

from . import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    if services().db.ping():
        return jsonify({"status": "ok"})
    return jsonify({"status": "unavailable", "reason": "database"}), 503
