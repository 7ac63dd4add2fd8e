"""`POST /smaregi/bulk-callback/<token>`: Smaregi reports that one of our bulk requests finished.

Smaregi does not sign these. The URL's random token (one per request, only its hash is stored) is
the only credential, and even a genuine callback is only a hint: the import re-reads the members
from Smaregi before it records anything, so a forged or replayed callback can at most make it look
sooner.
"""
from __future__ import annotations

from flask import Blueprint, jsonify

from ..points.errors import NotFound
from ..sync import customer_import
from . import services

bp = Blueprint("bulk_callbacks", __name__)


@bp.post("/smaregi/bulk-callback/<token>")
def bulk_callback(token: str):
    if not customer_import.record_callback(services().db, token):
        raise NotFound("Unknown callback.")
    return jsonify({"received": True})
