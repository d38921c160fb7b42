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
              "enhance" (default true); other fields are kept for the worker as they are
  ARGV[5]     maximum attempts (claims) before the job is dead-lettered, >= 1
  ARGV[6]     idempotency key lifetime in ms, a whole number >= 1 (used only with KEYS[9])
  ARGV[7]     optional: the most jobs the model's pending queue may hold, a whole number;
              absent, '' or 0 for no cap

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
redis.call('ZADD', pendingKey, seq, id)
if idemKey then
  redis.call('SET', idemKey, id, 'PX', idemTTL)
end
local position = positionOf(id)
ringDoorbell()
emitEvent(jobKey, id, 'queued', now, { position = position })
return { id, 'queued', position, 1 }
