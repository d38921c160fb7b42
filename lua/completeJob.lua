#!lua flags=allow-oom
--[[
  completeJob: the owner records the result; the job is done and its slot is free. Several
  jobs of the model may be completed in one call.

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     job id
  ARGV[4]     fencing token
  ARGV[5]     result JSON object (content_type, bytes, store, path or key, ...)
  ARGV[6]     how long to keep the finished job, ms (0 = keep)
  ARGV[7...]  optional: more jobs, three arguments each (job id, token, result JSON)

  Returns     1 for one job; for several, an array with, per job in order, 1 or that job's
              error (each job succeeds or fails alone)
  Effects     status `completed`, finished_at, result stored, the token kept, meta.completed_total
              + 1, meta.run_ms_avg moves toward the job's run time (now - started_at: each
              completion weighs 0.2), the doorbell rings for the next job. A repeat with the same token (its
              reply was lost, or its replication was not confirmed) answers 1 and changes
              nothing but rewriting the token, a write that a following WAIT covers.
  Errors      NOT_FOUND, STALE_TOKEN (nothing changed), BAD_REQUEST (result not an object,
              or a bad retention); ownership is checked first
]]
--@include common.lua

local retention = wholeNumber(ARGV[6], 0)
local jobs = { { ARGV[3], ARGV[4], ARGV[5] } }
for i = 7, #ARGV - 2, 3 do jobs[#jobs + 1] = { ARGV[i], ARGV[i + 1], ARGV[i + 2] } end

local ids = {}
for n, job in ipairs(jobs) do ids[n] = job[1] end
local leases = redis.call('ZMSCORE', activeKey, unpack(ids))
local now = nowMs()
local replies, done, runTimes = {}, {}, {}
for n, job in ipairs(jobs) do
  local id, token, resultJSON = job[1], job[2], job[3]
  local jobKey = jobPrefix .. id
  local h = redis.call('HMGET', jobKey, 'status', 'token', 'attempt', 'rev', 'enhanced_prompt', 'worker', 'error',
                       'started_at', 'webhook')
  local reply = nil
  local repeated = h[1] == 'completed' and (token or '') ~= '' and h[2] == token
  if repeated then
    redis.call('HSET', jobKey, 'token', token)
    reply = 1
  else
    reply = ownerCheck(id, token, h[1], h[2], leases[n])
  end
  local result = nil
  if not reply then
    result = decodeObject(resultJSON)
    if not result then reply = redis.error_reply('BAD_REQUEST result must be a JSON object') end
  end
  if not reply and not retention then
    reply = redis.error_reply('BAD_REQUEST retention must be a whole number of ms >= 0')
  end
  if not reply then
    local rev = (tonumber(h[4]) or 0) + 1
    local event = buildEvent(id, 'completed', nowText, h[3], rev, h[5], h[6], nil, '"result":' .. resultJSON)
    redis.call('HSET', jobKey, 'status', 'completed', 'finished_at', nowText, 'result', resultJSON,
               'rev', rev, 'event', event)
    if h[7] then redis.call('HDEL', jobKey, 'error') end
    if retention > 0 then redis.call('PEXPIRE', jobKey, retention) end
    publishEvent(id, event)
    queueWebhook(jobKey, id, nowText, event, h[9] or false)
    done[#done + 1] = id
    local started = tonumber(h[8])
    if started then runTimes[#runTimes + 1] = now - started end
    reply = 1
  end
  replies[n] = reply
end
if #done > 0 then
  redis.call('ZREM', activeKey, unpack(done))
  redis.call('HINCRBY', metaKey, 'completed_total', #done)
  if #runTimes > 0 then
    -- The moving average of run times (claim to completion) behind queued jobs' eta_ms: each
    -- completion weighs a fifth, so it follows the last ten or so jobs.
    local avg = tonumber(redis.call('HGET', metaKey, 'run_ms_avg'))
    for _, ms in ipairs(runTimes) do
      if ms < 0 then ms = 0 end
      if avg then avg = avg * 0.8 + ms * 0.2 else avg = ms end
    end
    redis.call('HSET', metaKey, 'run_ms_avg', math.floor(avg + 0.5))
  end
  ringDoorbell()
end
if #jobs == 1 then return replies[1] end
return replies
