#!lua flags=allow-oom
--[[
  claimWebhook: take the model's due webhook deliveries for one deliverer. Each claimed
  delivery is leased: its outbox score moves to now + lease, so if the deliverer dies the
  delivery comes due again when the lease passes and another deliverer takes it (nothing is
  lost, at the price of a possible second POST: delivery is at least once).

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     at most this many deliveries, a whole number from 0 to 100 (0 claims nothing:
              it only answers how long until the next one is due)
  ARGV[4]     the delivery lease in ms, a whole number >= 1

  Returns     { wait, id, claim, url, body, attempts, ... }: wait is -1 when the outbox is
              empty, else the ms until its earliest entry is due (0: due now), measured after
              the claim; then five fields per claimed delivery, in due order. claim is the
              fencing token settleWebhook wants; attempts counts the settled attempts before
              this one
  Effects     per claimed delivery: `webhook_claim` = a new token (meta.webhook_claims + 1),
              `webhook_first_attempt_at` set at the first claim, the outbox score = now + lease.
              An outbox entry whose job hash is gone, has no webhook, or is not `pending` is
              removed. When deliveries it did not take are still due, it pushes the wake list
              (if empty), so another idle deliverer comes for them
  Errors      BAD_REQUEST (nothing changed)
]]
--@include common.lua

local limit, leaseMs = wholeNumber(ARGV[3], 0), wholeNumber(ARGV[4], 1)
if not limit or limit > 100 or not leaseMs then
  return redis.error_reply('BAD_REQUEST claimWebhook needs a limit from 0 to 100 and a lease of at least 1 ms')
end
local outboxKey, outboxWakeKey = webhookKeys()
local now = nowMs()
local reply = { -1 }
if limit > 0 then
  local due = redis.call('ZRANGEBYSCORE', outboxKey, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    local jobKey = jobPrefix .. id
    local h = redis.call('HMGET', jobKey, 'webhook', 'webhook_body', 'webhook_state', 'webhook_attempts',
                         'webhook_first_attempt_at')
    if not h[1] or h[1] == '' or not h[2] or h[3] ~= 'pending' then
      redis.call('ZREM', outboxKey, id)
    else
      local claim = redis.call('HINCRBY', metaKey, 'webhook_claims', 1)
      redis.call('HSET', jobKey, 'webhook_claim', claim)
      if not h[5] then redis.call('HSET', jobKey, 'webhook_first_attempt_at', now) end
      redis.call('ZADD', outboxKey, now + leaseMs, id)
      local n = #reply
      reply[n + 1], reply[n + 2], reply[n + 3], reply[n + 4], reply[n + 5] = id, claim, h[1], h[2], tonumber(h[4]) or 0
    end
  end
end
local head = redis.call('ZRANGE', outboxKey, 0, 0, 'WITHSCORES')
if #head > 0 then
  local wait = tonumber(head[2]) - now
  if wait < 0 then wait = 0 end
  reply[1] = wait
  -- More are due than this call took: wake one more deliverer (a chain, as the doorbell).
  if wait == 0 and #reply > 1 and redis.call('LLEN', outboxWakeKey) == 0 then
    redis.call('RPUSH', outboxWakeKey, '1')
  end
end
return reply
