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
--@include dead.lua

local ids, refusal = deadSelection(ARGV[3], ARGV[4])
if not ids then return refusal end
for _, id in ipairs(ids) do
  redis.call('ZREM', deadKey, id)
  redis.call('DEL', jobPrefix .. id)
end
return #ids
