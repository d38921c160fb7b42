#!lua flags=allow-oom
--[[
  releaseJob: the owner hands its job back unfinished (graceful shutdown). It goes to the
  head of its queue at once, under its original sequence, and the attempt is not counted.

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     job id
  ARGV[4]     fencing token

  Returns     the job's position in the queue
  Errors      NOT_FOUND, STALE_TOKEN (nothing changed)
]]
--@include common.lua

local id, token = ARGV[3], ARGV[4]
local jobKey = jobPrefix .. id
local err = ownerError(jobKey, id, token)
if err then return err end
redis.call('ZREM', activeKey, id)
local attempt = tonumber(redis.call('HGET', jobKey, 'attempt')) or 1
redis.call('HSET', jobKey, 'attempt', math.max(0, attempt - 1))
local position = requeue(jobKey, id, nowMs(), nil)
ringDoorbell()
return position
