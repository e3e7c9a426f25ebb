-- Search: GET /api/v1/files?q=QUERY with a random query from a file of URL-encoded queries.
-- usage: wrk ... -s search.lua URL -- QUERIES_FILE [SEED]
local queries

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function init(args)
  local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
  dofile(dir .. "_lines.lua")
  queries = read_lines(args[1])
  seed_thread(args[2])
end

function request()
  local q = queries[math.random(#queries)]
  return wrk.format("GET", "/api/v1/files?q=" .. q, {["Accept"] = "application/json"})
end
