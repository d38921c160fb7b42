-- The claim of claimJob and completeAndClaim, pasted after common.lua.
--
-- claimJobs(worker, leaseMs, claimId, isRepeat, wanted, now, limit, paused, running) takes
-- up to `wanted` jobs from the head of pending for `worker`, as many as the concurrency limit
-- leaves room for, and answers claimJob's reply ({ 'ok', six fields per job }, { 'full' },
-- { 'empty' } or { 'paused' }). `limit`, `paused` and `running` are the model's state when
-- the caller has read it (nil: read here). `isRepeat`: the call repeats one with the same
-- `claimId` whose answer was lost; the jobs that call claimed are answered again.
local function claimJobs(worker, leaseMs, claimId, isRepeat, wanted, now, limit, paused, running)
  if claimId ~= '' and isRepeat then
    local reply = { 'ok' }
    for _, id in ipairs(redis.call('ZRANGE', activeKey, 0, -1)) do
      local h = redis.call('HMGET', jobPrefix .. id, 'claim', 'worker', 'token', 'attempt', 'max_attempts', 'request',
                           'enqueued_at')
      if h[1] == claimId and h[2] == worker and h[3] and h[3] ~= '' then
        redis.call('ZADD', activeKey, 'XX', now + leaseMs, id)
        local n = #reply
        reply[n + 1], reply[n + 2], reply[n + 3] = id, tonumber(h[3]), tonumber(h[4]) or 1
        reply[n + 4], reply[n + 5], reply[n + 6] = tonumber(h[5]) or 1, h[6], tonumber(h[7]) or 0
      end
    end
    if #reply > 1 then return reply end
  end
  if not limit then limit, paused = modelState() end
  if paused then
    return { 'paused' }
  end
  running = running or redis.call('ZCARD', activeKey)
  if running >= limit then
    return { 'full' }
  end
  local room = math.min(wanted, limit - running)

  -- Take up to `room` entries; dead-letter the unreadable ones and take more in their place.
  local jobs = {}
  local skipped = 0
  local emptied = false
  while #jobs < room and skipped < 100 do
    local head = redis.call('ZPOPMIN', pendingKey, room - #jobs)
    if #head < 2 * (room - #jobs) then emptied = true end
    if #head == 0 then break end
    for i = 1, #head, 2 do
      local id = head[i]
      local jobKey = jobPrefix .. id
      local h = redis.call('HMGET', jobKey, 'status', 'request', 'enhance', 'max_attempts', 'enqueued_at', 'attempt', 'rev',
                           'enhanced_prompt', 'history')
      if h[1] ~= 'queued' or not h[2] then
        local why = 'job hash is missing'
        if h[1] then why = 'job in the pending queue had status ' .. tostring(h[1]) end
        if h[1] and not h[2] then why = 'job has no request' end
        deadLetter(jobKey, id, now, 'malformed_job', why, h[9], h[5])
        skipped = skipped + 1
      else
        jobs[#jobs + 1] = { id = id, key = jobKey, h = h }
      end
    end
  end
  if #jobs == 0 then
    ringDoorbell(limit, running)  -- malformed entries only: make sure a worker comes back for the rest
    return { 'empty' }
  end

  local reply = { 'ok' }
  local deadlines = {}
  local lastToken = redis.call('INCRBY', fenceKey, #jobs)
  local deadline = intText(now + leaseMs)
  for n, job in ipairs(jobs) do
    local h = job.h
    local token = lastToken - #jobs + n
    local attempt = (tonumber(h[6]) or 0) + 1
    -- The numbers as text once each (each one is stored, and most published and recorded too).
    local tokenText, attemptText = intText(token), intText(attempt)
    local revText = intText((tonumber(h[7]) or 0) + 1)
    local status = 'enhancing'
    if h[3] == '0' then status = 'generating' end
    local event = buildEvent(job.id, status, nowText, attemptText, revText, h[8], worker, nil, nil, true)
    redis.call('HSET', job.key, 'status', status, 'token', tokenText, 'worker', worker, 'started_at', nowText,
               'claim', claimId, 'attempt', attemptText, 'rev', revText, 'event', event,
               'history', appendHistory(h[9], status, nowText, attemptText))
    publishEvent(job.id, event)
    deadlines[#deadlines + 1] = deadline
    deadlines[#deadlines + 1] = job.id
    local r = #reply
    reply[r + 1], reply[r + 2], reply[r + 3] = job.id, token, attempt
    reply[r + 4], reply[r + 5], reply[r + 6] = tonumber(h[4]) or 1, h[2], tonumber(h[5]) or 0
  end
  redis.call('ZADD', activeKey, unpack(deadlines))
  -- The queue ran dry in this call: nobody needs waking.
  if not emptied then ringDoorbell(limit, running + #jobs) end
  return reply
end

-- The claim's five arguments from ARGV[first]: worker id, lease ms, claim id, '1' for a
-- repeat, how many jobs at most (1 to 1000, default 1). Returns them, or nil and an error reply.
local function claimArguments(first)
  local worker, leaseMs = ARGV[first], wholeNumber(ARGV[first + 1], 1)
  if not worker or worker == '' or not leaseMs then
    return nil, redis.error_reply('BAD_REQUEST claim needs a worker id and a positive lease')
  end
  local wanted = 1
  local count = ARGV[first + 4]
  if count and count ~= '' then
    wanted = wholeNumber(count, 1)
    if not wanted or wanted > 1000 then
      return nil, redis.error_reply('BAD_REQUEST the number of jobs to claim must be a whole number from 1 to 1000')
    end
  end
  return { worker = worker, leaseMs = leaseMs, claimId = ARGV[first + 2] or '', isRepeat = ARGV[first + 3] == '1',
           wanted = wanted }
end
