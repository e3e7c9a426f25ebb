"""One blueprint per resource (create_app registers them all under /api/v1), and what they share: paging, problems."""
