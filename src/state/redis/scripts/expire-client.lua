-- Removes a client that has not reported within the client timeout (the
-- sweeper found it due; it may have reported since).
-- ARGV: prefix, streamSessionId, sessionId, now, clientTimeout
-- Replies: { result = true or false (not there, or not due), announced = [] }
--          as JSON.
-- Mirrors: MemoryStore.expireClient.

local id, sid, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local entry = redis.call('HGET', ckey(id), sid)
if not entry then
  -- A deadline left by a session gone: nothing to do but forget it.
  if redis.call('EXISTS', skey(id)) == 0 then redis.call('ZREM', P .. 'dl:c', id .. '\n' .. sid) end
  return reply(false)
end
if tonumber(parseClient(sid, entry).t) + tonumber(ARGV[5]) > now then return reply(false) end
removeClient(id, sid, entry, now)
changed(id)
return reply(true)
