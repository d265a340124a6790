-- Marks the current batch complete and clears its stall deadline; completing
-- it again changes nothing.
-- ARGV: prefix, streamSessionId, batchNumber, now
-- Replies: { result = batch, announcement = need or false, repeated = true
--          when it was already complete } as JSON; NOT_FOUND for an unknown
--          stream session; CONFLICT without a batch or for another batch.
-- Mirrors: MemoryStore.completeBatch (StreamSession.completeBatch, then
--          StreamSession.announceNeed).

local id, n, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local s = load(id)
if not s then return notFound(id) end
local b = s.currentBatch
if not b then
  return fail('CONFLICT', 'noBatchToComplete', { id = id, batchNumber = n })
end
if b.batchNumber ~= n then
  return fail('CONFLICT', 'notCurrentBatch', { id = id, batchNumber = n, current = b.batchNumber })
end
if b.isComplete then return cjson.encode({ result = b, announcement = false, repeated = true }) end
b.generationEnded = now
b.isComplete = true
s.stalls = 0
redis.call('HSET', skey(id), 'currentBatch', cjson.encode(b), 'stalls', 0, 'updatedAt', now)
redis.call('ZREM', P .. 'dl:b', id)
changed(id)
return reply(b, announce(s))
