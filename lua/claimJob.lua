--[[
  claimJob: take the head of a model's pending queue for one worker, unless the model
  already runs as many jobs as its concurrency limit (meta.concurrency, default 1, enforced
  for every worker on every host because the count lives here).

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     worker id
  ARGV[4]     lease in ms: the job returns to the queue if not heartbeaten within it
  ARGV[5]     optional claim id, unique per claim (e.g. worker id + random), recorded on
              the job it claims
  ARGV[6]     optional: '1' when this call repeats one with the same claim id whose reply
              was lost (the connection broke or timed out): it answers the job that call
              claimed, instead of leaving it held until its lease expires. Only a repeat
              looks the claim id up, so an ordinary claim stays O(log n).

  Returns     { "ok", id, token, attempt, max_attempts, request JSON, enqueued_at }
              { "full" }   the model is at its concurrency limit; nothing changed
              { "empty" }  nothing to claim
  Effects     fencing token = INCR fence; attempt + 1; status `enhancing` (or `generating`
              when the job skips enhancement); the job joins active with deadline now+lease;
              the event is published; the doorbell rings again if more work can start.
              A pending entry whose job hash is missing or not `queued` is dead-lettered
              (`malformed_job`) and the next entry is tried (at most 100 per call).
              A repeat (ARGV[6] = '1') whose claim id an active job of this worker carries:
              the same reply again, with the lease renewed to now+lease; no new token, no
              event. A repeat that finds no such job claims as usual.
]]
--@include common.lua

local worker, leaseMs = ARGV[3], wholeNumber(ARGV[4], 1)
if not worker or worker == '' or not leaseMs then
  return redis.error_reply('BAD_REQUEST claim needs a worker id and a positive lease')
end
local claimId = ARGV[5] or ''
local now = nowMs()
if claimId ~= '' and ARGV[6] == '1' then
  for _, id in ipairs(redis.call('ZRANGE', activeKey, 0, -1)) do
    local h = redis.call('HMGET', jobPrefix .. id, 'claim', 'worker', 'token', 'attempt', 'max_attempts', 'request',
                         'enqueued_at')
    if h[1] == claimId and h[2] == worker and h[3] and h[3] ~= '' then
      redis.call('ZADD', activeKey, 'XX', now + leaseMs, id)
      return { 'ok', id, tonumber(h[3]), tonumber(h[4]) or 1, tonumber(h[5]) or 1, h[6], tonumber(h[7]) or 0 }
    end
  end
end
local limit = concurrencyLimit()
if redis.call('ZCARD', activeKey) >= limit then
  return { 'full' }
end

for _ = 1, 100 do
  local head = redis.call('ZPOPMIN', pendingKey)
  if #head == 0 then return { 'empty' } end
  local id = head[1]
  local jobKey = jobPrefix .. id
  local h = redis.call('HMGET', jobKey, 'status', 'request', 'enhance', 'max_attempts', 'enqueued_at')
  if h[1] ~= 'queued' or not h[2] then
    local why = 'job hash is missing'
    if h[1] then why = 'job in the pending queue had status ' .. tostring(h[1]) end
    if h[1] and not h[2] then why = 'job has no request' end
    deadLetter(jobKey, id, now, 'malformed_job', why)
  else
    local token = redis.call('INCR', fenceKey)
    local attempt = redis.call('HINCRBY', jobKey, 'attempt', 1)
    local status = 'enhancing'
    if h[3] == '0' then status = 'generating' end
    if claimId ~= '' then
      redis.call('HSET', jobKey, 'status', status, 'token', token, 'worker', worker, 'started_at', now, 'claim', claimId)
    else
      redis.call('HSET', jobKey, 'status', status, 'token', token, 'worker', worker, 'started_at', now)
      redis.call('HDEL', jobKey, 'claim')
    end
    redis.call('ZADD', activeKey, now + leaseMs, id)
    emitEvent(jobKey, id, status, now, nil)
    ringDoorbell(limit)
    return { 'ok', id, token, attempt, tonumber(h[4]) or 1, h[2], tonumber(h[5]) or 0 }
  end
end
ringDoorbell(limit)  -- 100 malformed entries in a row: make sure a worker comes back for the rest
return { 'empty' }
