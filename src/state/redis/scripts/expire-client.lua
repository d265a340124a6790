-- Removes a client that has not reported within the client timeout (the
-- sweeper found it due; it may have reported since).
-- ARGV: prefix, streamSessionId, sessionId, now, clientTimeout
-- Replies: { result = true or false (not there, or not due), announcement =
--          need or false } as JSON.
-- Mirrors: MemoryStore.expireClient.

local id, sid, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local s = load(id)
if not s then
  redis.call('ZREM', P .. 'dl:c', id .. '\n' .. sid)
  return reply(false, false)
end
local prev = redis.call('HGET', ckey(id), sid)
if not prev then return reply(false, false) end
local t = tonumber(string.match(prev, '|([^|]*)$'))
if t + tonumber(ARGV[5]) > now then return reply(false, false) end
removeClient(s, sid, now)
changed(id)
return reply(true, announce(s))
