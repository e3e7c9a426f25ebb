-- The ceiling: GET the trivial JSON endpoint (/api/v1/health) on the same server configuration.
wrk.method = "GET"
wrk.path = "/api/v1/health"
wrk.headers["Accept"] = "application/json"
