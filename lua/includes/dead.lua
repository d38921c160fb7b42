-- The dead list's helper for retryDead and purgeDead, pasted after common.lua (whose keys and
-- wholeNumber it uses) in those two scripts only: the scripts on the job path do not pay for
-- defining it on every call.

-- The dead jobs an operator's call names (retryDead, purgeDead): the one job `only` (an id,
-- which must be in the dead list), or when it is absent or '' the oldest `limitText` (a whole
-- number >= 1); nil and an error reply otherwise.
local function deadSelection(only, limitText)
  local limit = wholeNumber(limitText, 1)
  if not limit then return nil, redis.error_reply('BAD_REQUEST limit must be a whole number >= 1') end
  if only == nil or only == '' then return redis.call('ZRANGE', deadKey, 0, limit - 1) end
  if not redis.call('ZSCORE', deadKey, only) then
    return nil, redis.error_reply('NOT_FOUND job ' .. only .. ' is not in the dead list')
  end
  return { only }
end
