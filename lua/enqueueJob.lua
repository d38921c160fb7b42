--[[
  enqueueJob: store new jobs, append them to their model's pending queue, wake one idle
  worker, publish each job's `queued` event with its position. One job per call, or a batch
  of jobs in one call (each job accepted or refused alone).

  KEYS[1..8]  the model keys (see includes/common.lua): pending, active, dead, meta, wake,
              seq, fence, job key prefix
  KEYS[9]     optional: the idempotency key "<prefix>:{<model>}:idem:<key>" (one job per
              call only)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     job id (1-128 characters of A-Z a-z 0-9 _ - ., starting with "<model>-")
  ARGV[4]     request JSON: an object with string "prompt" and "user", optional boolean
              "enhance" (default true), optional "priority" ("high", "normal" (the
              default) or "low"), optional "webhook_url"; other fields are kept for the
              worker as they are
  ARGV[5]     maximum attempts (claims) before the job is dead-lettered, 1 to 1000
  ARGV[6]     idempotency key lifetime in ms, a whole number >= 1 (used only with KEYS[9])
  ARGV[7]     optional: the most jobs the model's pending queue may hold, a whole number;
              absent, '' or 0 for no cap
  ARGV[8...]  optional: more jobs, two arguments each (job id, request JSON), enqueued after
              the first in order, with the same attempts and cap

  Effects     the job hash holds request, enhance, status, max_attempts, seq, enqueued_at
              and rev (1), plus priority and webhook when asked: small enough for Redis'
              compact listpack encoding. The `queued` event is published, not stored: a
              reader builds a never-claimed job's current state from these fields and its
              position (PROTOCOL.md). The job's pending score is its sequence, minus 1e15 for
              `high`, plus 1e15 for `low` (so a model's jobs are claimed by level, each level
              in enqueue order); the event carries `position` and, once the model has a
              run-time history and is not paused, `eta_ms` (includes/common.lua etaOf)
  Returns     one job: { id, status, position, created }: position is 0 unless the job is
              queued; created is 1 for a new job, 0 when KEYS[9] named an existing job (then id
              and status are that job's). Several jobs: an array with that reply or that
              job's error per job, in order
  Errors      BAD_REQUEST <why>          malformed id, request JSON, attempts or lifetime;
                                         nothing written for that job
              EXISTS job <id> ...        a job with this id already exists (or comes twice
                                         in the batch); nothing written for it
              QUEUE_FULL model <model> ... pending already holds ARGV[7] jobs; nothing written
                                         for that job or any after it
              OOM ...                    (from Redis) it is at maxmemory with noeviction: this
                                         script has no allow-oom flag, so its first write is
                                         refused and nothing is written
]]
--@include common.lua

local maxAttempts = wholeNumber(ARGV[5], 1)
local idemKey = KEYS[9]
local idemTTL = wholeNumber(ARGV[6], 1)
local maxPending = 0
if ARGV[7] and ARGV[7] ~= '' then maxPending = wholeNumber(ARGV[7], 0) end
if not maxAttempts or maxAttempts > 1000 then
  return redis.error_reply('BAD_REQUEST maximum attempts must be a whole number from 1 to 1000')
end
local maxAttemptsText = string.match(ARGV[5], '^%d+$') or string.format('%d', maxAttempts)
if idemKey and not idemTTL then
  return redis.error_reply('BAD_REQUEST idempotency lifetime must be a whole number of ms >= 1')
end
if not maxPending then
  return redis.error_reply('BAD_REQUEST maximum pending must be a whole number >= 0')
end

-- The job's fields to store, or an error reply.
local function checked(id, request)
  if not id or #id > 128 or not string.match(id, '^[%w_%.%-]+$')
    or string.sub(id, 1, #model + 1) ~= model .. '-' or #id == #model + 1 then
    return nil, redis.error_reply('BAD_REQUEST job id must be "<model>-<suffix>", at most 128 characters of letters, digits, _ - .')
  end
  local fields = decodeObject(request)
  if not fields or type(fields.prompt) ~= 'string' or fields.prompt == ''
    or type(fields.user) ~= 'string' or fields.user == '' then
    return nil, redis.error_reply('BAD_REQUEST request must be a JSON object with non-empty string prompt and user')
  end
  local priority = fields.priority
  if priority == 'normal' then priority = nil end
  if priority ~= nil and priority ~= 'high' and priority ~= 'low' then
    return nil, redis.error_reply('BAD_REQUEST priority must be "high", "normal" or "low"')
  end
  local webhook = nil
  if type(fields.webhook_url) == 'string' and fields.webhook_url ~= '' then webhook = fields.webhook_url end
  local enhance = '1'
  if fields.enhance == false then enhance = '0' end
  return { id = id, request = request, priority = priority, webhook = webhook, enhance = enhance }
end

if idemKey then
  local _, refusal = checked(ARGV[3], ARGV[4])
  if refusal then return refusal end
  local existing = redis.call('GET', idemKey)
  if existing then
    local status = redis.call('HGET', jobPrefix .. existing, 'status')
    if status then
      return { existing, status, positionOf(existing) or 0, 0 }
    end
  end
end

local replies, jobs, seen = {}, {}, {}
local waiting = nil
-- ARGV[3..4] is the first job; ARGV[5..7] are the settings; more jobs from ARGV[8].
local arguments = { ARGV[3], ARGV[4] }
for i = 8, #ARGV - 1, 2 do
  arguments[#arguments + 1] = ARGV[i]
  arguments[#arguments + 1] = ARGV[i + 1]
end
for i = 1, #arguments, 2 do
  local n = (i + 1) / 2
  local job, refusal = checked(arguments[i], arguments[i + 1])
  if job and (seen[job.id] or redis.call('EXISTS', jobPrefix .. job.id) == 1) then
    job, refusal = nil, redis.error_reply('EXISTS job ' .. arguments[i] .. ' already exists')
  end
  if job and maxPending > 0 then
    waiting = waiting or redis.call('ZCARD', pendingKey)
    if waiting + #jobs >= maxPending then
      job, refusal = nil, redis.error_reply('QUEUE_FULL model ' .. model .. ' has ' .. (waiting + #jobs) ..
                                            ' queued jobs, its limit is ' .. maxPending)
    end
  end
  if job then
    seen[job.id] = true
    job.n = n
    jobs[#jobs + 1] = job
  else
    replies[n] = refusal
  end
end

if #jobs > 0 then
  nowMs()
  local lastSeq = redis.call('INCRBY', seqKey, #jobs)
  local scores = {}
  for k, job in ipairs(jobs) do
    job.seq = intText(lastSeq - #jobs + k)  -- as text once: HSET and ZADD would each convert it
    -- The fields a queued job needs and no more: attempt is absent until the first claim.
    redis.call('HSET', jobPrefix .. job.id, 'request', job.request, 'enhance', job.enhance, 'status', 'queued',
               'max_attempts', maxAttemptsText, 'seq', job.seq, 'enqueued_at', nowText, 'rev', '1')
    if job.priority then redis.call('HSET', jobPrefix .. job.id, 'priority', job.priority) end
    -- Delivered when the job ends (queueWebhook).
    if job.webhook then redis.call('HSET', jobPrefix .. job.id, 'webhook', job.webhook) end
    scores[#scores + 1] = job.priority and pendingScore(tonumber(job.seq), job.priority) or job.seq
    scores[#scores + 1] = job.id
  end
  redis.call('ZADD', pendingKey, unpack(scores))
  if idemKey then
    redis.call('SET', idemKey, jobs[1].id, 'PX', idemTTL)
  end
  -- Positions: a level's jobs of this call sit next to each other in pending (their
  -- sequences are consecutive and nothing else came between), so one ZRANK per level.
  local firstRank, count = {}, {}
  for _, job in ipairs(jobs) do
    local level = job.priority or 'normal'
    if not firstRank[level] then
      firstRank[level] = redis.call('ZRANK', pendingKey, job.id) + 1
      count[level] = 0
    end
    job.position = firstRank[level] + count[level]
    count[level] = count[level] + 1
  end
  local limit, paused, avg = modelState()
  local running = redis.call('ZCARD', activeKey)
  if not paused then ringDoorbell(limit, running, true) end
  for _, job in ipairs(jobs) do
    local eta = etaOf(job.position, limit, running, paused, avg)
    local members = '"position":' .. intText(job.position)
    if eta then members = members .. ',"eta_ms":' .. intText(eta) end
    -- checked() has tested the id: it goes between quotes as it is.
    publishEvent(job.id, buildEvent(job.id, 'queued', nowText, '0', '1', nil, nil, nil, members, true))
    replies[job.n] = { job.id, 'queued', job.position, 1 }
  end
end
if #arguments == 2 then return replies[1] end
return replies
