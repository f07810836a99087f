-- 004: what the operator must remember across a restart.
--
-- instances.ever_healthy (struct instance_record.ever_healthy): its agent
-- has been healthy at least once. 001 did not store it, so after a spinupd
-- restart every instance younger than register_timeout_ms was given the
-- register timeout again, as if still booting, and an agent that had been
-- healthy and went down was marked unhealthy late.
--
-- Rows written before this migration are filled in from what they tell:
-- an instance last listed InService with no failed agent pass and no mark
-- had a healthy agent on the pass that wrote it (the planner resets
-- unhealthy_passes only for a healthy agent while InService). Others stay
-- false, which is what the operator assumed of them until now.
ALTER TABLE instances ADD COLUMN ever_healthy boolean NOT NULL DEFAULT false;
UPDATE instances SET ever_healthy = true
	WHERE lifecycle = 'InService' AND unhealthy_passes = 0 AND NOT marked_unhealthy
	AND last_seen IS NOT NULL;
