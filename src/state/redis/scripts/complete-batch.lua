-- Marks a batch complete and clears its stall deadline; completing it again
-- changes nothing. What it made is covered from now on, and the clients of
-- its renditions are decided again (one near the end of what is now made
-- asks for what follows).
-- ARGV: prefix, streamSessionId, batchNumber, now
-- Replies: { result = batch, announced = [needs], repeated = true when it was
--          already complete } as JSON; NOT_FOUND for an unknown stream
--          session; CONFLICT when it is not a batch of the session.
-- Mirrors: MemoryStore.completeBatch (StreamSession.completeBatch, then
--          MemoryStore.changed).

local id, n, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local S = loadSession(id)
if not S then return notFound(id) end
local batch = findBatch(S, n)
if batch == nil then return fail('CONFLICT', 'notABatch', { id = id, batchNumber = n }) end
if batch.isComplete then return reply(publicBatch(batch), {}, true) end
batch.generationEnded = now
batch.isComplete = true
batch.stalls = 0
batch.stalledAt = nil
batch.queued = nil
local stalled = findNeed(S, n)
if stalled ~= nil and stalled.reason == 'STALLED' then deleteNeed(S, n) end
for _, q in ipairs(batch.qualities) do
  S.made[q] = addSpan(S.made[q] or {}, batch.startSegment, batch.endSegment)
end
local result = publicBatch(batch)
if S.current and S.current.batchNumber == n then S.current = result end
invalidate(S)
redis.call('ZREM', P .. 'dl:b', bmember(id, n))
local slots = clientsOf(S, batch.qualities)
settle(S, slots)
saveClients(S, slots)
saveSession(S, now)
publish(S)
return reply(result, S.outbox)
