-- Shared helpers, pasted in place of each script's include line for this file at build time.
--
-- Every model script receives the same KEYS, in this order:
--   KEYS[1] pending  ZSET   job id -> enqueue sequence (lowest = head of the queue)
--   KEYS[2] active   ZSET   job id -> lease deadline, ms since the epoch (server clock)
--   KEYS[3] dead     ZSET   job id -> time it was dead-lettered, ms
--   KEYS[4] meta     HASH   concurrency, completed_total, failed_total, ...
--   KEYS[5] wake     LIST   the doorbell: at most one token, idle workers BLPOP it
--   KEYS[6] seq      STRING enqueue sequence counter
--   KEYS[7] fence    STRING fencing token counter
--   KEYS[8] job key prefix  "<prefix>:{<model>}:job:"; a job's HASH is that prefix .. id
-- and ARGV[1] = model name, ARGV[2] = the model's events channel; the job's own channel is
-- ARGV[2] .. ":" .. id. All keys share the {<model>} hash tag, so on Redis Cluster every key
-- a script touches (the job keys included) lives in the slot of KEYS[1].

local pendingKey, activeKey, deadKey, metaKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local wakeKey, seqKey, fenceKey, jobPrefix = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local model, modelChannel = ARGV[1], ARGV[2]

-- The server's time in ms; also kept as text in `nowText`, to store and publish without a
-- number-to-text conversion (each one costs a C printf in Redis' Lua).
local nowText
local function nowMs()
  local t = redis.call('TIME')
  local ms = math.floor(tonumber(t[2]) / 1000)
  nowText = t[1] .. string.sub(tostring(1000 + ms), 2)
  return tonumber(t[1]) * 1000 + ms
end

local function concurrencyLimit()
  local limit = tonumber(redis.call('HGET', metaKey, 'concurrency'))
  if limit == nil or limit < 1 then return 1 end
  return limit
end

-- Leaves one token in the doorbell when a job is waiting and a slot is free, so exactly one
-- idle worker wakes; the worker that claims rings again for the next (a chain, not a storm).
-- `limit` is the concurrency limit and `running` the size of active, when the caller has
-- already read them.
local function ringDoorbell(limit, running)
  if redis.call('LLEN', wakeKey) == 0
    and redis.call('ZCARD', pendingKey) > 0
    and (running or redis.call('ZCARD', activeKey)) < (limit or concurrencyLimit()) then
    redis.call('RPUSH', wakeKey, '1')
  end
end

local function positionOf(id)
  local rank = redis.call('ZRANK', pendingKey, id)
  if rank then return rank + 1 end
  return nil
end

-- A JSON object decoded to a table, or nil for anything else (arrays included).
local function decodeObject(text)
  if not text or text == '' or string.match(text, '^%s*%[') then return nil end
  local ok, value = pcall(cjson.decode, text)
  if not ok or type(value) ~= 'table' or #value > 0 then return nil end
  for k in pairs(value) do
    if type(k) ~= 'string' then return nil end
  end
  return value
end

-- A whole number in [low, 1e15] from an ARGV string, or nil.
local function wholeNumber(text, low)
  local n = tonumber(text)
  if not n or n ~= math.floor(n) or n < low or n > 1e15 then return nil end
  return n
end

-- The v1 status event (JSON) from the job's fields plus `extra`. `rev` is the job's new
-- revision; `attempt`, `enhancedPrompt` and `worker` are its fields as stored ('' or nil when
-- absent); `now` is the time (a number, or text such as `nowText`). Written out piece by
-- piece rather than with cjson.encode of a table: this runs for every status change, and
-- cjson formats every number with printf. `extraJSON` is optional raw JSON members
-- (`"result":{...}`) appended as they are.
local function buildEvent(id, status, now, attempt, rev, enhancedPrompt, worker, extra, extraJSON)
  local parts = { '{"v":1,"id":', cjson.encode(id), ',"model":', cjson.encode(model), ',"status":"', status,
                  '","time":', now, ',"attempt":', tonumber(attempt) or 0, ',"rev":', rev }
  local prompt = enhancedPrompt
  if extra and type(extra.enhanced_prompt) == 'string' then prompt = extra.enhanced_prompt end
  if prompt and prompt ~= '' then
    parts[#parts + 1] = ',"enhanced_prompt":'
    parts[#parts + 1] = cjson.encode(prompt)
  end
  if worker and worker ~= '' then
    parts[#parts + 1] = ',"worker":'
    parts[#parts + 1] = cjson.encode(worker)
  end
  if extra then
    for k, v in pairs(extra) do
      if k ~= 'v' and k ~= 'id' and k ~= 'model' and k ~= 'status' and k ~= 'time' and k ~= 'attempt'
        and k ~= 'rev' and k ~= 'enhanced_prompt' and k ~= 'worker' then
        parts[#parts + 1] = ','
        parts[#parts + 1] = cjson.encode(k)
        parts[#parts + 1] = ':'
        parts[#parts + 1] = cjson.encode(v)
      end
    end
  end
  if extraJSON then
    parts[#parts + 1] = ','
    parts[#parts + 1] = extraJSON
  end
  parts[#parts + 1] = '}'
  return table.concat(parts)
end

-- Publishes an event on the job's channel and on the model's.
local function publishEvent(id, json)
  redis.call('PUBLISH', modelChannel .. ':' .. id, json)
  redis.call('PUBLISH', modelChannel, json)
end

-- Bumps the job's revision, builds its status event plus `extra`, stores it on the job
-- (field `event`) and publishes it. Scripts that already hold the job's fields build the
-- event themselves with buildEvent and store it in their own HSET (fewer calls per job).
local function emitEvent(jobKey, id, status, now, extra)
  local rev = redis.call('HINCRBY', jobKey, 'rev', 1)
  local h = redis.call('HMGET', jobKey, 'attempt', 'enhanced_prompt', 'worker')
  local json = buildEvent(id, status, now, h[1], rev, h[2], h[3], extra)
  redis.call('HSET', jobKey, 'event', json)
  publishEvent(id, json)
  return json
end

local function errorObject(code, message)
  return { code = code, message = message }
end

-- Moves a job to the dead list as `failed`, keeping the reason on the job.
local function deadLetter(jobKey, id, now, code, message)
  local err = errorObject(code, message)
  redis.call('HSET', jobKey, 'id', id, 'model', model, 'status', 'failed', 'finished_at', now,
             'error', cjson.encode(err), 'token', '')
  redis.call('ZADD', deadKey, now, id)
  redis.call('HINCRBY', metaKey, 'failed_total', 1)
  emitEvent(jobKey, id, 'failed', now, { error = err })
end

-- Puts a job back into pending under its original sequence number: ahead of every job
-- enqueued after it, so a re-run keeps the model's FIFO order.
local function requeue(jobKey, id, now, err)
  local seq = tonumber(redis.call('HGET', jobKey, 'seq')) or 0
  redis.call('ZADD', pendingKey, seq, id)
  redis.call('HSET', jobKey, 'status', 'queued', 'token', '')
  redis.call('HDEL', jobKey, 'worker', 'started_at')
  local extra = { position = positionOf(id) }
  if err then
    redis.call('HSET', jobKey, 'error', cjson.encode(err))
    extra.error = err
  end
  emitEvent(jobKey, id, 'queued', now, extra)
  return extra.position
end

-- The owner check of every owner-only script, on fields already read: an error reply, or nil
-- when `token` is the job's current one (`current`) and the job holds a lease (`leaseScore`,
-- its score in active). `status` is nil when the job does not exist. A job cancelled while
-- it ran answers CANCELLED, so its worker stops it rather than hand it back.
local function ownerCheck(id, token, status, current, leaseScore)
  token = token or ''
  if not status then return redis.error_reply('NOT_FOUND job ' .. id .. ' does not exist') end
  if status == 'cancelled' then return redis.error_reply('CANCELLED job ' .. id .. ' was cancelled') end
  if token == '' or (current or '') ~= token or not leaseScore then
    return redis.error_reply('STALE_TOKEN job ' .. id .. ' is not owned by token ' .. token)
  end
  return nil
end

-- ownerCheck, reading the job's status, token and lease.
local function ownerError(jobKey, id, token)
  local h = redis.call('HMGET', jobKey, 'status', 'token')
  if not h[1] then return ownerCheck(id, token, nil) end
  return ownerCheck(id, token, h[1], h[2], redis.call('ZSCORE', activeKey, id))
end
