#!lua flags=allow-oom
--[[
  setConcurrency: set how many jobs of the model may run at once across all workers.
  Raising it rings the doorbell so idle workers start the extra jobs at once.

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     the new limit, a whole number >= 1

  Returns     the new limit
  Errors      BAD_REQUEST   not a whole number >= 1
]]
--@include common.lua

local limit = wholeNumber(ARGV[3], 1)
if not limit then
  return redis.error_reply('BAD_REQUEST concurrency must be a whole number >= 1')
end
redis.call('HSET', metaKey, 'concurrency', limit)
ringDoorbell()
return limit
