-- The completion of completeJob and completeAndClaim, pasted after common.lua.
--
-- completeJobs(jobs, retention, now) records the results of `jobs` ({ id, token, result
-- JSON } each), each job alone: status `completed`, finished_at, the result, the token kept,
-- the job kept `retention` ms (0 = kept), its event published, its webhook queued. Then, for
-- the jobs completed: out of active, meta.completed_total + their number and meta.run_ms_avg
-- moved toward their run times (now - started_at, each weighing 0.2). Returns the reply per
-- job (1, or that job's error) and the model's concurrency limit and paused flag, read in
-- the same meta read (nil when nothing was completed).
local function completeJobs(jobs, retention, now)
  local ids = {}
  for n, job in ipairs(jobs) do ids[n] = job[1] end
  local leases = redis.call('ZMSCORE', activeKey, unpack(ids))
  local replies, done, runTimes = {}, {}, {}
  local retentionText = retention and retention > 0 and intText(retention)
  for n, job in ipairs(jobs) do
    local id, token, resultJSON = job[1], job[2], job[3]
    local jobKey = jobPrefix .. id
    local h = redis.call('HMGET', jobKey, 'status', 'token', 'attempt', 'rev', 'enhanced_prompt', 'worker', 'error',
                         'started_at', 'webhook', 'enqueued_at', 'history')
    local reply = nil
    local repeated = h[1] == 'completed' and (token or '') ~= '' and h[2] == token
    if repeated then
      -- A repeat (its reply was lost, or its replication not confirmed): changes nothing but
      -- rewriting the token, a write that a following WAIT covers.
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
      local rev = intText((tonumber(h[4]) or 0) + 1)
      local event = buildEvent(id, 'completed', nowText, h[3], rev, h[5], h[6], nil, '"result":' .. resultJSON, true)
      redis.call('HSET', jobKey, 'status', 'completed', 'finished_at', nowText, 'result', resultJSON,
                 'rev', rev, 'event', event, 'history', appendHistory(h[11], 'completed', nowText))
      if h[7] then redis.call('HDEL', jobKey, 'error') end
      if retention > 0 then redis.call('PEXPIRE', jobKey, retentionText) end
      publishEvent(id, event)
      queueWebhook(jobKey, id, nowText, event, h[9] or false)
      recordStats('c', now, h[10], h[8])
      done[#done + 1] = id
      local started = tonumber(h[8])
      if started then runTimes[#runTimes + 1] = now - started end
      reply = 1
    end
    replies[n] = reply
  end
  if #done == 0 then return replies end
  redis.call('ZREM', activeKey, unpack(done))
  pushRecent(done)
  redis.call('HINCRBY', metaKey, 'completed_total', intText(#done))
  local limit, paused, avg = modelState()
  if #runTimes > 0 then
    -- The moving average of run times (claim to completion) behind queued jobs' eta_ms: each
    -- completion weighs a fifth, so it follows the last ten or so jobs.
    for _, ms in ipairs(runTimes) do
      if ms < 0 then ms = 0 end
      if avg then avg = avg * 0.8 + ms * 0.2 else avg = ms end
    end
    redis.call('HSET', metaKey, 'run_ms_avg', intText(math.floor(avg + 0.5)))
  end
  return replies, limit, paused
end

-- The completions of ARGV[first...], three arguments per job (id, token, result JSON).
local function completionArguments(first)
  local jobs = {}
  for i = first, #ARGV - 2, 3 do jobs[#jobs + 1] = { ARGV[i], ARGV[i + 1], ARGV[i + 2] } end
  return jobs
end
