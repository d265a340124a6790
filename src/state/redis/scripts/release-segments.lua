-- An encoder deleted these segments (of every rendition, or those named):
-- made segments there are no longer covered (a batch in flight is
-- untouched), a complete batch with nothing left goes, and the clients of
-- those renditions are decided again.
-- ARGV: prefix, streamSessionId, startSegment, endSegment, qualities (JSON
--       list, or null for every rendition), now
-- Replies: { result = true when any made segment was there, announced =
--          [needs] } as JSON; NOT_FOUND for an unknown stream session.
-- Mirrors: MemoryStore.releaseSegments (StreamSession.releaseSegments, then
--          MemoryStore.changed).

local id, start, finish, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6])
local S = loadSession(id)
if not S then return notFound(id) end
local qualities = cjson.decode(ARGV[5])
if qualities == cjson.null then qualities = QUALITIES else qualities = sortQualities(qualities) end
local released = false
for _, q in ipairs(qualities) do
  local spans, removed = removeSpan(S.made[q] or {}, start, finish)
  if removed then
    released = true
    if #spans == 0 then S.made[q] = nil else S.made[q] = spans end
  end
end
if not released then return reply(false) end
local kept = {}
for _, batch in ipairs(S.batches) do
  local left = not batch.isComplete
  if not left then
    for _, q in ipairs(batch.qualities) do
      for _, span in ipairs(S.made[q] or {}) do
        if span.s <= batch.endSegment and batch.startSegment <= span.e then left = true end
      end
    end
  end
  if left then kept[#kept + 1] = batch end
end
S.batches = kept
invalidate(S)
local slots = clientsOf(S, qualities)
settle(S, slots)
saveClients(S, slots)
saveSession(S, now)
publish(S)
return reply(true, S.outbox)
