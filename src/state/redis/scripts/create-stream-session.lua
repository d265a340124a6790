-- Creates a stream session: its settings hash, its place in the creation
-- order, and an idle deadline (it has no clients yet); then announces its
-- first batch.
-- ARGV: prefix, id, videoSourcePath, segmentDuration, batchSize, threshold,
--       startSegment, durationSeconds ('' when unknown), lastSegment (''
--       when unknown), qualities ("1080p,720p", QUALITIES order), now
-- Replies: { result = true, announced = [FIRST_BATCH] } as JSON;
--          CONFLICT when the id is taken.
-- Mirrors: MemoryStore.createStreamSession (StreamSession.create, then
--          MemoryStore.changed).

local id, now = ARGV[2], tonumber(ARGV[11])
if redis.call('EXISTS', skey(id)) == 1 then
  return fail('CONFLICT', 'streamSessionExists', { id = id })
end
local ord = redis.call('INCR', P .. 'seq')
redis.call('HSET', skey(id), 'videoSourcePath', ARGV[3], 'segmentDuration', ARGV[4],
  'batchSize', ARGV[5], 'threshold', ARGV[6], 'startSegment', ARGV[7],
  'durationSeconds', ARGV[8], 'lastSegment', ARGV[9], 'qualities', ARGV[10],
  'createdAt', now, 'updatedAt', now, 'batches', '[]', 'made', '{}', 'needs', '[]',
  'needClients', '{}', 'claimedHigh', 0, 'announcements', 0, 'queueSerial', 0, 'order', ord)
redis.call('ZADD', P .. 'sessions', ord, id)
redis.call('ZADD', P .. 'dl:i', now, id)
local S = loadSession(id)
announce(S, 'FIRST_BATCH', 0, S.startSegment, needEnd(S, S.startSegment, S.qualities),
  S.qualities)
saveSession(S, now)
publish(S)
return reply(true, S.outbox)
