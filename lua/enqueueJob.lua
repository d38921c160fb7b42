--[[
  enqueueJob: store a new job, append it to its model's pending queue, wake one idle worker,
  publish `queued` with the job's position.

  KEYS[1..8]  the model keys (see includes/common.lua): pending, active, dead, meta, wake,
              seq, fence, job key prefix
  KEYS[9]     optional: the idempotency key "<prefix>:{<model>}:idem:<key>"
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     job id (1-128 characters of A-Z a-z 0-9 _ - .)
  ARGV[4]     request JSON: an object with string "prompt" and "user", optional boolean
              "enhance" (default true), optional "priority" ("high", "normal" (the
              default) or "low"); other fields are kept for the worker as they are
  ARGV[5]     maximum attempts (claims) before the job is dead-lettered, >= 1
  ARGV[6]     idempotency key lifetime in ms, a whole number >= 1 (used only with KEYS[9])
  ARGV[7]     optional: the most jobs the model's pending queue may hold, a whole number;
              absent, '' or 0 for no cap

  Effects     the job's pending score is its sequence, minus 1e15 for `high`, plus 1e15 for
              `low` (so a model's jobs are claimed by level, each level in enqueue order);
              the `queued` event carries `position` and, once the model has a run-time
              history and is not paused, `eta_ms` (includes/common.lua etaOf)
  Returns     { id, status, position, created }: position is 0 unless the job is queued;
              created is 1 for a new job, 0 when KEYS[9] named an existing job (then id and
              status are that job's)
  Errors      BAD_REQUEST <why>          malformed id (it must start with "<model>-"), request
                                         JSON, attempts or lifetime; nothing written
              EXISTS job <id> ...        a job with this id already exists; nothing written
              QUEUE_FULL model <model> ... pending already holds ARGV[7] jobs; nothing written
              OOM ...                    (from Redis) it is at maxmemory with noeviction: this
                                         script has no allow-oom flag, so its first write is
                                         refused and nothing is written
]]
--@include common.lua

local id, request, maxAttempts = ARGV[3], ARGV[4], wholeNumber(ARGV[5], 1)
local idemKey = KEYS[9]
local idemTTL = wholeNumber(ARGV[6], 1)
local maxPending = 0
if ARGV[7] and ARGV[7] ~= '' then maxPending = wholeNumber(ARGV[7], 0) end

if not id or #id > 128 or not string.match(id, '^[%w_%.%-]+$')
  or string.sub(id, 1, #model + 1) ~= model .. '-' or #id == #model + 1 then
  return redis.error_reply('BAD_REQUEST job id must be "<model>-<suffix>", at most 128 characters of letters, digits, _ - .')
end
if not maxAttempts or maxAttempts > 1000 then
  return redis.error_reply('BAD_REQUEST maximum attempts must be a whole number from 1 to 1000')
end
if idemKey and not idemTTL then
  return redis.error_reply('BAD_REQUEST idempotency lifetime must be a whole number of ms >= 1')
end
local fields = decodeObject(request)
if not fields or type(fields.prompt) ~= 'string' or fields.prompt == ''
  or type(fields.user) ~= 'string' or fields.user == '' then
  return redis.error_reply('BAD_REQUEST request must be a JSON object with non-empty string prompt and user')
end
local priority = fields and fields.priority
if priority == 'normal' then priority = nil end
if priority ~= nil and priority ~= 'high' and priority ~= 'low' then
  return redis.error_reply('BAD_REQUEST priority must be "high", "normal" or "low"')
end
if not maxPending then
  return redis.error_reply('BAD_REQUEST maximum pending must be a whole number >= 0')
end

if idemKey then
  local existing = redis.call('GET', idemKey)
  if existing then
    local status = redis.call('HGET', jobPrefix .. existing, 'status')
    if status then
      return { existing, status, positionOf(existing) or 0, 0 }
    end
  end
end

local jobKey = jobPrefix .. id
if redis.call('EXISTS', jobKey) == 1 then
  return redis.error_reply('EXISTS job ' .. id .. ' already exists')
end

if maxPending > 0 then
  local waiting = redis.call('ZCARD', pendingKey)
  if waiting >= maxPending then
    return redis.error_reply('QUEUE_FULL model ' .. model .. ' has ' .. waiting .. ' queued jobs, its limit is ' .. maxPending)
  end
end

local now = nowMs()
local seq = redis.call('INCR', seqKey)
local enhance = '1'
if fields.enhance == false then enhance = '0' end
redis.call('HSET', jobKey, 'id', id, 'model', model, 'request', request, 'enhance', enhance,
           'status', 'queued', 'attempt', 0, 'max_attempts', maxAttempts, 'seq', seq,
           'enqueued_at', now, 'rev', 0)
if priority then redis.call('HSET', jobKey, 'priority', priority) end
if type(fields.webhook_url) == 'string' and fields.webhook_url ~= '' then
  redis.call('HSET', jobKey, 'webhook', fields.webhook_url)  -- delivered when the job ends (queueWebhook)
end
redis.call('ZADD', pendingKey, pendingScore(seq, priority), id)
if idemKey then
  redis.call('SET', idemKey, id, 'PX', idemTTL)
end
local position = positionOf(id)
local limit, paused, avg = modelState()
local running = redis.call('ZCARD', activeKey)
if not paused then ringDoorbell(limit, running) end
emitEvent(jobKey, id, 'queued', now, { position = position, eta_ms = etaOf(position, limit, running, paused, avg) })
return { id, 'queued', position, 1 }
