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
-- claimJob, completeJob, failJob and recoverExpired also take, optionally (the dashboard's
-- records, at the end of this file; without them nothing is recorded):
--   KEYS[9]  stats key prefix "<prefix>:{<model>}:stats:"; a minute's HASH is that prefix .. minute
--   KEYS[10] recent   LIST   the ids of the latest completions, newest first
-- and ARGV[1] = model name, ARGV[2] = the model's events channel; the job's own channel is
-- ARGV[2] .. ":" .. id. All keys share the {<model>} hash tag, so on Redis Cluster every key
-- a script touches (the job keys included) lives in the slot of KEYS[1].

local pendingKey, activeKey, deadKey, metaKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local wakeKey, seqKey, fenceKey, jobPrefix = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local model, modelChannel = ARGV[1], ARGV[2]
local appendHistory, recordStats, pushRecent  -- the dashboard's records, defined at the end of this file

-- The server's time in ms; also kept as text in `nowText`, to store and publish without a
-- number-to-text conversion (each one costs a C printf in Redis' Lua).
local nowText
local function nowMs()
  local t = redis.call('TIME')
  -- The ms are the first three of the six digits of the µs (zero-padded).
  nowText = t[1] .. string.sub('00000' .. t[2], -6, -4)
  return tonumber(nowText)
end

-- The model's settings from meta, in one read: the concurrency limit (absent or < 1 means
-- 1), whether it is paused (`paused` = '1': no claims), and the moving average of its recent
-- run times in ms (`run_ms_avg`, nil before the first completion).
local function modelState()
  local m = redis.call('HMGET', metaKey, 'concurrency', 'paused', 'run_ms_avg')
  local limit = tonumber(m[1])
  if limit == nil or limit < 1 then limit = 1 end
  return limit, m[2] == '1', tonumber(m[3])
end

-- Leaves one token in the doorbell when a job is waiting, a slot is free and the model is not
-- paused, so exactly one idle worker wakes; the worker that claims rings again for the next
-- (a chain, not a storm). `limit` is the concurrency limit and `running` the size of active,
-- when the caller has already read them (and so knows the model is not paused); `waiting`
-- true when the caller knows pending holds a job. At or above the limit it reads nothing.
local function ringDoorbell(limit, running, waiting)
  if not limit then
    local paused
    limit, paused = modelState()
    if paused then return end
  end
  if running and running >= limit then return end
  if redis.call('LLEN', wakeKey) == 0
    and (waiting or redis.call('ZCARD', pendingKey) > 0)
    and (running or redis.call('ZCARD', activeKey)) < limit then
    redis.call('RPUSH', wakeKey, '1')
  end
end

-- A job's score in pending: its enqueue sequence, moved by its priority level. Every `high`
-- job sorts before every `normal` one and every `normal` before every `low` (sequences stay
-- below 1e15); `normal` (the field absent) is the sequence alone, as before priorities.
local priorityOffset = { high = -1e15, low = 1e15 }
local function pendingScore(seq, priority)
  return seq + (priorityOffset[priority or ''] or 0)
end

-- The expected wait in ms of the queued job at `position` (1 = next): 0 when a slot is free
-- for it; otherwise the completions it waits for, (position - free slots), at `avg` ms per
-- job spread over `limit` slots, the running jobs being half done on average. nil without a
-- run-time history, or while the model is paused.
local function etaOf(position, limit, running, paused, avg)
  if not position or paused or not avg then return nil end
  local free = limit - running
  if free < 0 then free = 0 end
  if position <= free then return 0 end
  return math.floor(avg * (position - free - 0.5) / limit + 0.5)
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
-- (`"result":{...}`) appended as they are. `idChecked`: the id is that of a job enqueueJob
-- wrote (the job hash has a request), so it needs no check before it goes between quotes.
-- Model names are a-z 0-9 _ (the clients check), job ids letters, digits and _ - . (enqueueJob
-- checks): such text is its own JSON string between quotes, without a cjson call per event.
local modelJSON = cjson.encode(model)
local function quoted(text)
  if string.find(text, '^[%w_%.%-]*$') then return '"' .. text .. '"' end
  return cjson.encode(text)
end

