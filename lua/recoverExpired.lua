#!lua flags=allow-oom
--[[
  recoverExpired: the recovery sweep. Jobs whose lease deadline has passed (their worker
  died or lost Redis) go back to the HEAD of pending under their original sequence, or to
  the dead list when they have used all their attempts. Atomic, so any number of workers
  may run it at the same moment: each expired job is recovered exactly once.

  KEYS[1..8]  the model keys (see includes/common.lua)
  KEYS[9..10] optional: the stats key prefix and the recent list (the dashboard's records)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     at most this many jobs per call

  Returns     { requeued, dead }
  Errors      BAD_REQUEST   the limit is not a whole number >= 1
  Effects     the fencing token is cleared, so the old owner's heartbeat, progress,
              complete, fail and release answer STALE_TOKEN; the doorbell rings when a
              job can start (this also repairs a lost doorbell token).
]]
--@include common.lua

local limit = wholeNumber(ARGV[3], 1)
if not limit then return redis.error_reply('BAD_REQUEST limit must be a whole number >= 1') end
local now = nowMs()
local expired = redis.call('ZRANGEBYSCORE', activeKey, '-inf', now, 'LIMIT', 0, limit)
local requeued, dead = 0, 0
for _, id in ipairs(expired) do
  local jobKey = jobPrefix .. id
  redis.call('ZREM', activeKey, id)
  local h = redis.call('HMGET', jobKey, 'attempt', 'max_attempts', 'worker', 'history', 'enqueued_at', 'started_at')
  if redis.call('EXISTS', jobKey) == 1 then
    local attempt, max = tonumber(h[1]) or 0, tonumber(h[2]) or 1
    local message = 'the lease of worker ' .. tostring(h[3] or '?') .. ' expired (attempt '
      .. attempt .. ' of ' .. max .. ')'
    if attempt >= max then
      deadLetter(jobKey, id, now, 'lease_expired', message, h[4], h[5], h[6])
      dead = dead + 1
    else
      requeue(jobKey, id, now, errorObject('lease_expired', message))
      requeued = requeued + 1
    end
  end
end
ringDoorbell()
return { requeued, dead }
