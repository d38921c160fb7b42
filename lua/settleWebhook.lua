#!lua flags=allow-oom
--[[
  settleWebhook: record how a claimed webhook delivery went. Fenced: only the latest claim
  of the delivery settles it, so a deliverer whose lease passed (and whose delivery another
  deliverer took) cannot undo the newer outcome.

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     job id
  ARGV[4]     the claim token from claimWebhook
  ARGV[5]     "delivered" (a 2xx answer), "failed" (retry later) or "refused" (never retry:
              the address is refused)
  ARGV[6]     the HTTP status of the answer, or '' when there was none
  ARGV[7]     what went wrong, or '' (at most 300 bytes are kept)
  ARGV[8]     how long after the first attempt the retries stop, ms, a whole number >= 0
  ARGV[9]     jitter, a number from 0 to 1 (the Swift worker draws it at random): the delay
              is the base delay times 0.8 + 0.4 * jitter

  Returns     { "delivered", attempts } | { "retry", attempts, delay ms } | { "gave_up", attempts }
  Effects     webhook_attempts + 1, webhook_last_attempt_at = now, webhook_last_status or
              webhook_last_error, webhook_claim = ''. delivered: webhook_state `delivered`,
              webhook_delivered_at, out of the outbox. failed: due again after
              min(1000 * 2^(attempts-1), 600000) ms, jittered and capped at 600000, unless that
              is past first attempt + ARGV[8]: then webhook_state `gave_up`, out of the outbox.
              refused: `gave_up` at once
  Errors      NOT_FOUND (no such job or no webhook), STALE_TOKEN (not the latest claim, or
              already settled), BAD_REQUEST; nothing changed
]]
--@include common.lua

local id, claim, outcome, status, problem = ARGV[3], ARGV[4] or '', ARGV[5], ARGV[6] or '', ARGV[7] or ''
local window, jitter = wholeNumber(ARGV[8], 0), tonumber(ARGV[9])
local jobKey = jobPrefix .. id
local outboxKey = webhookKeys()
local h = redis.call('HMGET', jobKey, 'webhook', 'webhook_state', 'webhook_claim', 'webhook_attempts',
                     'webhook_first_attempt_at')
if not h[1] or h[1] == '' then return redis.error_reply('NOT_FOUND job ' .. id .. ' has no webhook') end
if claim == '' or h[3] ~= claim or h[2] ~= 'pending' or not redis.call('ZSCORE', outboxKey, id) then
  return redis.error_reply('STALE_TOKEN webhook of job ' .. id .. ' is not claimed by ' .. claim)
end
if outcome ~= 'delivered' and outcome ~= 'failed' and outcome ~= 'refused' then
  return redis.error_reply('BAD_REQUEST outcome must be delivered, failed or refused')
end
if not window or not jitter or jitter < 0 or jitter > 1 then
  return redis.error_reply('BAD_REQUEST retry window must be a whole number of ms >= 0 and jitter from 0 to 1')
end

local now = nowMs()
local attempts = (tonumber(h[4]) or 0) + 1
local first = tonumber(h[5]) or now
redis.call('HSET', jobKey, 'webhook_attempts', attempts, 'webhook_last_attempt_at', now, 'webhook_claim', '')
if status ~= '' then redis.call('HSET', jobKey, 'webhook_last_status', status)
else redis.call('HDEL', jobKey, 'webhook_last_status') end
if problem ~= '' then redis.call('HSET', jobKey, 'webhook_last_error', string.sub(problem, 1, 300))
else redis.call('HDEL', jobKey, 'webhook_last_error') end

if outcome == 'delivered' then
  redis.call('ZREM', outboxKey, id)
  redis.call('HSET', jobKey, 'webhook_state', 'delivered', 'webhook_delivered_at', now)
  return { 'delivered', attempts }
end
local capMs = 600000
local delay = math.min(capMs, 1000 * 2 ^ math.min(attempts - 1, 30))
delay = math.min(capMs, math.floor(delay * (0.8 + 0.4 * jitter)))
if outcome == 'refused' or now + delay > first + window then
  redis.call('ZREM', outboxKey, id)
  redis.call('HSET', jobKey, 'webhook_state', 'gave_up')
  return { 'gave_up', attempts }
end
redis.call('ZADD', outboxKey, now + delay, id)
return { 'retry', attempts, delay }