-- A whole number >= 0 as text: one digit without a printf (string.char), more with '%d'
-- (an integer format, cheaper than the '%.14g' of Lua's own conversion and the '%.17g' Redis
-- applies to a number argument of redis.call).
local function intText(n)
  if n >= 0 and n < 10 then return string.char(48 + n) end
  return string.format('%d', n)
end

-- A whole number as JSON: text of digits as it is (no number-to-text conversion), 0 for nil.
local function digits(value)
  if type(value) == 'string' and string.find(value, '^%d+$') then return value end
  return tonumber(value) or 0
end

local function buildEvent(id, status, now, attempt, rev, enhancedPrompt, worker, extra, extraJSON, idChecked)
  local idJSON
  if idChecked then idJSON = '"' .. id .. '"' else idJSON = quoted(id) end
  local prompt = enhancedPrompt
  if extra and type(extra.enhanced_prompt) == 'string' then prompt = extra.enhanced_prompt end
  local promptMember, workerMember, extraMembers, rawMembers = '', '', '', ''
  if prompt and prompt ~= '' then promptMember = ',"enhanced_prompt":' .. cjson.encode(prompt) end
  if worker and worker ~= '' then workerMember = ',"worker":' .. quoted(worker) end
  if extra then
    local parts = {}
    for k, v in pairs(extra) do
      if k ~= 'v' and k ~= 'id' and k ~= 'model' and k ~= 'status' and k ~= 'time' and k ~= 'attempt'
        and k ~= 'rev' and k ~= 'enhanced_prompt' and k ~= 'worker' then
        parts[#parts + 1] = ',' .. cjson.encode(k) .. ':' .. cjson.encode(v)
      end
    end
    extraMembers = table.concat(parts)
  end
  if extraJSON then rawMembers = ',' .. extraJSON end
  -- One concatenation of the whole event (one string built), not a table and table.concat:
  -- about a quarter of the cost.
  return '{"v":1,"id":' .. idJSON .. ',"model":' .. modelJSON .. ',"status":"' .. status .. '","time":' .. now
    .. ',"attempt":' .. digits(attempt) .. ',"rev":' .. rev .. promptMember .. workerMember .. extraMembers
    .. rawMembers .. '}'
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

-- The model's webhook outbox (ZSET job id -> due time, ms) and its wake list: the job key
-- prefix with `job:` replaced, so they share the model's {M} hash tag.
local function webhookKeys()
  local base = string.sub(jobPrefix, 1, #jobPrefix - 4)
  return base .. 'webhooks', base .. 'webhooks:wake'
end

-- When the job asked for a webhook (field `webhook`), queues the delivery of its final event
-- `event` (kept as `webhook_body`: later events do not change it), due at `now`, and wakes
-- one idle deliverer. Called by every path that ends a job. `url` is the job's `webhook`
-- field when the caller has already read it (false: it has none); nil reads it here.
local function queueWebhook(jobKey, id, now, event, url)
  if url == nil then url = redis.call('HGET', jobKey, 'webhook') end
  if not url or url == '' then return end
  local outboxKey, outboxWakeKey = webhookKeys()
  redis.call('HDEL', jobKey, 'webhook_first_attempt_at', 'webhook_last_attempt_at', 'webhook_last_status',
             'webhook_last_error', 'webhook_delivered_at')
  redis.call('HSET', jobKey, 'webhook_body', event, 'webhook_state', 'pending', 'webhook_attempts', 0,
             'webhook_claim', '')
  redis.call('ZADD', outboxKey, now, id)
  if redis.call('LLEN', outboxWakeKey) == 0 then redis.call('RPUSH', outboxWakeKey, '1') end
end

-- Moves a job to the dead list as `failed`, keeping the reason on the job.
-- `history`, `enqueuedAt` and `startedAt` are the job's fields as the caller read them.
local function deadLetter(jobKey, id, now, code, message, history, enqueuedAt, startedAt)
  local err = errorObject(code, message)
  redis.call('HSET', jobKey, 'id', id, 'model', model, 'status', 'failed', 'finished_at', now,
             'error', cjson.encode(err), 'token', '', 'history', appendHistory(history, 'failed', now))
  recordStats('f', now, enqueuedAt, startedAt)
  redis.call('ZADD', deadKey, now, id)
  redis.call('HINCRBY', metaKey, 'failed_total', 1)
  local event = emitEvent(jobKey, id, 'failed', now, { error = err })
  queueWebhook(jobKey, id, now, event)
end

-- Puts a job back into pending under its original sequence number and priority: ahead of
-- every job of its level enqueued after it, so a re-run keeps the model's FIFO order.
local function requeue(jobKey, id, now, err)
  local h = redis.call('HMGET', jobKey, 'seq', 'priority', 'history')
  redis.call('ZADD', pendingKey, pendingScore(tonumber(h[1]) or 0, h[2]), id)
  redis.call('HSET', jobKey, 'status', 'queued', 'token', '', 'history', appendHistory(h[3], 'queued', now))
  redis.call('HDEL', jobKey, 'worker', 'started_at')
  local position = positionOf(id)
  local limit, paused, avg = modelState()
  local extra = { position = position, eta_ms = etaOf(position, limit, redis.call('ZCARD', activeKey), paused, avg) }
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

-- ownerCheck, reading the job's status, token and lease; also answers the fields it read
-- (status, token, history) when the check passes.
local function ownerError(jobKey, id, token)
  local h = redis.call('HMGET', jobKey, 'status', 'token', 'history')
  if not h[1] then return ownerCheck(id, token, nil) end
  return ownerCheck(id, token, h[1], h[2], redis.call('ZSCORE', activeKey, id)), h
end

-- ---------------------------------------------------------------- the operator's dashboard
-- Three records the dashboard reads (docs/PROTOCOL.md §19). Each is written by one call from
-- the scripts, inside writes they already make where possible.

-- A job's event history, its `history` field: `status@ms` entries, oldest first, joined by
-- `;`; a claim's entry also carries the attempt it starts (`generating@1730000000000#2`).
-- `old` is the field as the caller read it (in an HMGET it already makes; nil or false: none
-- yet) and the answer is the new text, for the caller's own HSET. Past 800 bytes (about 32
-- entries) the oldest entry is dropped. enqueueJob writes none (readers take the first
-- `queued` from `enqueued_at`), and progress reports within one stage are not entries.
function appendHistory(old, status, now, attempt)
  local entry = status .. '@' .. now
  if attempt then entry = entry .. '#' .. attempt end
  if not old or old == '' then return entry end
  if #old > 800 then
    local cut = string.find(old, ';', 1, true)
    if not cut then return entry end
    old = string.sub(old, cut + 1)
  end
  return old .. ';' .. entry
end

-- The per-minute counters behind GET /v1/stats: a HASH per model and minute, KEYS[9] (the
-- text `P:{M}:stats:`, like KEYS[8] a prefix) followed by floor(now / 60000), kept 2 hours.
-- One HINCRBY per finished job, on a field naming its outcome (`c` completed, `f` failed)
-- and its buckets of queue wait (enqueued to started) and run time (started to now), four
-- per doubling: `c|w<b>|r<b>` with b = floor(4 log2(1 + ms)); the outcome alone when the
-- times are unknown. The TTL is set only when the field is new (HINCRBY answered 1). A
-- caller without KEYS[9] (a protocol 1.1 client) records nothing.
function recordStats(outcome, now, enqueuedAt, startedAt)
  local prefix = KEYS[9]
  if not prefix then return end
  local field, enqueued, started = outcome, tonumber(enqueuedAt), tonumber(startedAt)
  if enqueued and started then
    field = outcome .. '|w' .. intText(math.floor(math.log(1 + math.max(0, started - enqueued)) * 5.770780163555854))
      .. '|r' .. intText(math.floor(math.log(1 + math.max(0, now - started)) * 5.770780163555854))
  end
  local key = prefix .. intText(math.floor(now / 60000))
  if redis.call('HINCRBY', key, field, '1') == 1 then redis.call('EXPIRE', key, '7200') end
end

-- The model's latest completions, newest first: the LIST KEYS[10] (`P:{M}:recent`) gets the
-- ids of one call in one LPUSH; it is trimmed to 50 only once it holds more than 100 (one
-- LTRIM per 50 completions). Without KEYS[10], nothing.
function pushRecent(ids)
  local key = KEYS[10]
  if not key or #ids == 0 then return end
  if redis.call('LPUSH', key, unpack(ids)) > 100 then redis.call('LTRIM', key, 0, 49) end
end
