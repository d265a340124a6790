/**
 * The Redis store's atomic steps, as Lua scripts. Each mutation is one
 * script, so a change and the batch-need decision it causes are one round
 * trip and one atomic step, whichever instance runs it. The decision mirrors
 * src/state/batch-need.ts (decideBatchNeed, isNewNeed); the shared test
 * suite holds both stores to the same behaviour.
 *
 * Keys (all under the prefix, ARGV[1]; not for Redis Cluster, which would
 * need every key of a script in one slot):
 *   s:<id>  hash   settings, batch (JSON), stalls, serial, announced (JSON), counts
 *   c:<id>  hash   client sessionId -> "segment|quality|lastUpdated"
 *   z:<id>  zset   client sessionId scored by segment (furthest, slowest)
 *   q:<id>  hash   quality -> number of clients playing it
 *   sessions zset  id scored by creation order; seq: the order counter
 *   dl:c / dl:b / dl:i  zsets of deadlines: clients by last report,
 *                  claimed batches by stall time, empty sessions by since-when
 */

const PRELUDE = `
local P = ARGV[1]
local function skey(id) return P .. 's:' .. id end
local function ckey(id) return P .. 'c:' .. id end
local function zkey(id) return P .. 'z:' .. id end
local function qkey(id) return P .. 'q:' .. id end
local QUALITIES = {'1080p', '720p', '480p'}

local function fail(code, message) return redis.error_reply(code .. ' ' .. message) end
local function notFound(id) return fail('NOT_FOUND', "Stream session '" .. id .. "' not found.") end

local function load(id)
  local h = redis.call('HGETALL', skey(id))
  if #h == 0 then return nil end
  local s = { id = id }
  for i = 1, #h, 2 do s[h[i]] = h[i + 1] end
  s.sd = tonumber(s.sd); s.bs = tonumber(s.bs); s.th = tonumber(s.th); s.ss = tonumber(s.ss)
  s.st = tonumber(s.st); s.ser = tonumber(s.ser); s.n = tonumber(s.n)
  if s.b then s.b = cjson.decode(s.b) end
  if s.an then s.an = cjson.decode(s.an) end
  return s
end

local function furthest(id)
  local r = redis.call('ZREVRANGE', zkey(id), 0, 0, 'WITHSCORES')
  if #r == 0 then return nil end
  return tonumber(r[2])
end

local function qualities(id)
  local out = {}
  for _, q in ipairs(QUALITIES) do
    if tonumber(redis.call('HGET', qkey(id), q) or '0') > 0 then table.insert(out, q) end
  end
  return out
end

local function decide(s)
  local f = furthest(s.id)
  local b = s.b
  local function need(reason, n, start)
    return { reason = reason, batchNumber = n, startSegment = start,
      endSegment = start + s.bs - 1, videoSourcePath = s.vsp,
      videoStartOffset = start * s.sd, furthestSegment = f }
  end
  if not b then return need('FIRST_BATCH', 0, s.ss) end
  if not b.isComplete then
    if s.st == 0 then return nil end
    local x = need('STALLED', b.batchNumber, b.startSegment)
    x.endSegment = b.endSegment
    x.videoStartOffset = b.videoStartOffset
    return x
  end
  if f == nil or b.endSegment - f > s.th then return nil end
  if f > b.endSegment then return need('SEEK_AHEAD', b.batchNumber + 1, f) end
  return need('APPROACHING_END', b.batchNumber + 1, b.endSegment + 1)
end

local function isNew(prev, nd, serial)
  if not prev or prev.batchNumber ~= nd.batchNumber then return true end
  if nd.reason == 'STALLED' or prev.reason == 'STALLED' then
    return nd.reason ~= prev.reason or serial ~= prev.stalls
  end
  return nd.startSegment < prev.startSegment or nd.startSegment > prev.endSegment
end

-- The need to announce after a change, once per need; records it as announced.
local function announce(s)
  if s.b and not s.b.isComplete and s.st == 0 then return false end
  local nd = decide(s)
  if not nd or not isNew(s.an, nd, s.ser) then return false end
  s.n = s.n + 1
  redis.call('HSET', skey(s.id), 'n', s.n, 'an', cjson.encode({ reason = nd.reason,
    batchNumber = nd.batchNumber, startSegment = nd.startSegment,
    endSegment = nd.endSegment, stalls = s.ser }))
  nd.qualities = qualities(s.id)
  nd.sequence = s.n
  -- Published in the same atomic step as the change: no instance can make the
  -- change and lose the event (the bus adds the session view on delivery).
  redis.call('PUBLISH', P .. 'events',
    cjson.encode({ type = 'batchNeeded', streamSessionId = s.id, need = nd }))
  return nd
end

-- Tells dashboards the session changed (they coalesce and read it when they look).
local function changed(id)
  redis.call('PUBLISH', P .. 'events',
    cjson.encode({ type = 'streamSessionChanged', event = { id = id } }))
end

local function publishEnded(id, reason, now)
  redis.call('PUBLISH', P .. 'events', cjson.encode({ type = 'streamSessionEnded',
    event = { id = id, reason = reason, endedAt = now } }))
end

-- The need pending now, as it was announced while it is the same need.
local function pending(s)
  local nd = decide(s)
  if not nd then return false end
  local an = s.an
  if an and not isNew(an, nd, s.ser) then
    if nd.startSegment ~= an.startSegment then nd.videoStartOffset = an.startSegment * s.sd end
    nd.reason = an.reason
    nd.startSegment = an.startSegment
    nd.endSegment = an.endSegment
  end
  nd.qualities = qualities(s.id)
  nd.sequence = s.n
  nd.streamSessionId = s.id
  return nd
end

local function removeClient(s, sid, now)
  local prev = redis.call('HGET', ckey(s.id), sid)
  if not prev then return false end
  local q = string.match(prev, '^[^|]*|([^|]*)|')
  redis.call('HINCRBY', qkey(s.id), q, -1)
  redis.call('HDEL', ckey(s.id), sid)
  redis.call('ZREM', zkey(s.id), sid)
  redis.call('ZREM', P .. 'dl:c', s.id .. '\\n' .. sid)
  redis.call('HSET', skey(s.id), 'ua', now)
  if redis.call('HLEN', ckey(s.id)) == 0 then redis.call('ZADD', P .. 'dl:i', now, s.id) end
  return true
end

local function endSession(id)
  for _, sid in ipairs(redis.call('HKEYS', ckey(id))) do
    redis.call('ZREM', P .. 'dl:c', id .. '\\n' .. sid)
  end
  redis.call('DEL', skey(id), ckey(id), zkey(id), qkey(id))
  redis.call('ZREM', P .. 'sessions', id)
  redis.call('ZREM', P .. 'dl:b', id)
  redis.call('ZREM', P .. 'dl:i', id)
end

local function reply(result, announcement)
  return cjson.encode({ result = result, announcement = announcement })
end
`;

