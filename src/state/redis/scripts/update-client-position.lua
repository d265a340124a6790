-- Creates or moves a client's position: its segment, its quality count,
-- its expiry deadline; the session is no longer idle. Then announces the
-- need the move causes, if any.
-- ARGV: prefix, streamSessionId, sessionId, segmentNumber, quality, now
-- Replies: { result = true, announcement = need or false } as JSON;
--          NOT_FOUND for an unknown stream session.
-- Mirrors: MemoryStore.updateClientPosition (StreamSession.updateClientPosition,
--          then StreamSession.announceNeed).

local id, sid, seg, q, now = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local s = load(id)
if not s then return notFound(id) end
local prev = redis.call('HGET', ckey(id), sid)
if prev then
  local pq = string.match(prev, '^[^|]*|([^|]*)|')
  if pq ~= q then
    redis.call('HINCRBY', qkey(id), pq, -1)
    redis.call('HINCRBY', qkey(id), q, 1)
  end
else
  redis.call('HINCRBY', qkey(id), q, 1)
  redis.call('ZREM', P .. 'dl:i', id)
end
redis.call('HSET', ckey(id), sid, seg .. '|' .. q .. '|' .. now)
redis.call('ZADD', zkey(id), seg, sid)
redis.call('ZADD', P .. 'dl:c', now, id .. '\n' .. sid)
redis.call('HSET', skey(id), 'updatedAt', now)
changed(id)
return reply(true, announce(s))
