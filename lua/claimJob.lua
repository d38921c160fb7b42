#!lua flags=allow-oom
--[[
  claimJob: take jobs from the head of a model's pending queue for one worker, as many as
  asked and as the model's concurrency limit leaves room for (meta.concurrency, default 1,
  enforced for every worker on every host because the count lives here), unless the model
  is paused. The head is the oldest `high` job, else the oldest `normal`, else the oldest
  `low` (the pending scores, see enqueueJob).

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     worker id
  ARGV[4]     lease in ms: a job returns to the queue if not heartbeaten within it
  ARGV[5]     optional claim id, unique per call (e.g. worker id + random), recorded on the
              jobs it claims
  ARGV[6]     optional: '1' when this call repeats one with the same claim id whose reply
              was lost (the connection broke or timed out): it answers the jobs that call
              claimed, instead of leaving them held until their lease expires. Only a repeat
              looks the claim id up, so an ordinary claim stays O(log n).
  ARGV[7]     optional: how many jobs to claim at most, 1 to 1000 (default 1)

  Returns     { "ok", id, token, attempt, max_attempts, request JSON, enqueued_at, ... }:
              six fields per claimed job, in queue order (at least one job)
              { "full" }   the model is at its concurrency limit; nothing changed
              { "empty" }  nothing to claim
              { "paused" } the model is paused (meta.paused = '1', setPaused); nothing changed.
                           A repeat (ARGV[6]) still answers the jobs it had claimed
  Effects     per job: a fencing token from fence; attempt + 1; status `enhancing` (or
              `generating` when the job skips enhancement); the job joins active with
              deadline now+lease; its event is published. Then the doorbell rings again if
              more work can start.
              A pending entry whose job hash is missing or not `queued` is dead-lettered
              (`malformed_job`) and the next entry is tried (at most 100 such per call).
              A repeat (ARGV[6] = '1') for which active jobs of this worker carry the claim
              id: those jobs again, with their leases renewed to now+lease; no new token, no
              event. A repeat that finds none claims as usual.
]]
--@include common.lua

local worker, leaseMs = ARGV[3], wholeNumber(ARGV[4], 1)
if not worker or worker == '' or not leaseMs then
  return redis.error_reply('BAD_REQUEST claim needs a worker id and a positive lease')
end
local wanted = 1
if ARGV[7] and ARGV[7] ~= '' then
  wanted = wholeNumber(ARGV[7], 1)
  if not wanted or wanted > 1000 then
    return redis.error_reply('BAD_REQUEST the number of jobs to claim must be a whole number from 1 to 1000')
  end
end
local claimId = ARGV[5] or ''
local now = nowMs()
if claimId ~= '' and ARGV[6] == '1' then
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
local limit, paused = modelState()
if paused then
  return { 'paused' }
end
local running = redis.call('ZCARD', activeKey)
if running >= limit then
  return { 'full' }
end
local room = math.min(wanted, limit - running)

-- Take up to `room` entries; dead-letter the unreadable ones and take more in their place.
local jobs = {}
local skipped = 0
while #jobs < room and skipped < 100 do
  local head = redis.call('ZPOPMIN', pendingKey, room - #jobs)
  if #head == 0 then break end
  for i = 1, #head, 2 do
    local id = head[i]
    local jobKey = jobPrefix .. id
    local h = redis.call('HMGET', jobKey, 'status', 'request', 'enhance', 'max_attempts', 'enqueued_at', 'attempt', 'rev',
                         'enhanced_prompt')
    if h[1] ~= 'queued' or not h[2] then
      local why = 'job hash is missing'
      if h[1] then why = 'job in the pending queue had status ' .. tostring(h[1]) end
      if h[1] and not h[2] then why = 'job has no request' end
      deadLetter(jobKey, id, now, 'malformed_job', why)
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
local deadline = now + leaseMs
for n, job in ipairs(jobs) do
  local h = job.h
  local token = lastToken - #jobs + n
  local attempt = (tonumber(h[6]) or 0) + 1
  local rev = (tonumber(h[7]) or 0) + 1
  local status = 'enhancing'
  if h[3] == '0' then status = 'generating' end
  local event = buildEvent(job.id, status, nowText, attempt, rev, h[8], worker, nil)
  redis.call('HSET', job.key, 'status', status, 'token', token, 'worker', worker, 'started_at', nowText,
             'claim', claimId, 'attempt', attempt, 'rev', rev, 'event', event)
  publishEvent(job.id, event)
  deadlines[#deadlines + 1] = deadline
  deadlines[#deadlines + 1] = job.id
  local r = #reply
  reply[r + 1], reply[r + 2], reply[r + 3] = job.id, token, attempt
  reply[r + 4], reply[r + 5], reply[r + 6] = tonumber(h[4]) or 1, h[2], tonumber(h[5]) or 0
end
redis.call('ZADD', activeKey, unpack(deadlines))
ringDoorbell(limit, running + #jobs)
return reply
