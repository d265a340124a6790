-- Creates or moves a client's position. The hot path: a client that stays
-- within its safe range [lo, hi] in the same rendition is served by what is
-- made or in flight, so its move is stored and nothing else is read or
-- decided (no session hash, no JSON). Otherwise the session is loaded and the
-- client decided again (StreamSession.settle), which may announce needs.
-- ARGV: prefix, streamSessionId, sessionId, segmentNumber, quality, now
-- Replies: { result = true, announced = [needs] } as JSON;
--          NOT_FOUND for an unknown stream session; BAD_USER_INPUT past the
--          video's last segment.
-- Mirrors: MemoryStore.updateClientPosition (StreamSession.updateClientPosition,
--          then MemoryStore.changed).

local id, sid, segArg, q, nowArg = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local seg = tonumber(segArg)
local entry = redis.call('HGET', ckey(id), sid)
if entry then
  -- The hot path: "segment|quality|lastUpdated|lo|hi|needs".
  local pq, lo, hi = string.match(entry, '^[^|]*|([^|]*)|[^|]*|([^|]*)|([^|]*)|')
  if pq == q and tonumber(lo) <= seg and seg <= tonumber(hi) then
    redis.call('HSET', ckey(id), sid, segArg .. '|' .. q .. '|' .. nowArg .. '|' .. lo .. '|' .. hi .. '|')
    redis.call('ZADD', zkey(id), seg, sid)
    redis.call('ZADD', P .. 'dl:c', nowArg, id .. '\n' .. sid)
    redis.call('HSET', skey(id), 'updatedAt', nowArg)
    changed(id)
    return '{"result":true}'
  end
end

local now = tonumber(nowArg)
local S = loadSession(id)
if not S then return notFound(id) end
if S.lastSegment ~= nil and seg > S.lastSegment then
  return fail('BAD_USER_INPUT', 'pastLastSegment',
    { id = id, segmentNumber = seg, lastSegment = S.lastSegment })
end
local slot
if entry then
  slot = parseClient(sid, entry)
else
  slot = { sid = sid, lo = EMPTY_LO, hi = EMPTY_HI, deps = {} }
  -- No longer idle (MemoryStore: idleSince.delete when it has one client).
  redis.call('ZREM', P .. 'dl:i', id)
end
slot.seg = seg
slot.q = q
slot.t = nowArg
redis.call('ZADD', zkey(id), seg, sid)
redis.call('ZADD', P .. 'dl:c', now, id .. '\n' .. sid)
settle(S, { slot })
saveClients(S, { slot })
saveSession(S, now)
publish(S)
return reply(true, S.outbox)
