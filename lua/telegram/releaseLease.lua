#!lua flags=allow-oom
--[[
  releaseLease: give a lease up (on shutdown) and hand it over at once: a standby blocked on
  the handover list wakes and takes the lease without waiting for it to expire.

  KEYS[1]     the lease (STRING -> owner token)
  KEYS[2]     the handover doorbell (LIST, at most one token)
  ARGV[1]     the owner token
  ARGV[2]     how long an unclaimed handover token lasts, ms (whole number >= 1)

  Returns     1 released, 0 not the owner (nothing changed)
  Errors      BAD_REQUEST   no owner token, or a bad lifetime
]]

local leaseKey, handoverKey, owner, ttl = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
if not owner or owner == '' or not ttl or ttl < 1 or ttl ~= math.floor(ttl) then
  return redis.error_reply('BAD_REQUEST an owner token and a whole lifetime >= 1 ms are required')
end
if redis.call('GET', leaseKey) ~= owner then return 0 end
redis.call('DEL', leaseKey, handoverKey)
redis.call('RPUSH', handoverKey, '1')
redis.call('PEXPIRE', handoverKey, ttl)
return 1
