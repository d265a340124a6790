-- Declares a batch in flight stalled when its deadline has passed: STALLED
-- is announced (the same number and range, to be claimed again), and its
-- next deadline set.
-- ARGV: prefix, streamSessionId, batchNumber, now, batchTimeout
-- Replies: { result = true or false (not due, or not in flight), announced =
--          [STALLED] } as JSON.
-- Mirrors: MemoryStore.stallBatch (StreamSession.markStalled, then
--          MemoryStore.changed).

local id, n, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local member = bmember(id, n)
local deadline = tonumber(redis.call('ZSCORE', P .. 'dl:b', member) or 'nil')
if not deadline then return reply(false) end
if redis.call('EXISTS', skey(id)) == 0 then
  -- A deadline left by a session gone: nothing to do but forget it.
  redis.call('ZREM', P .. 'dl:b', member)
  return reply(false)
end
if deadline > now then return reply(false) end
local S = loadSession(id)
local batch = findBatch(S, n)
-- StreamSession.markStalled.
if batch == nil or batch.isComplete then return reply(false) end
batch.stalls = batch.stalls + 1
batch.stalledAt = now
deleteNeed(S, n)
announce(S, 'STALLED', n, batch.startSegment, batch.endSegment, batch.qualities,
  batch.videoStartOffset)
-- Stalled again if nobody claims it again within another timeout.
setDeadline(S, batch, now + tonumber(ARGV[5]))
saveSession(S, now)
publish(S)
return reply(true, S.outbox)
