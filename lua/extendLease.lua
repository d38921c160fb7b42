--[[
  extendLease: the heartbeat. The owner pushes its job's lease deadline to now + lease.

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     job id
  ARGV[4]     fencing token from claimJob
  ARGV[5]     lease in ms

  Returns     the new deadline, ms since the epoch
  Errors      NOT_FOUND    no such job
              STALE_TOKEN  the token is not the job's current one, or the job holds no
                           lease (it was recovered, completed or failed): nothing changed
]]
--@include common.lua

local id, token, leaseMs = ARGV[3], ARGV[4], wholeNumber(ARGV[5], 1)
local jobKey = jobPrefix .. id
local err = ownerError(jobKey, id, token)
if err then return err end
if not leaseMs then return redis.error_reply('BAD_REQUEST lease must be a whole number of ms >= 1') end
local deadline = nowMs() + leaseMs
redis.call('ZADD', activeKey, 'XX', deadline, id)
return deadline
