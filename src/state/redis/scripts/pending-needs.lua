-- The need each session has now, as it was announced (for a new subscriber's
-- replay).
-- ARGV: prefix, streamSessionId, or '' for every session
-- Replies: a JSON list of needs with their sequence and streamSessionId.
-- Mirrors: MemoryStore.pendingNeeds (StreamSession.pendingNeed).

local ids
if ARGV[2] ~= '' then ids = { ARGV[2] } else ids = redis.call('ZRANGE', P .. 'sessions', 0, -1) end
local out = {}
for _, id in ipairs(ids) do
  local s = load(id)
  if s then
    local nd = pending(s)
    if nd then table.insert(out, nd) end
  end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
