#!lua
--[[
  checkRateLimit: a per-user sliding window shared by every producer. Counts this request
  when the user has made fewer than ARGV[1] requests in the last ARGV[2] ms.

  KEYS[1]     the user's window "<prefix>:ratelimit:{<user>}" (ZSET member -> time, ms)
  ARGV[1]     requests allowed per window, >= 1
  ARGV[2]     window length, ms
  ARGV[3]     a unique id for this request (e.g. the job id); the same id counts once

  Returns     { allowed, remaining, retry_after_ms }: allowed is 1 (counted) or 0 (refused,
              nothing counted); retry_after_ms is when the oldest request leaves the window
  Errors      BAD_REQUEST   limit or window not a whole number >= 1, or no request id
              OOM           (from Redis) it is at maxmemory: the shebang without allow-oom
                            makes Redis refuse the whole call up front, so a request that
                            enqueueJob would refuse anyway is not counted
]]

local key, limit, window, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
if not limit or limit < 1 or limit > 1e6 or limit ~= math.floor(limit)
  or not window or window < 1 or window > 1e12 or window ~= math.floor(window)
  or not member or member == '' then
  return redis.error_reply('BAD_REQUEST limit (1-1000000) and window (1-1e12 ms) must be whole numbers and the request id non-empty')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local used = redis.call('ZCARD', key)
if used >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  local retry = window
  if oldest[2] then retry = math.max(1, tonumber(oldest[2]) + window - now) end
  return { 0, 0, retry }
end
redis.call('ZADD', key, now, member)
redis.call('PEXPIRE', key, window)
return { 1, limit - used - 1, 0 }
