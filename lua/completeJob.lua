--[[
  completeJob: the owner records the result; the job is done and its slot is free.

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     job id
  ARGV[4]     fencing token
  ARGV[5]     result JSON object (content_type, bytes, store, path or key, ...)
  ARGV[6]     how long to keep the finished job, ms (0 = keep)

  Returns     1
  Effects     status `completed`, finished_at, result stored, token cleared (a second
              completion with the same token is STALE_TOKEN), meta.completed_total + 1,
              the doorbell rings for the next job.
  Errors      NOT_FOUND, STALE_TOKEN (nothing changed), BAD_REQUEST (result not an object)
]]
--@include common.lua

local id, token, retention = ARGV[3], ARGV[4], wholeNumber(ARGV[6], 0)
local jobKey = jobPrefix .. id
local err = ownerError(jobKey, id, token)
if err then return err end
local result = decodeObject(ARGV[5])
if not result then return redis.error_reply('BAD_REQUEST result must be a JSON object') end
if not retention then return redis.error_reply('BAD_REQUEST retention must be a whole number of ms >= 0') end

local now = nowMs()
redis.call('ZREM', activeKey, id)
redis.call('HSET', jobKey, 'status', 'completed', 'finished_at', now, 'result', ARGV[5], 'token', '')
redis.call('HDEL', jobKey, 'error')
redis.call('HINCRBY', metaKey, 'completed_total', 1)
emitEvent(jobKey, id, 'completed', now, { result = result })
ringDoorbell()
if retention > 0 then redis.call('PEXPIRE', jobKey, retention) end
return 1
