-- Removes a client, then announces the need its leaving causes, if any.
-- ARGV: prefix, streamSessionId, sessionId, now
-- Replies: { result = true or false (no such client), announcement = need or
--          false } as JSON; NOT_FOUND for an unknown stream session.
-- Mirrors: MemoryStore.removeClient (StreamSession.removeClient, then
--          StreamSession.announceNeed).

local id = ARGV[2]
local s = load(id)
if not s then return notFound(id) end
if not removeClient(s, ARGV[3], tonumber(ARGV[4])) then return reply(false, false) end
changed(id)
return reply(true, announce(s))