/** ARGV: prefix, id, videoSourcePath, segmentDuration, batchSize, threshold, startSegment, now */
const CREATE = `
local id, now = ARGV[2], tonumber(ARGV[8])
if redis.call('EXISTS', skey(id)) == 1 then
  return fail('CONFLICT', "Stream session '" .. id .. "' already exists.")
end
local ord = redis.call('INCR', P .. 'seq')
redis.call('HSET', skey(id), 'vsp', ARGV[3], 'sd', ARGV[4], 'bs', ARGV[5], 'th', ARGV[6],
  'ss', ARGV[7], 'ca', now, 'ua', now, 'st', 0, 'ser', 0, 'n', 0, 'ord', ord)
redis.call('ZADD', P .. 'sessions', ord, id)
redis.call('ZADD', P .. 'dl:i', now, id)
changed(id)
return reply(true, announce(load(id)))
`;

/** ARGV: prefix, id, now */
const END = `
local id = ARGV[2]
if redis.call('EXISTS', skey(id)) == 0 then return 0 end
endSession(id)
publishEnded(id, 'ENDED', tonumber(ARGV[3]))
return 1
`;

/** ARGV: prefix, streamSessionId, sessionId, segment, quality, now */
const UPDATE = `
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
redis.call('ZADD', P .. 'dl:c', now, id .. '\\n' .. sid)
redis.call('HSET', skey(id), 'ua', now)
changed(id)
return reply(true, announce(s))
`;

/** ARGV: prefix, streamSessionId, sessionId, now */
const REMOVE = `
local id = ARGV[2]
local s = load(id)
if not s then return notFound(id) end
if not removeClient(s, ARGV[3], tonumber(ARGV[4])) then return reply(false, false) end
changed(id)
return reply(true, announce(s))
`;

/** ARGV: prefix, id, batchNumber, start, end, videoSourcePath, videoStartOffset, now, batchTimeout */
const SET_BATCH = `
local id, n, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[8])
local s = load(id)
if not s then return notFound(id) end
local b = s.b
local expected = nil
if not b then expected = 0
elseif b.isComplete then expected = b.batchNumber + 1
elseif s.st > 0 then expected = b.batchNumber end
if expected == nil then
  return fail('CONFLICT', 'Batch ' .. b.batchNumber .. " of stream session '" .. id ..
    "' is still being generated; batch " .. n .. ' cannot be claimed.')
end
if n ~= expected then
  return fail('CONFLICT', "Stream session '" .. id .. "' expects batch " .. expected ..
    ' next, not batch ' .. n .. '.')
end
s.b = { batchNumber = n, startSegment = tonumber(ARGV[4]), endSegment = tonumber(ARGV[5]),
  videoSourcePath = ARGV[6], videoStartOffset = tonumber(ARGV[7]), generationStarted = now,
  generationEnded = cjson.null, isComplete = false }
s.st = 0
redis.call('HSET', skey(id), 'b', cjson.encode(s.b), 'st', 0, 'ua', now)
redis.call('ZADD', P .. 'dl:b', now + tonumber(ARGV[9]), id)
changed(id)
return reply(s.b, announce(s))
`;

