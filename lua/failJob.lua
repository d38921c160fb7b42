#!lua flags=allow-oom
--[[
  failJob: the owner gives up on this attempt. A retryable failure puts the job back at
  the head of its queue (under its original sequence, before every later job) while
  attempts remain; a permanent one, or the last attempt, dead-letters it with the reason.

  KEYS[1..8]  the model keys (see includes/common.lua)
  KEYS[9..10] optional: the stats key prefix and the recent list (the dashboard's records)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     job id
  ARGV[4]     fencing token
  ARGV[5]     "retry" or "permanent"
  ARGV[6]     error JSON object {"code": ..., "message": ...}

  Returns     "requeued" or "dead"
  Errors      NOT_FOUND, STALE_TOKEN (nothing changed), BAD_REQUEST
]]
--@include common.lua

local id, token, mode = ARGV[3], ARGV[4], ARGV[5]
local jobKey = jobPrefix .. id
local err = ownerError(jobKey, id, token)
if err then return err end
local failure = decodeObject(ARGV[6])
if mode ~= 'retry' and mode ~= 'permanent' then
  return redis.error_reply('BAD_REQUEST mode must be retry or permanent')
end
if not failure or type(failure.code) ~= 'string' or type(failure.message) ~= 'string' then
  return redis.error_reply('BAD_REQUEST error must be a JSON object with string code and message')
end

local now = nowMs()
redis.call('ZREM', activeKey, id)
local h = redis.call('HMGET', jobKey, 'attempt', 'max_attempts', 'history', 'enqueued_at', 'started_at')
local outcome = 'dead'
if mode == 'retry' and (tonumber(h[1]) or 0) < (tonumber(h[2]) or 1) then
  requeue(jobKey, id, now, errorObject(failure.code, failure.message))
  outcome = 'requeued'
else
  deadLetter(jobKey, id, now, failure.code, failure.message, h[3], h[4], h[5])
end
ringDoorbell()
return outcome
