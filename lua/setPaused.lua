#!lua flags=allow-oom
--[[
  setPaused: pause or resume a model for every worker on every host. While paused, claimJob
  answers { "paused" } and takes nothing; jobs already running finish; enqueue still accepts.
  Resuming rings the doorbell, so an idle worker starts at once (no polling).

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     '1' to pause, '0' to resume

  Returns     1 when the state changed, 0 when the model already was in it
  Effects     meta.paused = '1' (pause: the doorbell is emptied, so no worker wakes for
              nothing), or meta.paused removed (resume: the doorbell rings if work can start)
  Errors      BAD_REQUEST   ARGV[3] is neither '1' nor '0'
]]
--@include common.lua

local pause = ARGV[3]
if pause ~= '1' and pause ~= '0' then
  return redis.error_reply("BAD_REQUEST pause must be '1' (pause) or '0' (resume)")
end
local _, paused = modelState()
if pause == '1' then
  if paused then return 0 end
  redis.call('HSET', metaKey, 'paused', '1')
  redis.call('DEL', wakeKey)
  return 1
end
if not paused then return 0 end
redis.call('HDEL', metaKey, 'paused')
ringDoorbell()
return 1
