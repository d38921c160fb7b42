#!lua flags=allow-oom
--[[
  updateDelivery: rewrite a pending delivery's record (e.g. once its status message exists),
  only while the caller holds the poller lease and the delivery is still pending: a front
  that lost the lease cannot bring back a delivery that another front has finished.

  KEYS[1]     the poller lease (STRING -> owner token)
  KEYS[2]     pending deliveries (HASH job id -> delivery record JSON)
  ARGV[1]     the caller's owner token
  ARGV[2]     the job id
  ARGV[3]     the new record (JSON)

  Returns     1 rewritten, 0 no such pending delivery
  Errors      NOT_LEADER    the caller does not hold the lease (nothing changed)
]]

local leaseKey, deliveriesKey, owner, job, record = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]
if not owner or owner == '' or redis.call('GET', leaseKey) ~= owner then
  return redis.error_reply('NOT_LEADER this front does not hold the poller lease')
end
if redis.call('HEXISTS', deliveriesKey, job) == 0 then return 0 end
redis.call('HSET', deliveriesKey, job, record)
return 1
