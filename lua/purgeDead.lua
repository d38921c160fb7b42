#!lua flags=allow-oom
--[[
  purgeDead: delete dead-lettered jobs for good (their hashes too).

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     one job id, or "" for the oldest dead jobs
  ARGV[4]     at most this many jobs per call (with ARGV[3] = ""), a whole number >= 1

  Returns     how many jobs were deleted
  Errors      NOT_FOUND job <id> ...   the id is not in the dead list
              BAD_REQUEST              the limit is not a whole number >= 1
]]
--@include common.lua

local only, limit = ARGV[3], wholeNumber(ARGV[4], 1)
if not limit then return redis.error_reply('BAD_REQUEST limit must be a whole number >= 1') end
local ids
if only ~= nil and only ~= '' then
  if not redis.call('ZSCORE', deadKey, only) then
    return redis.error_reply('NOT_FOUND job ' .. only .. ' is not in the dead list')
  end
  ids = { only }
else
  ids = redis.call('ZRANGE', deadKey, 0, limit - 1)
end
for _, id in ipairs(ids) do
  redis.call('ZREM', deadKey, id)
  redis.call('DEL', jobPrefix .. id)
end
return #ids
