#!lua flags=allow-oom
--[[
  renewLease: extend a lease (the Telegram front's poller lease) while its holder still owns
  it. A holder that lost the lease (it expired and another took it) gets 0 and must stop.

  KEYS[1]     the lease "<prefix>:telegram:{<bot>}:lease" (STRING holder -> owner token)
  ARGV[1]     the owner token the holder acquired it with
  ARGV[2]     new time to live, ms (whole number >= 1)

  Returns     1 extended, 0 not the owner (nothing changed)
  Errors      BAD_REQUEST   no owner token, or a time to live that is not a whole number >= 1
]]

local leaseKey, owner, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2])
if not owner or owner == '' or not ttl or ttl < 1 or ttl ~= math.floor(ttl) then
  return redis.error_reply('BAD_REQUEST an owner token and a whole time to live >= 1 ms are required')
end
if redis.call('GET', leaseKey) ~= owner then return 0 end
redis.call('PEXPIRE', leaseKey, ttl)
return 1
