-- GET PREFIX..ITEM with a random ITEM from a file of URL-ready lines: search queries
-- (PREFIX /api/v1/files?q=) or seeded digests (PREFIX /api/v1/files/).
-- usage: wrk ... -s random_get.lua URL -- PREFIX ITEMS_FILE [SEED]
local prefix, items

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function init(args)
  local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
  dofile(dir .. "_lines.lua")
  prefix = args[1]
  items = read_lines(args[2])
  seed_thread(args[3])
end

function request()
  return wrk.format("GET", prefix .. items[math.random(#items)], {["Accept"] = "application/json"})
end
