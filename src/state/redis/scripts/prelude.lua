-- Shared by every script: prepended to each when the store loads them (see
-- ../lua.ts). A change and the batch-need decisions it causes are one
-- script, so one round trip and one atomic step, whichever instance runs it;
-- the store-parity test holds this and the memory store to the same
-- behaviour.
--
-- The rules are those of coverage.ts and StreamSession (stream-session.ts),
-- mirrored here function by function under the same names, in the same
-- iteration orders (clients by sessionId, renditions as QUALITIES, needs by
-- sequence, batches in the order they were first claimed), so that the same
-- events come out with the same numbers.
--
-- The one legend of the keys and fields; RedisStore's view() in
-- redis-store.ts reads them too.
--
-- Keys (all under the prefix, ARGV[1]; not for Redis Cluster, which would
-- need every key of a script in one slot):
--   s:<id>    hash    the stream session, fields below
--   c:<id>    hash    client sessionId -> "segment|quality|lastUpdated|lo|hi|needs"
--                     (ClientSlot: lo..hi is its safe range, empty as 1..0;
--                     needs: the pending needs it relies on, "n1,n2" or '',
--                     StreamSession.dependents)
--   z:<id>    zset    client sessionId scored by segment (furthest, slowest)
--   sessions  zset    stream session id scored by creation order
--   seq       string  the creation order counter
--   events    channel what the scripts publish (RedisEventBus reads it)
--   sweeper   string  the id of the instance that sweeps, with a lease (PX)
--   dl:c      zset    "<id>\n<sessionId>" scored by the client's last report
--   dl:b      zset    "<id>\n<batchNumber>" of a batch in flight, scored by
--                     when it stalls (ties within a session go by the
--                     batch's `queued`: the memory store's insertion order)
--   dl:i      zset    id of a session without clients, scored by since when
--
-- Fields of s:<id> (StreamSessionState in stream-session.ts):
--   videoSourcePath, segmentDuration, batchSize, threshold, startSegment
--                   the settings, as created
--   durationSeconds, lastSegment   '' when the video's length is unknown
--   qualities       the session's renditions, "1080p,720p" (QUALITIES order)
--   createdAt, updatedAt   epoch milliseconds
--   currentBatch    JSON BatchState, the batch claimed most recently; absent
--                   before the first claim
--   batches         JSON list of BatchRecord (BatchState plus stalls, stalledAt
--                   (absent for null), renewedAt (absent when never renewed),
--                   queued), in the order first claimed:
--                   in flight, and complete ones not wholly released
--   made            JSON { quality: [[start, end], ...] }: segments of
--                   completed batches not released, sorted, disjoint
--   needs           JSON list of PendingNeed (BatchNeed plus sequence), by
--                   sequence: announced and not claimed
--   needClients     JSON { "batchNumber": clients relying on that need }
--   claimedHigh     1 + the highest batch number ever claimed
--   announcements   how many needs were announced: the latest one's sequence
--   queueSerial     stall deadlines set so far (a batch's `queued`)
--   order           the session's creation order (its score in sessions)

local P = ARGV[1]
local function skey(id) return P .. 's:' .. id end
local function ckey(id) return P .. 'c:' .. id end
local function zkey(id) return P .. 'z:' .. id end
local function bmember(id, n) return id .. '\n' .. n end
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

-- A JSON list that stays a list when empty (cjson writes an empty table as {}).
local function encodeList(list)
  if #list == 0 then return '[]' end
  return cjson.encode(list)
end

local function contains(list, x)
  for _, y in ipairs(list) do if y == x then return true end end
  return false
end

-- ---------------------------------------------------------------------------
-- coverage.ts: the pure rules. Spans and ranges are { s = start, e = end }
-- (end is a Lua keyword), merged ranges add `open`.

-- mergeCoverage in coverage.ts: pieces in any order to sorted disjoint
-- ranges; adjacent pieces join; open when any piece ending at its end is.
local function mergeCoverage(pieces)
  table.sort(pieces, function(a, b)
    if a.s ~= b.s then return a.s < b.s end
    return a.e < b.e
  end)
  local out, current = {}, nil
  for _, piece in ipairs(pieces) do
    if current ~= nil and piece.s <= current.e + 1 then
      if piece.e > current.e then
        current.e = piece.e
        current.open = piece.open
      elseif piece.e == current.e and piece.open then
        current.open = true
      end
    else
      if current ~= nil then out[#out + 1] = current end
      current = { s = piece.s, e = piece.e, open = piece.open }
    end
  end
  if current ~= nil then out[#out + 1] = current end
  return out
end

-- findRange in coverage.ts: the range containing `segment`, by binary search.
local function findRange(ranges, segment)
  local lo, hi = 1, #ranges
  while lo <= hi do
    local mid = math.floor((lo + hi) / 2)
    local range = ranges[mid]
    if segment < range.s then hi = mid - 1
    elseif segment > range.e then lo = mid + 1
    else return range end
  end
  return nil
end

-- nextStartAfter in coverage.ts: the start of the first range starting after
-- `segment`, or nil.
local function nextStartAfter(ranges, segment)
  local lo, hi = 1, #ranges + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if ranges[mid].s > segment then hi = mid else lo = mid + 1 end
  end
  if lo <= #ranges then return ranges[lo].s end
  return nil
end

-- addSpan in coverage.ts: adds [start, end] to sorted disjoint spans.
local function addSpan(spans, start, finish)
  local out = {}
  local s, e = start, finish
  local placed = false
  for _, span in ipairs(spans) do
    if span.e + 1 < s then out[#out + 1] = span
    elseif span.s > e + 1 then
      if not placed then
        out[#out + 1] = { s = s, e = e }
        placed = true
      end
      out[#out + 1] = span
    else
      s = math.min(s, span.s)
      e = math.max(e, span.e)
    end
  end
  if not placed then out[#out + 1] = { s = s, e = e } end
  return out
end

-- removeSpan in coverage.ts: removes [start, end]; also whether any segment was there.
local function removeSpan(spans, start, finish)
  local out = {}
  local removed = false
  for _, span in ipairs(spans) do
    if span.e < start or span.s > finish then
      out[#out + 1] = span
    else
      removed = true
      if span.s < start then out[#out + 1] = { s = span.s, e = start - 1 } end
      if span.e > finish then out[#out + 1] = { s = finish + 1, e = span.e } end
    end
  end
  return out, removed
end

-- REASON_ORDER in coverage.ts, as ranks: of several clients' reasons for one
-- need, the lowest rank wins.
local REASON_RANK = { FIRST_BATCH = 1, APPROACHING_END = 2, SEEK_AHEAD = 3, STALLED = 4,
  SEEK_BACK = 5, QUALITY_CHANGE = 6 }

-- sortQualities in coverage.ts: deduplicated, best first.
local function sortQualities(qualities)
  local out = {}
  for _, q in ipairs(QUALITIES) do
    if contains(qualities, q) then out[#out + 1] = q end
  end
  return out
end

-- shareQuality in coverage.ts.
local function shareQuality(a, b)
  for _, q in ipairs(a) do if contains(b, q) then return true end end
  return false
end

-- overlaps in coverage.ts, on two records with startSegment/endSegment.
local function overlaps(a, b)
  return a.startSegment <= b.endSegment and b.startSegment <= a.endSegment
end

-- ---------------------------------------------------------------------------
-- StreamSession (stream-session.ts), on the session loaded as a table S.

local EMPTY_LO, EMPTY_HI = 1, 0

-- The session's hash as a table (StreamSession's fields), or nil when there
-- is none. S.outbox collects the needs the change announces.
local function loadSession(id)
  local h = redis.call('HGETALL', skey(id))
  if #h == 0 then return nil end
  local f = {}
  for i = 1, #h, 2 do f[h[i]] = h[i + 1] end
  local S = {
    id = id,
    videoSourcePath = f.videoSourcePath,
    segmentDuration = tonumber(f.segmentDuration),
    batchSize = tonumber(f.batchSize),
    threshold = tonumber(f.threshold),
    startSegment = tonumber(f.startSegment),
    -- nil when unknown: `x == S.lastSegment` is then false, as with null.
    lastSegment = tonumber(f.lastSegment or ''),
    qualities = {},
    claimedHigh = tonumber(f.claimedHigh),
    announcements = tonumber(f.announcements),
    queueSerial = tonumber(f.queueSerial),
    batches = cjson.decode(f.batches),
    made = {},
    needs = cjson.decode(f.needs),
    needClients = cjson.decode(f.needClients),
    outbox = {},
    cache = {},
  }
  for q in string.gmatch(f.qualities or '', '[^,]+') do S.qualities[#S.qualities + 1] = q end
  if f.currentBatch then S.current = cjson.decode(f.currentBatch) end
  for q, list in pairs(cjson.decode(f.made)) do
    local spans = {}
    for i, pair in ipairs(list) do spans[i] = { s = pair[1], e = pair[2] } end
    S.made[q] = spans
  end
  return S
end

-- Writes back what a change may have changed (the settings never change).
local function saveSession(S, now)
  local made = {}
  for q, spans in pairs(S.made) do
    local list = {}
    for i, span in ipairs(spans) do list[i] = { span.s, span.e } end
    made[q] = list
  end
  local fields = { 'updatedAt', now, 'batches', encodeList(S.batches),
    'made', cjson.encode(made), 'needs', encodeList(S.needs),
    'needClients', cjson.encode(S.needClients), 'claimedHigh', S.claimedHigh,
    'announcements', S.announcements, 'queueSerial', S.queueSerial }
  if S.current then
    fields[#fields + 1] = 'currentBatch'
    fields[#fields + 1] = cjson.encode(S.current)
  end
  redis.call('HSET', skey(S.id), unpack(fields))
end

-- A client's entry in c:<id> as a ClientSlot.
local function parseClient(sid, entry)
  local seg, q, t, lo, hi, deps =
    string.match(entry, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
  -- lastUpdated stays as written (epoch milliseconds, not reformatted).
  local slot = { sid = sid, seg = tonumber(seg), q = q, t = t,
    lo = tonumber(lo) or EMPTY_LO, hi = tonumber(hi) or EMPTY_HI, deps = {} }
  for n in string.gmatch(deps or '', '[^,]+') do slot.deps[#slot.deps + 1] = tonumber(n) end
  return slot
end

local function formatClient(slot)
  return slot.seg .. '|' .. slot.q .. '|' .. slot.t .. '|' .. slot.lo .. '|' .. slot.hi .. '|'
    .. table.concat(slot.deps, ',')
end

-- Writes back the clients a settle decided again (in chunks: unpack is
-- bounded by Lua's stack).
local function saveClients(S, slots)
  local fields = {}
  for i, slot in ipairs(slots) do
    fields[#fields + 1] = slot.sid
    fields[#fields + 1] = formatClient(slot)
    if #fields >= 1000 or i == #slots then
      redis.call('HSET', ckey(S.id), unpack(fields))
      fields = {}
    end
  end
end

-- StreamSession.clientsOf: the clients playing one of `qualities`.
local function clientsOf(S, qualities)
  local out = {}
  local h = redis.call('HGETALL', ckey(S.id))
  for i = 1, #h, 2 do
    local slot = parseClient(h[i], h[i + 1])
    if contains(qualities, slot.q) then out[#out + 1] = slot end
  end
  return out
end

-- StreamSession.furthestSegment: the highest segment among the clients, or nil.
local function furthest(S)
  local r = redis.call('ZREVRANGE', zkey(S.id), 0, 0, 'WITHSCORES')
  if #r == 0 then return nil end
  return tonumber(r[2])
end

-- The record of batch n (batchMap.get), and its index in S.batches.
local function findBatch(S, n)
  for i, batch in ipairs(S.batches) do
    if batch.batchNumber == n then return batch, i end
  end
  return nil
end

-- The pending need n (needs.get), and its index in S.needs.
local function findNeed(S, n)
  for i, need in ipairs(S.needs) do
    if need.batchNumber == n then return need, i end
  end
  return nil
end

-- needs.delete(n).
local function deleteNeed(S, n)
  local _, i = findNeed(S, n)
  if i then table.remove(S.needs, i) end
end

-- publicBatch in stream-session.ts: a batch as the API shows it.
local function publicBatch(b)
  return { batchNumber = b.batchNumber, startSegment = b.startSegment,
    endSegment = b.endSegment, videoSourcePath = b.videoSourcePath,
    videoStartOffset = b.videoStartOffset, generationStarted = b.generationStarted,
    generationEnded = b.generationEnded, isComplete = b.isComplete,
    qualities = b.qualities, isLastBatch = b.isLastBatch }
end

-- StreamSession.invalidate.
local function invalidate(S) S.cache = {} end

-- StreamSession.pendingSpans: the pending needs (not STALLED) that make
-- `quality`, by startSegment (then announcement order, as the stable sort).
local function pendingSpans(S, quality)
  local out = {}
  for _, need in ipairs(S.needs) do
    if need.reason ~= 'STALLED' and contains(need.qualities, quality) then
      out[#out + 1] = { s = need.startSegment, e = need.endSegment, n = need.batchNumber,
        seq = need.sequence }
    end
  end
  table.sort(out, function(a, b)
    if a.s ~= b.s then return a.s < b.s end
    return a.seq < b.seq
  end)
  return out
end

-- StreamSession.merged: the merged coverage of a rendition, made and in
-- flight, plus pending needs when `withPending` (but the need numbered
-- `without`, when given: not cached).
local function merged(S, quality, withPending, without)
  local key = withPending and (quality .. '+') or quality
  local ranges = nil
  if without == nil then ranges = S.cache[key] end
  if ranges then return ranges end
  local pieces = {}
  for _, span in ipairs(S.made[quality] or {}) do
    pieces[#pieces + 1] = { s = span.s, e = span.e, open = false }
  end
  for _, batch in ipairs(S.batches) do
    if not batch.isComplete and contains(batch.qualities, quality) then
      pieces[#pieces + 1] = { s = batch.startSegment, e = batch.endSegment, open = true }
    end
  end
  if withPending then
    for _, need in ipairs(pendingSpans(S, quality)) do
      if need.n ~= without then pieces[#pieces + 1] = { s = need.s, e = need.e, open = true } end
    end
  end
  ranges = mergeCoverage(pieces)
  if without == nil then S.cache[key] = ranges end
  return ranges
end

-- servedIn in coverage.ts.
local function servedIn(S, range, segment)
  return range.e == S.lastSegment or range.e - segment > S.threshold or range.open
end

-- evaluate in coverage.ts: the verdict on a client at `segment` in `quality`:
-- { served = true, lo, hi, needs } or { served = false, reason, start, needs }.
local function evaluate(S, segment, quality)
  local full = merged(S, quality, true)
  local range = findRange(full, segment)
  if range ~= nil and servedIn(S, range, segment) then
    local solid = findRange(merged(S, quality, false), segment)
    if solid ~= nil and servedIn(S, solid, segment) then
      local hi = solid.e - S.threshold - 1
      if solid.e == S.lastSegment or solid.open then hi = solid.e end
      return { served = true, lo = solid.s, hi = hi, needs = {} }
    end
    local from = segment
    if solid ~= nil then from = solid.e + 1 end
    -- Each pending need without which it would not be served.
    local needs = {}
    for _, need in ipairs(pendingSpans(S, quality)) do
      if need.e >= from and need.s <= range.e then
        local rest = findRange(merged(S, quality, true, need.n), segment)
        if rest == nil or not servedIn(S, rest, segment) then needs[#needs + 1] = need.n end
      end
    end
    -- Waiting in FIRST_BATCH (0) with nothing made or in flight right after it.
    if #needs == 1 and needs[1] == 0 then
      for _, need in ipairs(pendingSpans(S, quality)) do
        if need.n == 0 and segment >= need.s
            and findRange(merged(S, quality, false), need.e + 1) == nil then
          return { served = true, lo = need.s, hi = need.e, needs = needs }
        end
      end
    end
    return { served = true, lo = EMPTY_LO, hi = EMPTY_HI, needs = needs }
  end
  if range ~= nil then
    -- The pending needs of its range from its segment on: it plays through them.
    local needs = {}
    for _, need in ipairs(pendingSpans(S, quality)) do
      if need.e >= segment and need.s <= range.e then needs[#needs + 1] = need.n end
    end
    return { served = false, reason = 'APPROACHING_END', start = range.e + 1, needs = needs }
  end
  for _, other in ipairs(QUALITIES) do
    if other ~= quality and findRange(merged(S, other, true), segment) ~= nil then
      return { served = false, reason = 'QUALITY_CHANGE', start = segment, needs = {} }
    end
  end
  if nextStartAfter(full, segment) == nil then
    return { served = false, reason = 'SEEK_AHEAD', start = segment, needs = {} }
  end
  return { served = false, reason = 'SEEK_BACK', start = segment, needs = {} }
end

-- needEnd in coverage.ts: a batch's length from `start`, cut at the last
-- segment and before the next covered range of any of `qualities`.
local function needEnd(S, start, qualities)
  local e = start + S.batchSize - 1
  if S.lastSegment ~= nil and e > S.lastSegment then e = S.lastSegment end
  for _, q in ipairs(qualities) do
    local nextStart = nextStartAfter(merged(S, q, true), start)
    if nextStart ~= nil and nextStart - 1 < e then e = nextStart - 1 end
  end
  return e
end

-- StreamSession.nextNumber: the next unused batch number.
local function nextNumber(S)
  local nextN = S.claimedHigh
  for _, need in ipairs(S.needs) do
    if need.reason ~= 'STALLED' and need.batchNumber + 1 > nextN then
      nextN = need.batchNumber + 1
    end
  end
  return nextN
end

-- StreamSession.announce: records and queues a need announced now.
local function announce(S, reason, n, start, finish, qualities, videoStartOffset)
  S.announcements = S.announcements + 1
  local need = { reason = reason, batchNumber = n, startSegment = start, endSegment = finish,
    videoSourcePath = S.videoSourcePath,
    videoStartOffset = videoStartOffset or start * S.segmentDuration,
    furthestSegment = furthest(S), qualities = qualities, segmentDuration = S.segmentDuration,
    isLastBatch = finish == S.lastSegment, sequence = S.announcements }
  -- needs.set: in place when there (a Map keeps a key's place), else last.
  local _, i = findNeed(S, n)
  if i then S.needs[i] = need else S.needs[#S.needs + 1] = need end
  if reason ~= 'STALLED' then invalidate(S) end
  S.outbox[#S.outbox + 1] = need
end

-- StreamSession.attach: records a client's verdict: its safe range (served),
-- or the pending needs it relies on; only needs that can be withdrawn are
-- counted (FIRST_BATCH never is).
local function attach(S, slot, verdict)
  if verdict.served then
    slot.lo = verdict.lo
    slot.hi = verdict.hi
  end
  local counted = {}
  for _, n in ipairs(verdict.needs) do
    local need = findNeed(S, n)
    if n ~= 0 and not (need ~= nil and need.reason == 'FIRST_BATCH') then
      counted[#counted + 1] = n
      local key = tostring(n)
      S.needClients[key] = (S.needClients[key] or 0) + 1
    end
  end
  if #counted > 0 then slot.deps = counted end
end

-- StreamSession.detach: forgets what a client relied on; returns those needs.
local function detach(S, slot)
  slot.lo = EMPTY_LO
  slot.hi = EMPTY_HI
  local needs = slot.deps
  if #needs == 0 then return needs end
  slot.deps = {}
  for _, n in ipairs(needs) do
    local key = tostring(n)
    local count = S.needClients[key]
    if count ~= nil then S.needClients[key] = count - 1 end
  end
  return needs
end

-- StreamSession.withdrawOrphans: withdraws the pending needs among `numbers`
-- that no client relies on (not FIRST_BATCH, not STALLED).
local function withdrawOrphans(S, numbers)
  for _, n in ipairs(numbers) do
    local need = findNeed(S, n)
    local key = tostring(n)
    if need ~= nil and (S.needClients[key] or 0) <= 0 and need.reason ~= 'FIRST_BATCH'
        and need.reason ~= 'STALLED' then
      deleteNeed(S, n)
      S.needClients[key] = nil
      invalidate(S)
    end
  end
end

-- StreamSession.settle: decides `slots` again after a change. Pending needs
-- nobody relies on any more are withdrawn; then the unserved get needs,
-- lowest start first, clients needing the same start sharing one.
local function settle(S, slots)
  if #slots == 0 then return end
  local sorted = {}
  for i, slot in ipairs(slots) do sorted[i] = slot end
  table.sort(sorted, function(a, b) return a.sid < b.sid end)
  -- A Set of numbers, in insertion order.
  local released, seen = {}, {}
  local function release(numbers)
    for _, n in ipairs(numbers) do
      if not seen[n] then
        seen[n] = true
        released[#released + 1] = n
      end
    end
  end
  for _, slot in ipairs(sorted) do release(detach(S, slot)) end
  local unserved = {}
  for _, slot in ipairs(sorted) do
    local verdict = evaluate(S, slot.seg, slot.q)
    attach(S, slot, verdict)
    if not verdict.served then unserved[#unserved + 1] = slot end
  end
  -- Before any new need is numbered (a seek's need takes the number its
  -- client gave up), and again at the end.
  withdrawOrphans(S, released)
  released, seen = {}, {}
  while #unserved > 0 do
    local verdicts, still = {}, {}
    local start = math.huge
    for _, slot in ipairs(unserved) do
      release(detach(S, slot))
      local verdict = evaluate(S, slot.seg, slot.q)
      attach(S, slot, verdict)
      if not verdict.served then
        verdicts[slot] = verdict
        still[#still + 1] = slot
        if verdict.start < start then start = verdict.start end
      end
    end
    if #still == 0 then break end
    local group, qualities = {}, {}
    for _, slot in ipairs(still) do
      if verdicts[slot].start == start then
        group[#group + 1] = slot
        qualities[#qualities + 1] = slot.q
      end
    end
    local reason = 'QUALITY_CHANGE'
    for _, slot in ipairs(group) do
      if REASON_RANK[verdicts[slot].reason] < REASON_RANK[reason] then
        reason = verdicts[slot].reason
      end
    end
    qualities = sortQualities(qualities)
    local n = nextNumber(S)
    announce(S, reason, n, start, needEnd(S, start, qualities), qualities)
    -- Decided again with the need in place: a need cut short before a range
    -- that ends too close may leave them unserved still.
    unserved = still
  end
  withdrawOrphans(S, released)
end

-- ---------------------------------------------------------------------------
-- Publishing and replies (MemoryStore.changed, and the endings).

-- Tells dashboards the session changed (they coalesce and read it when they
-- look): the streamSessionChanged of MemoryStore.changed.
local function changed(id)
  redis.call('PUBLISH', P .. 'events',
    cjson.encode({ type = 'streamSessionChanged', event = { id = id } }))
end

-- MemoryStore.changed: the needs the change announced, in order (one
-- message: the bus reads the session view once for them all), then that the
-- session changed. Published in the same atomic step as the change: no
-- instance can make the change and lose the events.
local function publish(S)
  if #S.outbox > 0 then
    redis.call('PUBLISH', P .. 'events',
      cjson.encode({ type = 'batchNeeded', streamSessionId = S.id, needs = S.outbox }))
  end
  changed(S.id)
end

-- MemoryStore.end's streamSessionEnded.
local function publishEnded(id, reason, now)
  redis.call('PUBLISH', P .. 'events', cjson.encode({ type = 'streamSessionEnded',
    event = { id = id, reason = reason, endedAt = now } }))
end

-- Deletes a session's keys and deadlines: MemoryStore.end.
local function endSession(id)
  for _, sid in ipairs(redis.call('HKEYS', ckey(id))) do
    redis.call('ZREM', P .. 'dl:c', id .. '\n' .. sid)
  end
  local batches = redis.call('HGET', skey(id), 'batches')
  if batches then
    for _, batch in ipairs(cjson.decode(batches)) do
      redis.call('ZREM', P .. 'dl:b', bmember(id, batch.batchNumber))
    end
  end
  redis.call('DEL', skey(id), ckey(id), zkey(id))
  redis.call('ZREM', P .. 'sessions', id)
  redis.call('ZREM', P .. 'dl:i', id)
end

-- Removes a client and its deadline, given its entry; the needs it relied on
-- go when nobody else relies on them (the session's JSON is read only then):
-- StreamSession.removeClient and MemoryStore.removeClient's indexes.
local function removeClient(id, sid, entry, now)
  local slot = parseClient(sid, entry)
  redis.call('HDEL', ckey(id), sid)
  redis.call('ZREM', zkey(id), sid)
  redis.call('ZREM', P .. 'dl:c', id .. '\n' .. sid)
  if #slot.deps > 0 then
    local S = loadSession(id)
    withdrawOrphans(S, detach(S, slot))
    saveSession(S, now)
  else
    redis.call('HSET', skey(id), 'updatedAt', now)
  end
  if redis.call('HLEN', ckey(id)) == 0 then redis.call('ZADD', P .. 'dl:i', now, id) end
end

-- Sets a batch's stall deadline (MemoryStore.claimDeadlines.set, which puts
-- it last): ties within the session keep this order through `queued`.
local function setDeadline(S, batch, deadline)
  S.queueSerial = S.queueSerial + 1
  batch.queued = S.queueSerial
  redis.call('ZADD', P .. 'dl:b', deadline, bmember(S.id, batch.batchNumber))
end

-- A change's reply, as RedisStore reads it (LuaReply in redis-store.ts):
-- the needs it announced, in order.
local function reply(result, announced, repeated)
  return cjson.encode({ result = result, announced = announced or {}, repeated = repeated })
end
