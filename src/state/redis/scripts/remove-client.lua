-- Removes a client; the pending needs it relied on are withdrawn when nobody
-- else relies on them. Announces nothing.
-- ARGV: prefix, streamSessionId, sessionId, now
-- Replies: { result = true or false (no such client), announced = [] } as
--          JSON; NOT_FOUND for an unknown stream session.
-- Mirrors: MemoryStore.removeClient (StreamSession.removeClient, then
--          MemoryStore.changed).

local id = ARGV[2]
local entry = redis.call('HGET', ckey(id), ARGV[3])
if not entry then
  if redis.call('EXISTS', skey(id)) == 0 then return notFound(id) end
  return reply(false)
end
removeClient(id, ARGV[3], entry, tonumber(ARGV[4]))
changed(id)
return reply(true)
