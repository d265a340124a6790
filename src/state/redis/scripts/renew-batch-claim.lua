-- The encoder making a batch is still at work: its stall deadline moves to
-- now + batchTimeout. Nothing a reader sees changes, so the session's
-- updatedAt stays and nothing is published.
-- ARGV: prefix, streamSessionId, batchNumber, now, batchTimeout
-- Replies: { result = batch } as JSON; NOT_FOUND for an unknown stream
--          session; CONFLICT when the batch is not being made (no such
--          batch, complete, or stalled).
-- Mirrors: MemoryStore.renewBatchClaim (StreamSession.renewClaim).

local id, n, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local S = loadSession(id)
if not S then return notFound(id) end
local batch = findBatch(S, n)
if batch == nil then return fail('CONFLICT', 'notABatch', { id = id, batchNumber = n }) end
if batch.isComplete then
  return fail('CONFLICT', 'renewComplete', { id = id, batchNumber = n })
end
if batch.stalledAt ~= nil then
  return fail('CONFLICT', 'renewStalled', { id = id, batchNumber = n })
end
batch.renewedAt = now
setDeadline(S, batch, now + tonumber(ARGV[5]))
redis.call('HSET', skey(id), 'batches', encodeList(S.batches), 'queueSerial', S.queueSerial)
return reply(publicBatch(batch))
