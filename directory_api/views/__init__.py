"""One APIBlueprint per resource (create_app registers them all under /api/v1), how they declare endpoints (api.py), the docs page and problems."""
