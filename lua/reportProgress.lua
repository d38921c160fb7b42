#!lua flags=allow-oom
--[[
  reportProgress: the owner moves its job to another running stage and publishes it.

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     job id
  ARGV[4]     fencing token
  ARGV[5]     stage: enhancing | generating | retrying
  ARGV[6]     detail JSON object merged into the event (may be "{}"). A string
              "enhanced_prompt" is also stored on the job; an "error" object is stored as
              the job's last error. A number "progress" (0 to 1) is published as it is.
  ARGV[7]     optional: the job's preview key
  ARGV[8]     with ARGV[7]: the preview image (PNG or JPEG bytes, at most 64 KiB)
  ARGV[9]     with ARGV[7]: the preview's TTL, ms (>= 1)

  Returns     the job's new revision
  Errors      NOT_FOUND, STALE_TOKEN (nothing changed), BAD_REQUEST (unknown stage or
              detail that is not a JSON object)
]]
--@include common.lua

local id, token, stage = ARGV[3], ARGV[4], ARGV[5]
local jobKey = jobPrefix .. id
local err, current = ownerError(jobKey, id, token)
if err then return err end
if stage ~= 'enhancing' and stage ~= 'generating' and stage ~= 'retrying' then
  return redis.error_reply('BAD_REQUEST stage must be enhancing, generating or retrying')
end
local detail = decodeObject(ARGV[6] or '{}')
if not detail then
  if ARGV[6] ~= '{}' and ARGV[6] ~= '' and ARGV[6] ~= nil then
    return redis.error_reply('BAD_REQUEST detail must be a JSON object')
  end
  detail = {}
end
if type(detail.enhanced_prompt) == 'string' then
  redis.call('HSET', jobKey, 'enhanced_prompt', detail.enhanced_prompt)
end
if ARGV[7] and ARGV[7] ~= '' then
  local ttl = wholeNumber(ARGV[9], 1)
  if not ttl or not ARGV[8] or #ARGV[8] > 65536 then
    return redis.error_reply('BAD_REQUEST a preview needs its bytes (at most 65536) and a TTL of at least 1 ms')
  end
  redis.call('SET', ARGV[7], ARGV[8], 'PX', ttl)
end
if type(detail.error) == 'table' then
  redis.call('HSET', jobKey, 'error', cjson.encode(detail.error))
end
local now = nowMs()
if current[1] ~= stage then  -- a new stage is a history entry; progress within one is not
  redis.call('HSET', jobKey, 'status', stage, 'history', appendHistory(current[3], stage, nowText))
end
emitEvent(jobKey, id, stage, now, detail)
return tonumber(redis.call('HGET', jobKey, 'rev'))
