#!lua flags=allow-oom
--[[
  cancelJob: cancel a job that is still queued.

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     job id
  ARGV[4]     how long to keep the cancelled job, ms (0 = keep)

  Returns     1
  Errors      NOT_FOUND job <id> ...         no such job
              NOT_QUEUED job <id> is <status>  the job has already started or finished;
                                             nothing changed
              BAD_REQUEST                    retention not a whole number >= 0
]]
--@include common.lua

local id, retention = ARGV[3], wholeNumber(ARGV[4], 0)
if not retention then return redis.error_reply('BAD_REQUEST retention must be a whole number of ms >= 0') end
local jobKey = jobPrefix .. id
local status = redis.call('HGET', jobKey, 'status')
if not status then return redis.error_reply('NOT_FOUND job ' .. id .. ' does not exist') end
if status ~= 'queued' or redis.call('ZREM', pendingKey, id) == 0 then
  return redis.error_reply('NOT_QUEUED job ' .. id .. ' is ' .. status)
end
local now = nowMs()
redis.call('HSET', jobKey, 'status', 'cancelled', 'finished_at', now)
emitEvent(jobKey, id, 'cancelled', now, nil)
if retention > 0 then redis.call('PEXPIRE', jobKey, retention) end
return 1
