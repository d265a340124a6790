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
  return fail('CONFLICT', "Stream session '" .. id .. "' already exists.")
end
local ord = redis.call('INCR', P .. 'seq')
redis.call('HSET', skey(id), 'vsp', ARGV[3], 'sd', ARGV[4], 'bs', ARGV[5], 'th', ARGV[6],
  'ss', ARGV[7], 'ca', now, 'ua', now, 'st', 0, 'ser', 0, 'n', 0, 'ord', ord)
redis.call('ZADD', P .. 'sessions', ord, id)
redis.call('ZADD', P .. 'dl:i', now, id)
changed(id)
return reply(true, announce(load(id)))
