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
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'dl:b', '-inf', now, 'LIMIT', 0, limit)) do
  local b = redis.call('HGET', skey(id), 'currentBatch')
  local n = b and cjson.decode(b).batchNumber or 0
  table.insert(due, { kind = 'batchStalled', streamSessionId = id, batchNumber = n })
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
