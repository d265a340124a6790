-- Shared by every script: prepended to each when the store loads them (see
-- ../lua.ts). A change and the batch-need decision it causes are one script,
-- so one round trip and one atomic step, whichever instance runs it; the
-- shared test suite holds this and the memory store to the same behaviour.
--
-- The one legend of the keys and fields; RedisStore's view() in
-- redis-store.ts reads them too.
--
-- Keys (all under the prefix, ARGV[1]; not for Redis Cluster, which would
-- need every key of a script in one slot):
--   s:<id>    hash    the stream session, fields below
--   c:<id>    hash    client sessionId -> "segmentNumber|quality|lastUpdated"
--   z:<id>    zset    client sessionId scored by segment (furthest, slowest)
--   q:<id>    hash    quality -> number of clients playing it
--   sessions  zset    stream session id scored by creation order
--   seq       string  the creation order counter
--   events    channel what the scripts publish (RedisEventBus reads it)
--   sweeper   string  the id of the instance that sweeps, with a lease (PX)
--   dl:c      zset    "<id>\n<sessionId>" scored by the client's last report
--   dl:b      zset    id scored by when its claimed batch stalls
--   dl:i      zset    id of a session without clients, scored by since when
--
-- Fields of s:<id> (StreamSessionState in stream-session.ts):
--   videoSourcePath, segmentDuration, batchSize, threshold, startSegment
--                   the settings, as created
--   createdAt, updatedAt   epoch milliseconds
--   currentBatch    JSON BatchState; absent before the first claim
--   stalls          stalls of the current batch since it was claimed
--   stallSerial     stalls in all, never reset: tells each stall's need apart
--   announced       JSON AnnouncedNeed, the need last announced; absent before
--   announcements   how many needs were announced: the latest one's sequence
--   order           the session's creation order (its score in sessions)

local P = ARGV[1]
local function skey(id) return P .. 's:' .. id end
local function ckey(id) return P .. 'c:' .. id end
local function zkey(id) return P .. 'z:' .. id end
local function qkey(id) return P .. 'q:' .. id end
-- QUALITIES in model.ts, best first.
local QUALITIES = {'1080p', '720p', '480p'}

-- The message `name` of MESSAGES with its values filled in: message() in
-- messages.ts. MESSAGES is that file's table, which lua.ts writes as Lua
-- before this file; the scripts spell no message themselves.
local function message(name, values)
  local template = MESSAGES[name] or error('no message ' .. name)
  return (string.gsub(template, '{(%w+)}', function(key)
    local value = values[key]
    -- nil keeps the placeholder as written, as message() does.
    if value ~= nil then return tostring(value) end
  end))
end

-- An error reply RedisStore turns into the domain's error: its code, then
-- the message `name` of MESSAGES.
local function fail(code, name, values)
  return redis.error_reply(code .. ' ' .. message(name, values))
end
-- streamSessionNotFound in errors.ts.
local function notFound(id) return fail('NOT_FOUND', 'streamSessionNotFound', { id = id }) end

-- The session's hash as a table (StreamSession's fields), or nil when there is none.
local function load(id)
  local h = redis.call('HGETALL', skey(id))
  if #h == 0 then return nil end
  local s = { id = id }
  for i = 1, #h, 2 do s[h[i]] = h[i + 1] end
  s.segmentDuration = tonumber(s.segmentDuration)
  s.batchSize = tonumber(s.batchSize)
  s.threshold = tonumber(s.threshold)
  s.startSegment = tonumber(s.startSegment)
  s.stalls = tonumber(s.stalls)
  s.stallSerial = tonumber(s.stallSerial)
  s.announcements = tonumber(s.announcements)
  if s.currentBatch then s.currentBatch = cjson.decode(s.currentBatch) end
  if s.announced then s.announced = cjson.decode(s.announced) end
  return s
end

-- The highest segment among the clients, or nil: StreamSession.furthestSegment.
local function furthest(id)
  local r = redis.call('ZREVRANGE', zkey(id), 0, 0, 'WITHSCORES')
  if #r == 0 then return nil end
  return tonumber(r[2])
end

-- The distinct qualities the clients play, best first: StreamSession.qualities.
local function qualities(id)
  local out = {}
  for _, q in ipairs(QUALITIES) do
    if tonumber(redis.call('HGET', qkey(id), q) or '0') > 0 then table.insert(out, q) end
  end
  return out
end

