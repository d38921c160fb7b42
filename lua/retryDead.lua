#!lua
--[[
  retryDead: put dead-lettered jobs back into their queue as new work: each gets a fresh
  sequence number (the tail of its priority level), attempt 0, and its error cleared.

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     one job id, or "" for the oldest dead jobs
  ARGV[4]     at most this many jobs per call (with ARGV[3] = ""), a whole number >= 1

  Returns     how many jobs were put back
  Errors      NOT_FOUND job <id> ...   the id is not in the dead list
              BAD_REQUEST              the limit is not a whole number >= 1
              OOM                      (from Redis) it is at maxmemory: the shebang without
                                       allow-oom makes Redis refuse the call up front (it
                                       adds work), nothing changed
]]
--@include common.lua
--@include dead.lua

local ids, refusal = deadSelection(ARGV[3], ARGV[4])
if not ids then return refusal end
local now, count = nowMs(), 0
local limit, paused, avg = modelState()
local running = redis.call('ZCARD', activeKey)
for _, id in ipairs(ids) do
  local jobKey = jobPrefix .. id
  redis.call('ZREM', deadKey, id)
  local h = redis.call('HMGET', jobKey, 'request', 'priority', 'history')
  if h[1] then
    local seq = redis.call('INCR', seqKey)
    redis.call('HDEL', jobKey, 'error', 'finished_at', 'started_at', 'token', 'worker', 'result', 'enhanced_prompt')
    redis.call('HSET', jobKey, 'status', 'queued', 'attempt', 0, 'seq', seq, 'history', appendHistory(h[3], 'queued', now))
    redis.call('ZADD', pendingKey, pendingScore(seq, h[2]), id)
    local position = positionOf(id)
    emitEvent(jobKey, id, 'queued', now, { position = position, eta_ms = etaOf(position, limit, running, paused, avg) })
    count = count + 1
  else
    redis.call('DEL', jobKey)
  end
end
ringDoorbell()
return count
