#!lua flags=allow-oom
--[[
  cancelJob: cancel a job that is queued or running.

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     job id
  ARGV[4]     how long to keep the cancelled job, ms (0 = keep)
  ARGV[5]     the model's cancel channel (a running job's id is published there, for the
              worker that runs it)
  ARGV[6]     the job's preview key (deleted)

  Returns     1 (it was queued) or 2 (it was running: its lease and token are gone, so
              every later call of its worker is refused with CANCELLED, and its slot is free)
  Errors      NOT_FOUND job <id> ...         no such job
              NOT_QUEUED job <id> is <status>  the job has already finished; nothing changed
              BAD_REQUEST                    retention not a whole number >= 0
]]
--@include common.lua

local id, retention, cancelChannel, previewKey = ARGV[3], wholeNumber(ARGV[4], 0), ARGV[5], ARGV[6]
if not retention then return redis.error_reply('BAD_REQUEST retention must be a whole number of ms >= 0') end
local jobKey = jobPrefix .. id
local h = redis.call('HMGET', jobKey, 'status', 'history')
local status = h[1]
if not status then return redis.error_reply('NOT_FOUND job ' .. id .. ' does not exist') end
local answer
if status == 'queued' and redis.call('ZREM', pendingKey, id) == 1 then
  answer = 1
elseif status ~= 'queued' and redis.call('ZREM', activeKey, id) == 1 then
  -- Running (claimed, enhancing, generating or retrying): the slot frees now.
  answer = 2
else
  return redis.error_reply('NOT_QUEUED job ' .. id .. ' is ' .. status)
end
local now = nowMs()
redis.call('HSET', jobKey, 'status', 'cancelled', 'finished_at', now, 'token', '', 'history', appendHistory(h[2], 'cancelled', now))
redis.call('HINCRBY', metaKey, 'cancelled_total', 1)
queueWebhook(jobKey, id, now, emitEvent(jobKey, id, 'cancelled', now, nil))
if retention > 0 then redis.call('PEXPIRE', jobKey, retention) end
if answer == 2 then
  if previewKey and previewKey ~= '' then redis.call('DEL', previewKey) end
  if cancelChannel and cancelChannel ~= '' then redis.call('PUBLISH', cancelChannel, id) end
  ringDoorbell()
end
return answer
