-- Ends a stream session: deletes its keys and deadlines, publishes
-- streamSessionEnded (ENDED).
-- ARGV: prefix, id, now
-- Replies: 1 when it ended the session, 0 when there was none.
-- Mirrors: MemoryStore.endStreamSession, and Coordinator.publishEnded for
--          the event.

local id = ARGV[2]
if redis.call('EXISTS', skey(id)) == 0 then return 0 end
endSession(id)
publishEnded(id, 'ENDED', tonumber(ARGV[3]))
return 1
