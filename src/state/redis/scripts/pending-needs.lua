-- Every need pending in each session (or the one named), as announced, by
-- sequence: what a new subscriber is told first.
-- ARGV: prefix, streamSessionId, or '' for every session
-- Replies: a JSON list of needs with their sequence and streamSessionId,
--          sessions in creation order.
-- Mirrors: MemoryStore.pendingNeeds (StreamSession.pendingNeeds).

local ids
if ARGV[2] ~= '' then ids = { ARGV[2] } else ids = redis.call('ZRANGE', P .. 'sessions', 0, -1) end
local out = {}
for _, id in ipairs(ids) do
  local needs = redis.call('HGET', skey(id), 'needs')
  if needs then
    local list = cjson.decode(needs)
    -- Kept by sequence already (announce appends); sorted as the TS sorts.
    table.sort(list, function(a, b) return a.sequence < b.sequence end)
    for _, need in ipairs(list) do
      need.streamSessionId = id
      out[#out + 1] = need
    end
  end
end
return encodeList(out)
