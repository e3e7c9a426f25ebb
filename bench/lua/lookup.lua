-- File lookup: GET /api/v1/files/{sha256} with a random sha256 from a file of seeded digests.
-- usage: wrk ... -s lookup.lua URL -- SHA256_FILE [SEED]
local digests

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function init(args)
  local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
  dofile(dir .. "_lines.lua")
  digests = read_lines(args[1])
  seed_thread(args[2])
end

function request()
  local sha = digests[math.random(#digests)]
  return wrk.format("GET", "/api/v1/files/" .. sha, {["Accept"] = "application/json"})
end
