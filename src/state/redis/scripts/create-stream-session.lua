-- Creates a stream session: its settings hash, its place in the creation
-- order, and an idle deadline (it has no clients yet); then announces its
-- first batch.
-- ARGV: prefix, id, videoSourcePath, segmentDuration, batchSize, threshold,
--       startSegment, now
-- Replies: { result = true, announcement = need or false } as JSON;
--          CONFLICT when the id is taken.
-- Mirrors: MemoryStore.createStreamSession (new StreamSession, then
--          StreamSession.announceNeed).

local id, now = ARGV[2], tonumber(ARGV[8])
if redis.call('EXISTS', skey(id)) == 1 then
  return fail('CONFLICT', 'streamSessionExists', { id = id })
end
local ord = redis.call('INCR', P .. 'seq')
redis.call('HSET', skey(id), 'videoSourcePath', ARGV[3], 'segmentDuration', ARGV[4],
  'batchSize', ARGV[5], 'threshold', ARGV[6], 'startSegment', ARGV[7],
  'createdAt', now, 'updatedAt', now, 'stalls', 0, 'stallSerial', 0, 'announcements', 0,
  'order', ord)
redis.call('ZADD', P .. 'sessions', ord, id)
redis.call('ZADD', P .. 'dl:i', now, id)
changed(id)
return reply(true, announce(load(id)))
