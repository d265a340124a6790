-- Claims and starts a batch, if its number is the one the session expects
-- next, and sets its stall deadline.
-- ARGV: prefix, streamSessionId, batchNumber, startSegment, endSegment,
--       videoSourcePath, videoStartOffset, now, batchTimeout
-- Replies: { result = batch, announcement = need or false } as JSON;
--          NOT_FOUND for an unknown stream session; CONFLICT while another
--          batch is generating, or for a number other than the expected one.
-- Mirrors: MemoryStore.setCurrentBatch (StreamSession.setCurrentBatch and
--          StreamSession.nextBatchNumber, then StreamSession.announceNeed).

local id, n, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[8])
local s = load(id)
if not s then return notFound(id) end
local b = s.currentBatch
local expected = nil
if not b then expected = 0
elseif b.isComplete then expected = b.batchNumber + 1
elseif s.stalls > 0 then expected = b.batchNumber end
if expected == nil then
  return fail('CONFLICT', 'batchStillGenerating',
    { id = id, current = b.batchNumber, batchNumber = n })
end
if n ~= expected then
  return fail('CONFLICT', 'unexpectedBatch', { id = id, expected = expected, batchNumber = n })
end
s.currentBatch = { batchNumber = n, startSegment = tonumber(ARGV[4]),
  endSegment = tonumber(ARGV[5]), videoSourcePath = ARGV[6],
  videoStartOffset = tonumber(ARGV[7]), generationStarted = now, generationEnded = cjson.null,
  isComplete = false }
s.stalls = 0
redis.call('HSET', skey(id), 'currentBatch', cjson.encode(s.currentBatch), 'stalls', 0,
  'updatedAt', now)
redis.call('ZADD', P .. 'dl:b', now + tonumber(ARGV[9]), id)
changed(id)
return reply(s.currentBatch, announce(s))
