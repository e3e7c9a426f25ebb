-- Heartbeat: authenticated POST /api/v1/heartbeat from many distinct peers, with the body a
-- peer node sends (its free bytes and whether it accepts uploads), taking the bearer tokens
-- of peers logged in beforehand from a file (one token a line), round robin from a random
-- start in each thread.
-- usage: wrk ... -s heartbeat.lua URL -- TOKENS_FILE [SEED]
local tokens
local index = 0

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

function init(args)
  local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
  dofile(dir .. "_lines.lua")
  tokens = read_lines(args[1])
  seed_thread(args[2])
  index = math.random(#tokens)
end

function request()
  index = index % #tokens + 1
  return wrk.format("POST", "/api/v1/heartbeat", {
    ["Authorization"] = "Bearer " .. tokens[index],
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json",
  }, '{"free_bytes": 500000000000, "accept_uploads": true}')
end
