-- Shared helpers (loaded with dofile): read the non-empty lines of a file into a table, and
-- seed each wrk thread's random stream differently but reproducibly.
function read_lines(path)
  local items = {}
  local fh = assert(io.open(path, "r"), "cannot open " .. path)
  for line in fh:lines() do
    if #line > 0 then items[#items + 1] = line end
  end
  fh:close()
  assert(#items > 0, "no lines in " .. path)
  return items
end

function seed_thread(seed_arg)
  -- thread_id is set on each thread's Lua state by setup() in the main state
  math.randomseed((tonumber(seed_arg or "1") or 1) * 7919 + (thread_id or 0))
end
