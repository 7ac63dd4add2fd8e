"""The repository documents itself: every relative link in the README and docs/ resolves inside it."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_docs_exist_and_the_readme_links_them():
    readme = (ROOT / "README.md").read_text()
    assert "docs/api.md" in readme and "docs/operations.md" in readme
    assert readme.index("## Two commands") < readme.index("## Where things are")


def test_no_link_or_path_leaves_the_repository():
    for doc in DOCS:
        text = doc.read_text()
        assert "../shared" not in text and "DESIGN.md" not in text, doc.name
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            resolved = (doc.parent / target).resolve()
            assert resolved.is_relative_to(ROOT) and resolved.exists(), (doc.name, target)


def test_the_api_doc_covers_every_contract_error_code_and_route():
    import pkgutil
    from importlib import import_module

    import app
    from app.errors import AppError

    for module in pkgutil.walk_packages(app.__path__, "app."):  # every error class is defined somewhere in app
        if module.name != "app.gunicorn_conf" and not module.name.startswith("app.dev"):  # these read the environment
            import_module(module.name)

    def every(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from every(sub)

    api = (ROOT / "docs" / "api.md").read_text()
    for code in {cls.code for cls in every(AppError)}:
        assert f"`{code}`" in api, code
    for route in ("/webhooks", "/proxy/balance", "/proxy/conversions", "/customer-account/balance",
                  "/smaregi/webhooks", "/admin/api/settings", "/healthz", "import status"):
        assert route in api
