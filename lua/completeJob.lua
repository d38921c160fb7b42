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
--@include complete.lua

local jobs = completionArguments(7)
table.insert(jobs, 1, { ARGV[3], ARGV[4], ARGV[5] })
local replies, limit, paused = completeJobs(jobs, wholeNumber(ARGV[6], 0), nowMs())
if limit and not paused then ringDoorbell(limit) end
if #jobs == 1 then return replies[1] end
return replies
