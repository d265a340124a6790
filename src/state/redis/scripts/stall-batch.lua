-- Declares the claimed batch stalled when its deadline has passed, so that it
-- is needed again, and sets the next deadline.
-- ARGV: prefix, streamSessionId, batchNumber, now, batchTimeout
-- Replies: { result = true or false (not due, or another batch), announcement
--          = need or false } as JSON.
-- Mirrors: MemoryStore.stallBatch (StreamSession.markStalled, then
--          StreamSession.announceNeed).

local id, n, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local s = load(id)
local deadline = tonumber(redis.call('ZSCORE', P .. 'dl:b', id) or 'nil')
if not s or not deadline then
  redis.call('ZREM', P .. 'dl:b', id)
  return reply(false, false)
end
local b = s.currentBatch
if deadline > now or not b or b.isComplete or b.batchNumber ~= n then
  return reply(false, false)
end
s.stalls = s.stalls + 1
s.stallSerial = s.stallSerial + 1
redis.call('HSET', skey(id), 'stalls', s.stalls, 'stallSerial', s.stallSerial, 'updatedAt', now)
redis.call('ZADD', P .. 'dl:b', now + tonumber(ARGV[5]), id)
changed(id)
return reply(true, announce(s))
