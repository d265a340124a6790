-- Ends a stream session that has had no clients for the idle timeout, and
-- publishes streamSessionEnded (IDLE).
-- ARGV: prefix, streamSessionId, now, idleTimeout
-- Replies: 1 when it ended the session, 0 when it was not idle long enough.
-- Mirrors: MemoryStore.endIdleSession, and Coordinator.publishEnded for the
--          event.

local id = ARGV[2]
local since = tonumber(redis.call('ZSCORE', P .. 'dl:i', id) or 'nil')
if not since or since + tonumber(ARGV[4]) > tonumber(ARGV[3]) then return 0 end
if redis.call('HLEN', ckey(id)) > 0 then
  redis.call('ZREM', P .. 'dl:i', id)
  return 0
end
endSession(id)
publishEnded(id, 'IDLE', tonumber(ARGV[3]))
return 1
