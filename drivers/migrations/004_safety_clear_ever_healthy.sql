-- 004: instances.ever_healthy kept across restarts; a declarative clear of
-- a pool's safety stop.
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

-- A declarative way out of a safety stop (DESIGN.md invariant 9, "Operator
-- controls"): a pool over its destructive budget is safety-stopped by the
-- operator (pool_status.safety_stopped, which only spinup_operator writes);
-- the web UI and spinctl clear it with a request, as with reconcile-now:
--
--   pools.safety_clear_requested_at  a control column (spinup_ui may write
--                       it; `spinctl clear-safety-stop pool NAME` sets it
--                       to now()). It does not bump generation; it is
--                       recorded in field_owners and NOTIFYs
--                       'pool:<pool id>' like the other controls.
--   pool_status.safety_stopped_at    when the pool entered its current (or
--                       last) safety stop.
--   pool_status.safety_clear_handled_at  the last request the operator has
--                       seen, echoed back as workspace_status echoes
--                       reconcile_requested_at.
--
-- A request newer than both the stop and the last handled one clears the
-- stop and starts a fresh budget window; a plan that breaks the budget again
-- stops the pool again. The view pool_specs gains the request as bigint ms.
ALTER TABLE pools ADD COLUMN safety_clear_requested_at timestamptz;
ALTER TABLE pool_status ADD COLUMN safety_stopped_at timestamptz,
	ADD COLUMN safety_clear_handled_at timestamptz;

GRANT INSERT (safety_clear_requested_at), UPDATE (safety_clear_requested_at)
	ON pools TO spinup_ui;

-- 001's pools_before_write, with safety_clear_requested_at a control column.
CREATE OR REPLACE FUNCTION pools_before_write() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	spec_changed text[] := '{}';
	ctl_changed text[] := '{}';
BEGIN
	IF TG_OP = 'INSERT' THEN
		NEW.generation := 1;
		NEW.created_at := now();
		NEW.updated_at := now();
		spec_changed := ARRAY['name', 'asg_name', 'region', 'slots_per_instance',
			'warm_instances', 'min_instances', 'max_instances', 'agent_port', 'default_image'];
		IF NEW.paused_until IS NOT NULL THEN ctl_changed := ctl_changed || 'paused_until'::text; END IF;
		IF NEW.observe_only THEN ctl_changed := ctl_changed || 'observe_only'::text; END IF;
		IF NEW.deletion_requested_at IS NOT NULL THEN
			ctl_changed := ctl_changed || 'deletion_requested_at'::text;
		END IF;
		IF NEW.safety_clear_requested_at IS NOT NULL THEN
			ctl_changed := ctl_changed || 'safety_clear_requested_at'::text;
		END IF;
		NEW.field_owners := spinup_owners('{}', spec_changed || ctl_changed);
		RETURN NEW;
	END IF;
	IF NEW.name IS DISTINCT FROM OLD.name THEN spec_changed := spec_changed || 'name'::text; END IF;
	IF NEW.asg_name IS DISTINCT FROM OLD.asg_name THEN spec_changed := spec_changed || 'asg_name'::text; END IF;
	IF NEW.region IS DISTINCT FROM OLD.region THEN spec_changed := spec_changed || 'region'::text; END IF;
	IF NEW.slots_per_instance IS DISTINCT FROM OLD.slots_per_instance THEN
		spec_changed := spec_changed || 'slots_per_instance'::text;
	END IF;
	IF NEW.warm_instances IS DISTINCT FROM OLD.warm_instances THEN
		spec_changed := spec_changed || 'warm_instances'::text;
	END IF;
	IF NEW.min_instances IS DISTINCT FROM OLD.min_instances THEN
		spec_changed := spec_changed || 'min_instances'::text;
	END IF;
	IF NEW.max_instances IS DISTINCT FROM OLD.max_instances THEN
		spec_changed := spec_changed || 'max_instances'::text;
	END IF;
	IF NEW.agent_port IS DISTINCT FROM OLD.agent_port THEN
		spec_changed := spec_changed || 'agent_port'::text;
	END IF;
	IF NEW.default_image IS DISTINCT FROM OLD.default_image THEN
		spec_changed := spec_changed || 'default_image'::text;
	END IF;
	IF NEW.paused_until IS DISTINCT FROM OLD.paused_until THEN
		ctl_changed := ctl_changed || 'paused_until'::text;
	END IF;
	IF NEW.observe_only IS DISTINCT FROM OLD.observe_only THEN
		ctl_changed := ctl_changed || 'observe_only'::text;
	END IF;
	IF NEW.deletion_requested_at IS DISTINCT FROM OLD.deletion_requested_at THEN
		ctl_changed := ctl_changed || 'deletion_requested_at'::text;
	END IF;
	IF NEW.safety_clear_requested_at IS DISTINCT FROM OLD.safety_clear_requested_at THEN
		ctl_changed := ctl_changed || 'safety_clear_requested_at'::text;
	END IF;
	NEW.generation := OLD.generation + CASE WHEN cardinality(spec_changed) > 0 THEN 1 ELSE 0 END;
	NEW.created_at := OLD.created_at;
	NEW.field_owners := OLD.field_owners;
	IF cardinality(spec_changed) + cardinality(ctl_changed) > 0 THEN
		NEW.field_owners := spinup_owners(OLD.field_owners, spec_changed || ctl_changed);
		NEW.updated_at := now();
	ELSE
		NEW.updated_at := OLD.updated_at;
	END IF;
	RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION pools_after_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT'
	   OR NEW.generation <> OLD.generation
	   OR NEW.deletion_requested_at IS DISTINCT FROM OLD.deletion_requested_at
	   OR NEW.paused_until IS DISTINCT FROM OLD.paused_until
	   OR NEW.observe_only IS DISTINCT FROM OLD.observe_only
	   OR NEW.safety_clear_requested_at IS DISTINCT FROM OLD.safety_clear_requested_at THEN
		PERFORM pg_notify('spinup_desired', 'pool:' || NEW.id::text);
	END IF;
	RETURN NULL;
END
$$;

CREATE OR REPLACE VIEW pool_specs AS
	SELECT p.id, p.name, p.asg_name, p.region, p.slots_per_instance, p.warm_instances,
	       p.min_instances, p.max_instances, p.agent_port, p.default_image, p.generation,
	       spinup_ms(p.paused_until) AS paused_until, p.observe_only,
	       spinup_ms(p.deletion_requested_at) AS deletion_requested_at,
	       p.field_owners, spinup_ms(p.created_at) AS created_at,
	       spinup_ms(p.safety_clear_requested_at) AS safety_clear_requested_at
	FROM pools p;
