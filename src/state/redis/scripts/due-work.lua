-- What the sweeper must do now: stalled claims, expired clients, idle
-- sessions, at most `limit` of each, for the instance that holds the sweeper
-- lease (taken or renewed here).
-- ARGV: prefix, now, clientTimeout, idleTimeout, limit, instance id, lease ms
-- Replies: a JSON list of { kind, streamSessionId, ... }; '[]' when nothing is
--          due or another instance holds the lease.
-- Mirrors: MemoryStore.dueWork (the lease has no counterpart: one process
--          needs none).

local now, limit = tonumber(ARGV[2]), tonumber(ARGV[5])
-- One sweeper at a time: the instance holding the lease, renewed as it sweeps;
-- when it dies, the lease lapses and another instance takes over.
local lease = P .. 'sweeper'
if not redis.call('SET', lease, ARGV[6], 'NX', 'PX', ARGV[7]) then
  if redis.call('GET', lease) ~= ARGV[6] then return '[]' end
  redis.call('PEXPIRE', lease, ARGV[7])
end
local due = {}

-- Claims, oldest deadline first. The memory store keeps them in the order
-- their deadlines were set; a ZSET orders ties by member. Ties within one
-- session (claims or stalls in the same millisecond) are put back in the
-- order they were set (each batch's `queued`); ties across sessions may go
-- either way, as the contract leaves them.
local claims = {}
local r = redis.call('ZRANGEBYSCORE', P .. 'dl:b', '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #r, 2 do
  local id, n = string.match(r[i], '^(.*)\n([^\n]*)$')
  claims[#claims + 1] = { id = id, n = tonumber(n), score = tonumber(r[i + 1]) }
end
local queuedOf = {}
local function queued(claim)
  if queuedOf[claim.id] == nil then
    queuedOf[claim.id] = {}
    local batches = redis.call('HGET', skey(claim.id), 'batches')
    for _, batch in ipairs(batches and cjson.decode(batches) or {}) do
      queuedOf[claim.id][batch.batchNumber] = batch.queued
    end
  end
  return queuedOf[claim.id][claim.n] or 0
end
local i = 1
while i <= #claims do
  local j = i
  while j < #claims and claims[j + 1].score == claims[i].score do j = j + 1 end
  if j > i then
    -- Within the tie, each session's claims take that session's places, in order.
    local places, members = {}, {}
    for k = i, j do
      local id = claims[k].id
      if places[id] == nil then
        places[id] = {}
        members[id] = {}
      end
      places[id][#places[id] + 1] = k
      members[id][#members[id] + 1] = claims[k]
    end
    for id, list in pairs(members) do
      if #list > 1 then
        table.sort(list, function(a, b) return queued(a) < queued(b) end)
        for k, place in ipairs(places[id]) do claims[place] = list[k] end
      end
    end
  end
  i = j + 1
end
for _, claim in ipairs(claims) do
  table.insert(due, { kind = 'batchStalled', streamSessionId = claim.id, batchNumber = claim.n })
end

for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'dl:c', '-inf', now - tonumber(ARGV[3]),
    'LIMIT', 0, limit)) do
  local id, sid = string.match(m, '^(.-)\n(.*)$')
  table.insert(due, { kind = 'clientExpired', streamSessionId = id, sessionId = sid })
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'dl:i', '-inf', now - tonumber(ARGV[4]),
    'LIMIT', 0, limit)) do
  table.insert(due, { kind = 'sessionIdle', streamSessionId = id })
end
if #due == 0 then return '[]' end
return cjson.encode(due)
