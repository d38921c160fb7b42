#!lua flags=allow-oom
--[[
  extendLease: the heartbeat. The owner pushes its job's lease deadline to now + lease. A
  worker may extend the leases of several jobs of the model in one call.

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     job id
  ARGV[4]     fencing token from claimJob
  ARGV[5]     lease in ms
  ARGV[6...]  optional: more jobs, two arguments each (job id, token)

  Returns     the new deadline, ms since the epoch; for several jobs, an array with, per
              job in order, the new deadline or that job's error
  Errors      NOT_FOUND    no such job
              STALE_TOKEN  the token is not the job's current one, or the job holds no
                           lease (it was recovered, completed or failed): nothing changed
              BAD_REQUEST  a lease that is not a whole number of ms >= 1
]]
--@include common.lua

local leaseMs = wholeNumber(ARGV[5], 1)
local jobs = { { ARGV[3], ARGV[4] } }
for i = 6, #ARGV - 1, 2 do jobs[#jobs + 1] = { ARGV[i], ARGV[i + 1] } end
local ids = {}
for n, job in ipairs(jobs) do ids[n] = job[1] end
local leases = redis.call('ZMSCORE', activeKey, unpack(ids))
local replies, extended = {}, {}
local deadline = nil
for n, job in ipairs(jobs) do
  local id, token = job[1], job[2]
  local h = redis.call('HMGET', jobPrefix .. id, 'status', 'token')
  local reply = ownerCheck(id, token, h[1], h[2], leases[n])
  if not reply and not leaseMs then
    reply = redis.error_reply('BAD_REQUEST lease must be a whole number of ms >= 1')
  end
  if not reply then
    deadline = deadline or (nowMs() + leaseMs)
    extended[#extended + 1] = deadline
    extended[#extended + 1] = id
    reply = deadline
  end
  replies[n] = reply
end
if #extended > 0 then redis.call('ZADD', activeKey, 'XX', unpack(extended)) end
if #jobs == 1 then return replies[1] end
return replies
