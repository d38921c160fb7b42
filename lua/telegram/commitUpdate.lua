#!lua flags=allow-oom
--[[
  commitUpdate: the Telegram front has handled one update. Moves the stored update offset
  past it and, for an accepted /image command, records the job's pending delivery: both in
  one step, so a restart neither handles the update again nor forgets the delivery. Only
  the holder of the poller lease may commit.

  KEYS[1]     the poller lease (STRING -> owner token)
  KEYS[2]     the update offset (STRING: the next update_id to ask for)
  KEYS[3]     pending deliveries (HASH job id -> delivery record JSON)
  ARGV[1]     the caller's owner token
  ARGV[2]     the new offset (update_id + 1), a whole number
  ARGV[3]     the job id to deliver, or '' when the update started no job
  ARGV[4]     the delivery record (JSON), when ARGV[3] is set

  Returns     1 the delivery was recorded, 0 it already was (or no job was given)
  Errors      NOT_LEADER    the caller does not hold the lease (nothing changed)
              BAD_REQUEST   an offset that is not a whole number, or a job without a record
]]

local leaseKey, offsetKey, deliveriesKey = KEYS[1], KEYS[2], KEYS[3]
local owner, offset, job, record = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
if not offset or offset ~= math.floor(offset) then
  return redis.error_reply('BAD_REQUEST the offset must be a whole number')
end
if job ~= '' and (not record or record == '') then
  return redis.error_reply('BAD_REQUEST a job needs its delivery record')
end
if not owner or owner == '' or redis.call('GET', leaseKey) ~= owner then
  return redis.error_reply('NOT_LEADER this front does not hold the poller lease')
end
local created = 0
if job ~= '' then created = redis.call('HSETNX', deliveriesKey, job, record) end
local current = tonumber(redis.call('GET', offsetKey))
if not current or offset > current then redis.call('SET', offsetKey, ARGV[2]) end
return created