-- Which batch, if any, the session needs now: decideBatchNeed in batch-need.ts.
local function decide(s)
  local f = furthest(s.id)
  local b = s.currentBatch
  local function need(reason, n, start)
    return { reason = reason, batchNumber = n, startSegment = start,
      endSegment = start + s.batchSize - 1, videoSourcePath = s.videoSourcePath,
      videoStartOffset = start * s.segmentDuration, furthestSegment = f }
  end
  if not b then return need('FIRST_BATCH', 0, s.startSegment) end
  if not b.isComplete then
    if s.stalls == 0 then return nil end
    local x = need('STALLED', b.batchNumber, b.startSegment)
    x.endSegment = b.endSegment
    x.videoStartOffset = b.videoStartOffset
    return x
  end
  if f == nil or b.endSegment - f > s.threshold then return nil end
  if f > b.endSegment then return need('SEEK_AHEAD', b.batchNumber + 1, f) end
  return need('APPROACHING_END', b.batchNumber + 1, b.endSegment + 1)
end

-- Whether a need is new after the one announced: isNewNeed in batch-need.ts.
local function isNew(prev, nd, serial)
  if not prev or prev.batchNumber ~= nd.batchNumber then return true end
  if nd.reason == 'STALLED' or prev.reason == 'STALLED' then
    return nd.reason ~= prev.reason or serial ~= prev.stalls
  end
  return nd.startSegment < prev.startSegment or nd.startSegment > prev.endSegment
end

-- The need to announce after a change, once per need; records it as announced
-- and publishes it: StreamSession.announceNeed, and Coordinator.announce for
-- the event.
local function announce(s)
  if s.currentBatch and not s.currentBatch.isComplete and s.stalls == 0 then return false end
  local nd = decide(s)
  if not nd or not isNew(s.announced, nd, s.stallSerial) then return false end
  s.announcements = s.announcements + 1
  redis.call('HSET', skey(s.id), 'announcements', s.announcements,
    'announced', cjson.encode({ reason = nd.reason, batchNumber = nd.batchNumber,
      startSegment = nd.startSegment, endSegment = nd.endSegment, stalls = s.stallSerial }))
  nd.qualities = qualities(s.id)
  nd.sequence = s.announcements
  -- Published in the same atomic step as the change: no instance can make the
  -- change and lose the event (the bus adds the session view on delivery).
  redis.call('PUBLISH', P .. 'events',
    cjson.encode({ type = 'batchNeeded', streamSessionId = s.id, need = nd }))
  return nd
end

-- Tells dashboards the session changed (they coalesce and read it when they
-- look): Coordinator.announce's streamSessionChanged.
local function changed(id)
  redis.call('PUBLISH', P .. 'events',
    cjson.encode({ type = 'streamSessionChanged', event = { id = id } }))
end

-- Coordinator.publishEnded.
local function publishEnded(id, reason, now)
  redis.call('PUBLISH', P .. 'events', cjson.encode({ type = 'streamSessionEnded',
    event = { id = id, reason = reason, endedAt = now } }))
end

-- The need pending now, as it was announced while it is the same need:
-- StreamSession.pendingNeed.
local function pending(s)
  local nd = decide(s)
  if not nd then return false end
  local an = s.announced
  if an and not isNew(an, nd, s.stallSerial) then
    if nd.startSegment ~= an.startSegment then
      nd.videoStartOffset = an.startSegment * s.segmentDuration
    end
    nd.reason = an.reason
    nd.startSegment = an.startSegment
    nd.endSegment = an.endSegment
  end
  nd.qualities = qualities(s.id)
  nd.sequence = s.announcements
  nd.streamSessionId = s.id
  return nd
end

-- Removes a client and its deadline; false when it was not there:
-- StreamSession.removeClient and MemoryStore.removeClient's indexes.
local function removeClient(s, sid, now)
  local prev = redis.call('HGET', ckey(s.id), sid)
  if not prev then return false end
  local q = string.match(prev, '^[^|]*|([^|]*)|')
  redis.call('HINCRBY', qkey(s.id), q, -1)
  redis.call('HDEL', ckey(s.id), sid)
  redis.call('ZREM', zkey(s.id), sid)
  redis.call('ZREM', P .. 'dl:c', s.id .. '\n' .. sid)
  redis.call('HSET', skey(s.id), 'updatedAt', now)
  if redis.call('HLEN', ckey(s.id)) == 0 then redis.call('ZADD', P .. 'dl:i', now, s.id) end
  return true
end

-- Deletes a session's keys and deadlines: MemoryStore.endStreamSession.
local function endSession(id)
  for _, sid in ipairs(redis.call('HKEYS', ckey(id))) do
    redis.call('ZREM', P .. 'dl:c', id .. '\n' .. sid)
  end
  redis.call('DEL', skey(id), ckey(id), zkey(id), qkey(id))
  redis.call('ZREM', P .. 'sessions', id)
  redis.call('ZREM', P .. 'dl:b', id)
  redis.call('ZREM', P .. 'dl:i', id)
end

-- A change's reply, as RedisStore reads it (LuaReply in redis-store.ts).
local function reply(result, announcement)
  return cjson.encode({ result = result, announcement = announcement })
end