/** ARGV: prefix, id, batchNumber, now */
const COMPLETE = `
local id, n, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local s = load(id)
if not s then return notFound(id) end
local b = s.b
if not b then
  return fail('CONFLICT', "Stream session '" .. id .. "' has no batch; batch " .. n ..
    ' cannot be completed.')
end
if b.batchNumber ~= n then
  return fail('CONFLICT', 'Batch ' .. n .. " is not the current batch of stream session '" ..
    id .. "' (batch " .. b.batchNumber .. ' is).')
end
if b.isComplete then return cjson.encode({ result = b, announcement = false, repeated = true }) end
b.generationEnded = now
b.isComplete = true
s.st = 0
redis.call('HSET', skey(id), 'b', cjson.encode(b), 'st', 0, 'ua', now)
redis.call('ZREM', P .. 'dl:b', id)
changed(id)
return reply(b, announce(s))
`;

/** ARGV: prefix, id, sessionId, now, clientTimeout */
const EXPIRE_CLIENT = `
local id, sid, now = ARGV[2], ARGV[3], tonumber(ARGV[4])
local s = load(id)
if not s then
  redis.call('ZREM', P .. 'dl:c', id .. '\\n' .. sid)
  return reply(false, false)
end
local prev = redis.call('HGET', ckey(id), sid)
if not prev then return reply(false, false) end
local t = tonumber(string.match(prev, '|([^|]*)$'))
if t + tonumber(ARGV[5]) > now then return reply(false, false) end
removeClient(s, sid, now)
changed(id)
return reply(true, announce(s))
`;

/** ARGV: prefix, id, batchNumber, now, batchTimeout */
const STALL_BATCH = `
local id, n, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local s = load(id)
local deadline = tonumber(redis.call('ZSCORE', P .. 'dl:b', id) or 'nil')
if not s or not deadline then
  redis.call('ZREM', P .. 'dl:b', id)
  return reply(false, false)
end
if deadline > now or not s.b or s.b.isComplete or s.b.batchNumber ~= n then
  return reply(false, false)
end
s.st = s.st + 1
s.ser = s.ser + 1
redis.call('HSET', skey(id), 'st', s.st, 'ser', s.ser, 'ua', now)
redis.call('ZADD', P .. 'dl:b', now + tonumber(ARGV[5]), id)
changed(id)
return reply(true, announce(s))
`;

/** ARGV: prefix, id, now, idleTimeout */
const END_IDLE = `
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
`;

/** ARGV: prefix, now, clientTimeout, idleTimeout, limit, instance id, lease ms */
const DUE_WORK = `
local now, limit = tonumber(ARGV[2]), tonumber(ARGV[5])
-- One sweeper at a time: the instance holding the lease, renewed as it sweeps;
-- when it dies, the lease lapses and another instance takes over.
local lease = P .. 'sweeper'
if not redis.call('SET', lease, ARGV[6], 'NX', 'PX', ARGV[7]) then
  if redis.call('GET', lease) ~= ARGV[6] then return '[]' end
  redis.call('PEXPIRE', lease, ARGV[7])
end
local due = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'dl:b', '-inf', now, 'LIMIT', 0, limit)) do
  local b = redis.call('HGET', skey(id), 'b')
  local n = b and cjson.decode(b).batchNumber or 0
  table.insert(due, { kind = 'batchStalled', streamSessionId = id, batchNumber = n })
end
for _, m in ipairs(redis.call('ZRANGEBYSCORE', P .. 'dl:c', '-inf', now - tonumber(ARGV[3]),
    'LIMIT', 0, limit)) do
  local id, sid = string.match(m, '^(.-)\\n(.*)$')
  table.insert(due, { kind = 'clientExpired', streamSessionId = id, sessionId = sid })
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'dl:i', '-inf', now - tonumber(ARGV[4]),
    'LIMIT', 0, limit)) do
  table.insert(due, { kind = 'sessionIdle', streamSessionId = id })
end
if #due == 0 then return '[]' end
return cjson.encode(due)
`;

/** ARGV: prefix, id or '' for every session */
const PENDING = `
local ids
if ARGV[2] ~= '' then ids = { ARGV[2] } else ids = redis.call('ZRANGE', P .. 'sessions', 0, -1) end
local out = {}
for _, id in ipairs(ids) do
  local s = load(id)
  if s then
    local nd = pending(s)
    if nd then table.insert(out, nd) end
  end
end
if #out == 0 then return '[]' end
return cjson.encode(out)
`;

const script = (body: string) => PRELUDE + body;

/** name -> Lua source, for ioredis defineCommand (numberOfKeys 0: keys come from the prefix). */
export const SCRIPTS = {
  hbcCreate: script(CREATE),
  hbcEnd: script(END),
  hbcUpdate: script(UPDATE),
  hbcRemove: script(REMOVE),
  hbcSetBatch: script(SET_BATCH),
  hbcComplete: script(COMPLETE),
  hbcExpireClient: script(EXPIRE_CLIENT),
  hbcStallBatch: script(STALL_BATCH),
  hbcEndIdle: script(END_IDLE),
  hbcDueWork: script(DUE_WORK),
  hbcPending: script(PENDING),
} as const;
