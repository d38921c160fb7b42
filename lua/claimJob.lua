#!lua flags=allow-oom
--[[
  claimJob: take jobs from the head of a model's pending queue for one worker, as many as
  asked and as the model's concurrency limit leaves room for (meta.concurrency, default 1,
  enforced for every worker on every host because the count lives here), unless the model
  is paused. The head is the oldest `high` job, else the oldest `normal`, else the oldest
  `low` (the pending scores, see enqueueJob).

  KEYS[1..8]  the model keys (see includes/common.lua)
  ARGV[1]     model name
  ARGV[2]     the model's events channel
  ARGV[3]     worker id
  ARGV[4]     lease in ms: a job returns to the queue if not heartbeaten within it
  ARGV[5]     optional claim id, unique per call (e.g. worker id + random), recorded on the
              jobs it claims
  ARGV[6]     optional: '1' when this call repeats one with the same claim id whose reply
              was lost (the connection broke or timed out): it answers the jobs that call
              claimed, instead of leaving them held until their lease expires. Only a repeat
              looks the claim id up, so an ordinary claim stays O(log n).
  ARGV[7]     optional: how many jobs to claim at most, 1 to 1000 (default 1)

  Returns     { "ok", id, token, attempt, max_attempts, request JSON, enqueued_at, ... }:
              six fields per claimed job, in queue order (at least one job)
              { "full" }   the model is at its concurrency limit; nothing changed
              { "empty" }  nothing to claim
              { "paused" } the model is paused (meta.paused = '1', setPaused); nothing changed.
                           A repeat (ARGV[6]) still answers the jobs it had claimed
  Effects     per job: a fencing token from fence; attempt + 1; status `enhancing` (or
              `generating` when the job skips enhancement); the job joins active with
              deadline now+lease; its event is published. Then the doorbell rings again if
              more work can start.
              A pending entry whose job hash is missing or not `queued` is dead-lettered
              (`malformed_job`) and the next entry is tried (at most 100 such per call).
              A repeat (ARGV[6] = '1') for which active jobs of this worker carry the claim
              id: those jobs again, with their leases renewed to now+lease; no new token, no
              event. A repeat that finds none claims as usual.
]]
--@include common.lua
--@include claim.lua

local claim, refusal = claimArguments(3)
if not claim then return refusal end
return claimJobs(claim.worker, claim.leaseMs, claim.claimId, claim.isRepeat, claim.wanted, nowMs())
