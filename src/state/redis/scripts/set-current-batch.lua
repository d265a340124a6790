-- Claims and starts a batch: a pending need's number with a range containing
-- its start, a STALLED batch's number with its range again, or, with no need
-- pending, the next unused number (a claim ahead of need). Sets its stall
-- deadline. The clients that relied on the need it claims are decided again
-- (the batch may cover less than the need did).
-- ARGV: prefix, streamSessionId, batchNumber, startSegment, endSegment,
--       videoSourcePath, videoStartOffset, qualities (JSON list, or null
--       for the need's), now, batchTimeout
-- Replies: { result = batch, announced = [needs] } as JSON; NOT_FOUND for an
--          unknown stream session; BAD_USER_INPUT for what contradicts the
--          session (checkClaimInput); CONFLICT for what contradicts its state.
-- Mirrors: MemoryStore.setCurrentBatch (StreamSession.setCurrentBatch,
--          checkClaimInput, checkOverlap, then MemoryStore.changed).

local id, n, now = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[9])
local start, finish = tonumber(ARGV[4]), tonumber(ARGV[5])
local videoSourcePath, videoStartOffset = ARGV[6], tonumber(ARGV[7])
local S = loadSession(id)
if not S then return notFound(id) end

-- StreamSession.checkClaimInput.
local given = cjson.decode(ARGV[8])
if given == cjson.null then given = nil end
if start > finish then
  return fail('BAD_USER_INPUT', 'claimBackwards', { startSegment = start, endSegment = finish })
end
if S.lastSegment ~= nil and finish > S.lastSegment then
  return fail('BAD_USER_INPUT', 'claimPastEnd',
    { id = id, endSegment = finish, lastSegment = S.lastSegment })
end
local expectedOffset = start * S.segmentDuration
if videoStartOffset ~= expectedOffset then
  return fail('BAD_USER_INPUT', 'claimOffset', { videoStartOffset = videoStartOffset,
    expected = expectedOffset, startSegment = start, segmentDuration = S.segmentDuration })
end
if videoSourcePath ~= S.videoSourcePath then
  return fail('BAD_USER_INPUT', 'claimSource', { id = id })
end
if given ~= nil and #given == 0 then return fail('BAD_USER_INPUT', 'claimNoQualities', {}) end

local need = findNeed(S, n)
local existing = findBatch(S, n)
local deadline = now + tonumber(ARGV[10])

-- A STALLED batch, claimed again: its range again, and nothing else changes.
if need ~= nil and need.reason == 'STALLED' and existing ~= nil then
  if start ~= existing.startSegment or finish ~= existing.endSegment then
    return fail('CONFLICT', 'stalledRange', { id = id, batchNumber = n,
      startSegment = existing.startSegment, endSegment = existing.endSegment })
  end
  if given ~= nil
      and table.concat(sortQualities(given), ',') ~= table.concat(existing.qualities, ',') then
    return fail('CONFLICT', 'stalledQualities', { id = id, batchNumber = n,
      qualities = table.concat(existing.qualities, ', ') })
  end
  deleteNeed(S, n)
  existing.generationStarted = now
  existing.stalls = 0
  existing.stalledAt = nil
  existing.renewedAt = nil
  S.current = publicBatch(existing)
  setDeadline(S, existing, deadline)
  saveSession(S, now)
  publish(S)
  return reply(S.current, S.outbox)
end

local qualities
if need ~= nil then
  if need.startSegment < start or need.startSegment > finish then
    return fail('CONFLICT', 'claimMissesNeed',
      { id = id, batchNumber = n, startSegment = need.startSegment })
  end
  qualities = need.qualities
  if given ~= nil then qualities = sortQualities(given) end
  local missing = {}
  for _, q in ipairs(need.qualities) do
    if not contains(qualities, q) then missing[#missing + 1] = q end
  end
  if #missing > 0 then
    return fail('CONFLICT', 'claimMissesQualities',
      { id = id, batchNumber = n, qualities = table.concat(missing, ', ') })
  end
elseif existing ~= nil then
  local name = 'batchStillGenerating'
  if existing.isComplete then name = 'batchComplete' end
  return fail('CONFLICT', name, { id = id, batchNumber = n })
else
  local expected = nextNumber(S)
  if #S.needs > 0 then
    -- StreamSession.pendingList: every pending number, ascending.
    local pending = {}
    for i, x in ipairs(S.needs) do pending[i] = x.batchNumber end
    table.sort(pending)
    return fail('CONFLICT', 'needsPending',
      { id = id, batchNumber = n, pending = table.concat(pending, ', ') })
  end
  if n ~= expected then
    return fail('CONFLICT', 'unexpectedBatch', { id = id, expected = expected, batchNumber = n })
  end
  qualities = S.qualities
  if given ~= nil then qualities = sortQualities(given) end
end

-- StreamSession.checkOverlap: batches in flight (in the order first claimed),
-- then pending needs (by sequence).
local range = { startSegment = start, endSegment = finish }
for _, batch in ipairs(S.batches) do
  if not batch.isComplete and batch.batchNumber ~= n and shareQuality(batch.qualities, qualities)
      and overlaps(batch, range) then
    return fail('CONFLICT', 'claimOverlapsBatch', { id = id, batchNumber = n,
      other = batch.batchNumber, startSegment = batch.startSegment, endSegment = batch.endSegment })
  end
end
for _, other in ipairs(S.needs) do
  if other.batchNumber ~= n and other.reason ~= 'STALLED'
      and shareQuality(other.qualities, qualities) and overlaps(other, range) then
    return fail('CONFLICT', 'claimOverlapsNeed', { id = id, batchNumber = n,
      other = other.batchNumber, startSegment = other.startSegment, endSegment = other.endSegment })
  end
end

local batch = { batchNumber = n, startSegment = start, endSegment = finish,
  videoSourcePath = videoSourcePath, videoStartOffset = videoStartOffset,
  generationStarted = now, isComplete = false, qualities = qualities,
  isLastBatch = finish == S.lastSegment, stalls = 0 }
-- batchMap.set: a new number goes last.
S.batches[#S.batches + 1] = batch
S.current = publicBatch(batch)
if n + 1 > S.claimedHigh then S.claimedHigh = n + 1 end
invalidate(S)
setDeadline(S, batch, deadline)
local relying = {}
if need ~= nil then
  deleteNeed(S, n)
  S.needClients[tostring(n)] = nil
  -- Clients that relied on pending needs are decided again: the batch may
  -- cover less than the need did.
  for _, slot in ipairs(clientsOf(S, need.qualities)) do
    if slot.lo > slot.hi or need.reason == 'FIRST_BATCH' then relying[#relying + 1] = slot end
  end
  settle(S, relying)
end
saveClients(S, relying)
saveSession(S, now)
publish(S)
return reply(S.current, S.outbox)
