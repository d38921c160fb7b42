#!lua flags=allow-oom
--[[
  completeAndClaim: completeJob, then claimJob for the same worker, in one call: a worker
  whose slots are all busy completes its jobs and takes the next ones in a single round trip
  (as BullMQ's moveToFinished fetches the next job). Every guarantee of the two scripts
  holds: the completions are fenced by their tokens, the claim by the concurrency limit, the
  pause, the lease and the claim id.

  KEYS[1..8]  the model keys (see includes/common.lua)
  KEYS[9..10] optional: the stats key prefix and the recent list (the dashboard's records)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3..7]  the claim, as claimJob's ARGV[3..7]: worker id, lease ms, claim id, '1' for a
              repeat whose answer was lost (then the jobs claimed under that id are answered),
              how many jobs at most (1 to 1000)
  ARGV[8]     how long to keep a finished job, ms (0 = keep), as completeJob's ARGV[6]
  ARGV[9...]  the completions, three arguments per job (job id, fencing token, result JSON),
              at least one

  Returns     { completions, claim }: completions is an array with, per job in order, 1 or
              that job's error (as completeJob answers several jobs); claim is claimJob's
              reply ({ "ok", six fields per job }, { "full" }, { "empty" }, { "paused" })
  Errors      BAD_REQUEST  malformed claim arguments or no completion: nothing changed
]]
--@include common.lua
--@include complete.lua
--@include claim.lua

local claim, refusal = claimArguments(3)
if not claim then return refusal end
local jobs = completionArguments(9)
if #jobs == 0 then return redis.error_reply('BAD_REQUEST completeAndClaim needs at least one completion') end
local now = nowMs()
local replies, limit, paused = completeJobs(jobs, wholeNumber(ARGV[8], 0), now)
return { replies, claimJobs(claim.worker, claim.leaseMs, claim.claimId, claim.isRepeat, claim.wanted, now, limit, paused) }
