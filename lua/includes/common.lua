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

local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function concurrencyLimit()
  local limit = tonumber(redis.call('HGET', metaKey, 'concurrency'))
  if limit == nil or limit < 1 then return 1 end
  return limit
end

-- Leaves one token in the doorbell when a job is waiting and a slot is free, so exactly one
-- idle worker wakes; the worker that claims rings again for the next (a chain, not a storm).
-- `limit` is the concurrency limit when the caller has already read it.
local function ringDoorbell(limit)
  if redis.call('LLEN', wakeKey) == 0
    and redis.call('ZCARD', pendingKey) > 0
    and redis.call('ZCARD', activeKey) < (limit or concurrencyLimit()) then
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

-- Bumps the job's revision, builds the v1 status event from the job hash plus `extra`,
-- stores it on the job (field `event`) and publishes it on the job's and the model's channel.
local function emitEvent(jobKey, id, status, now, extra)
  local rev = redis.call('HINCRBY', jobKey, 'rev', 1)
  local h = redis.call('HMGET', jobKey, 'attempt', 'enhanced_prompt', 'worker')
  local event = { v = 1, id = id, model = model, status = status, time = now,
                  attempt = tonumber(h[1]) or 0, rev = rev }
  if h[2] and h[2] ~= '' then event.enhanced_prompt = h[2] end
  if h[3] and h[3] ~= '' then event.worker = h[3] end
  if extra then
    for k, v in pairs(extra) do
      if event[k] == nil or k == 'enhanced_prompt' then event[k] = v end
    end
  end
  local json = cjson.encode(event)
  redis.call('HSET', jobKey, 'event', json)
  redis.call('PUBLISH', modelChannel .. ':' .. id, json)
  redis.call('PUBLISH', modelChannel, json)
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

-- Token check shared by every owner-only script: returns an error reply, or nil when the
-- caller still owns the job (its token matches and the job holds a lease).
local function ownerError(jobKey, id, token)
  token = token or ''
  local h = redis.call('HMGET', jobKey, 'status', 'token')
  if not h[1] then return redis.error_reply('NOT_FOUND job ' .. id .. ' does not exist') end
  local current = h[2] or ''
  if token == '' or current ~= token or not redis.call('ZSCORE', activeKey, id) then
    return redis.error_reply('STALE_TOKEN job ' .. id .. ' is not owned by token ' .. token)
  end
  return nil
end
