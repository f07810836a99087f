-- 001_init: the SpinUp database contract (DESIGN.md "Desired state").
--
-- The web UI writes this database directly, so the database enforces the
-- contract: every field the planner relies on has a type, a NOT NULL, a
-- CHECK or a foreign key, and every constraint has an explicit name
-- (<table>_<column>_<rule>) so an error names what was violated. Text
-- lengths are in bytes (octet_length), matching the C buffers of model/spec.h.
--
-- Column names are the snake_case field names of the C structs, so row <->
-- struct mapping is predictable. Times are timestamptz; C code converts with
-- spinup_ms(timestamptz) -> bigint ms (NULL -> 0, 'infinity' -> INT64_MAX)
-- and spinup_ts(bigint ms) -> timestamptz (0 -> NULL, INT64_MAX ->
-- 'infinity'), the two functions defined below.
--
-- Desired state (written by spinctl and the UI role spinup_ui):
--   pools               struct pool_spec: id, name, asg_name, region,
--                       slots_per_instance, warm_instances, min_instances,
--                       max_instances, agent_port, default_image; controls
--                       paused_until, observe_only, deletion_requested_at;
--                       generation, field_owners, created_at, updated_at
--   workspaces          struct workspace_spec: id, name, owner, pool_id
--                       (-> pools; the struct's `pool` is pools.name),
--                       state (enum ws_state), template_name, image,
--                       cpu_milli, memory_mib, bucket, prefix, idle_timeout_s,
--                       labels (jsonb object of string -> string); controls
--                       deletion_requested_at, paused_until,
--                       reconcile_requested_at; generation, field_owners,
--                       created_at, updated_at. Unique (pool_id, name).
--   operator_controls   one row (id = true): global paused_until, observe_only
--   pool_specs, workspace_specs, workspace_status_view
--                       views shaped exactly like struct pool_spec /
--                       struct workspace_spec / struct workspace_status
--                       (times as bigint ms); what pgstore_decode_pool(),
--                       pgstore_decode_workspace(), pgstore_decode_status() read
--
-- generation and field_owners are maintained by triggers only:
--   * generation starts at 1 and is bumped by exactly one when an UPDATE
--     changes a spec column (a no-op UPDATE does not bump it). Controls
--     (pause, observe-only, deletion mark, reconcile request) do not bump it.
--   * field_owners is {"<column>": {"by": "<writer>", "at": <ms>}, ...} for
--     every spec and control column, updated for each column that changed.
--     The writer is the setting spinup.writer when set (spinctl sets
--     'spinctl'), else 'ui' for members of spinup_ui, else current_user.
--   * NOTIFY channel 'spinup_desired', sent after commit on insert, spec
--     change, or control change (incl. the deletion mark):
--       workspaces        payload '<workspace id>'          e.g. '42'
--       pools             payload 'pool:<pool id>'          e.g. 'pool:3'
--       operator_controls payload 'controls'
--     NOTIFY channel 'spinup_status', payload '' (once per statement), when
--     workspace_status changes (spinctl get --watch listens on both).
--
-- Observed state and the journal (written only by the operator role):
--   workspace_status    struct workspace_status: workspace_id (PK, ->
--                       workspaces ON DELETE CASCADE), observed_generation,
--                       phase (enum ws_phase), conditions (jsonb, see
--                       below), instance_id, address, url, error_class
--                       ('None'|'Retryable'|'NeedsUser'|'NeedsOperator'),
--                       attempts, next_attempt_at, phase_since,
--                       reconcile_handled_at, last_sync_at, restore_failed,
--                       has_snapshot; epoch (writer's fencing epoch), updated_at
--                       conditions = {"Ready": {"status": "True"|"False"|
--                       "Unknown", "reason": "...", "message": "...",
--                       "last_transition": <ms>}, ...} keyed by cond_type_name()
--   workspace_events    struct ws_event, append-only (a trigger refuses
--                       UPDATE, DELETE and TRUNCATE for everyone): id,
--                       workspace_id (no FK: history outlives the row),
--                       workspace_name, type, from_phase, to_phase (the
--                       struct's from/to), reason, message, at, epoch,
--                       recorded_at
--   instances           struct instance_record + observation: instance_id
--                       (PK), pool_id, first_seen, idle_since,
--                       unhealthy_passes, marked_unhealthy, orphan_seen,
--                       private_ip, lifecycle, healthy, protected, last_seen
--   pool_status         struct pool_record: pool_id (PK), window_start,
--                       destructive_in_window, safety_stopped, updated_at
--   drift               struct drift_finding: id, subject, workspace_id,
--                       pool_id, cls (enum drift_class), reason, desired,
--                       observed, remedy; first_seen, last_seen, flap_count,
--                       resolved_at, silenced_until. At most one open
--                       (resolved_at IS NULL) finding per (subject, reason).
--   reconcile_passes    one row per loop pass: id, epoch, holder, started_at,
--                       finished_at, counts, outcome, error
--   actions             the journal: id, key, type, pool_id, workspace_id,
--                       instance_id, payload jsonb, state (enum action_state
--                       pending|done|failed), epoch, created_at, finished_at,
--                       error. At most one pending action per key.
--   operator_leases     fencing epochs: name (PK), epoch, holder, acquired_at
--   schema_migrations   version (PK), name, applied_at (pgstore_migrate)
--
-- Roles (NOLOGIN groups; grant them to login roles):
--   spinup_ui        SELECT everything; INSERT/UPDATE the spec and control
--                    columns of pools and workspaces, UPDATE operator_controls.
--                    Nothing else.
--   spinup_operator  SELECT everything; writes workspace_status, instances,
--                    pool_status, drift, reconcile_passes, actions,
--                    operator_leases; INSERT-only on workspace_events; may
--                    DELETE workspaces rows (finalization). No spec column.

CREATE TABLE IF NOT EXISTS schema_migrations (
	version integer PRIMARY KEY,
	name text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
);

-- Roles are cluster-wide: create them once, tolerate a concurrent creator.
DO $roles$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spinup_ui') THEN
		BEGIN
			CREATE ROLE spinup_ui NOLOGIN;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
		END;
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spinup_operator') THEN
		BEGIN
			CREATE ROLE spinup_operator NOLOGIN;
		EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
		END;
	END IF;
END
$roles$;

-- Time conversions between timestamptz and the C code's int64 milliseconds.
CREATE FUNCTION spinup_ms(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE
		WHEN t IS NULL THEN 0
		WHEN t = 'infinity'::timestamptz THEN 9223372036854775807
		WHEN t = '-infinity'::timestamptz THEN 0
		ELSE floor(extract(epoch FROM t) * 1000)::bigint
	END
$$;

CREATE FUNCTION spinup_ts(ms bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE
		WHEN ms IS NULL OR ms = 0 THEN NULL
		WHEN ms = 9223372036854775807 THEN 'infinity'::timestamptz
		ELSE 'epoch'::timestamptz + ms * interval '1 millisecond'
	END
$$;

-- A DNS label (RFC 1123), the rule of spec_name_valid() in model/spec.c.
CREATE FUNCTION spinup_dns_label(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT octet_length(s) BETWEEN 1 AND 63 AND s ~ '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'
$$;

-- Labels: a JSON object, at most SPEC_LABELS_MAX (16) entries, keys 1..63
-- characters, values strings of at most 63 characters.
CREATE FUNCTION spinup_labels_valid(l jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN jsonb_typeof(l) <> 'object' THEN false ELSE
		(SELECT count(*) <= 16 AND coalesce(bool_and(
			octet_length(e.key) BETWEEN 1 AND 63
			AND jsonb_typeof(e.value) = 'string'
			AND octet_length(e.value #>> '{}') <= 63), true)
		 FROM jsonb_each(l) e)
	END
$$;

-- Who is writing: spinup.writer if set, 'ui' for the UI role, else the role.
CREATE FUNCTION spinup_writer() RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT coalesce(nullif(current_setting('spinup.writer', true), ''),
		CASE WHEN current_user = 'spinup_ui'
			OR (pg_has_role(current_user, 'spinup_ui', 'MEMBER')
			    AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))
		THEN 'ui' ELSE current_user::text END)
$$;

CREATE TYPE ws_state AS ENUM ('Running', 'Stopped');
CREATE TYPE ws_phase AS ENUM ('PENDING', 'ALLOCATING_VM', 'BOOTING_CONTAINER', 'READY',
	'STOPPING', 'STOPPED', 'DELETING', 'DELETED', 'FAILED');
CREATE TYPE drift_class AS ENUM ('missing', 'unmanaged', 'changed', 'unobservable');
CREATE TYPE action_state AS ENUM ('pending', 'done', 'failed');

-- ---------------------------------------------------------------- desired

CREATE TABLE pools (
	id bigserial CONSTRAINT pools_pkey PRIMARY KEY,
	name text NOT NULL
		CONSTRAINT pools_name_dns_label CHECK (spinup_dns_label(name)),
	asg_name text NOT NULL
		CONSTRAINT pools_asg_name_length CHECK (octet_length(asg_name) BETWEEN 1 AND 255),
	region text NOT NULL
		CONSTRAINT pools_region_length CHECK (octet_length(region) BETWEEN 1 AND 32),
	slots_per_instance integer NOT NULL DEFAULT 4
		CONSTRAINT pools_slots_per_instance_range CHECK (slots_per_instance BETWEEN 1 AND 64),
	warm_instances integer NOT NULL DEFAULT 0
		CONSTRAINT pools_warm_instances_range CHECK (warm_instances BETWEEN 0 AND 100),
	min_instances integer NOT NULL DEFAULT 0
		CONSTRAINT pools_min_instances_range CHECK (min_instances BETWEEN 0 AND 10000),
	max_instances integer NOT NULL DEFAULT 10
		CONSTRAINT pools_max_instances_range CHECK (max_instances BETWEEN 0 AND 10000),
	agent_port integer NOT NULL DEFAULT 7070
		CONSTRAINT pools_agent_port_range CHECK (agent_port BETWEEN 1 AND 65535),
	default_image text NOT NULL DEFAULT ''
		CONSTRAINT pools_default_image_length CHECK (octet_length(default_image) <= 255),
	paused_until timestamptz,
	observe_only boolean NOT NULL DEFAULT false,
	deletion_requested_at timestamptz,
	generation bigint NOT NULL DEFAULT 1,
	field_owners jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT pools_name_unique UNIQUE (name),
	CONSTRAINT pools_min_le_max CHECK (min_instances <= max_instances)
);

CREATE TABLE workspaces (
	id bigserial CONSTRAINT workspaces_pkey PRIMARY KEY,
	name text NOT NULL
		CONSTRAINT workspaces_name_dns_label CHECK (spinup_dns_label(name)),
	owner text NOT NULL
		CONSTRAINT workspaces_owner_length CHECK (octet_length(owner) BETWEEN 1 AND 128),
	pool_id bigint NOT NULL
		CONSTRAINT workspaces_pool_id_fkey REFERENCES pools (id) ON DELETE RESTRICT,
	state ws_state NOT NULL DEFAULT 'Running',
	template_name text NOT NULL DEFAULT ''
		CONSTRAINT workspaces_template_name_length CHECK (octet_length(template_name) <= 63),
	image text NOT NULL DEFAULT ''
		CONSTRAINT workspaces_image_length CHECK (octet_length(image) <= 255),
	cpu_milli integer NOT NULL DEFAULT 1000
		CONSTRAINT workspaces_cpu_milli_range CHECK (cpu_milli BETWEEN 100 AND 64000),
	memory_mib integer NOT NULL DEFAULT 2048
		CONSTRAINT workspaces_memory_mib_range CHECK (memory_mib BETWEEN 256 AND 262144),
	bucket text NOT NULL DEFAULT ''
		CONSTRAINT workspaces_bucket_length CHECK (octet_length(bucket) <= 63),
	prefix text NOT NULL DEFAULT ''
		CONSTRAINT workspaces_prefix_length CHECK (octet_length(prefix) <= 255),
	idle_timeout_s integer NOT NULL DEFAULT 3600
		CONSTRAINT workspaces_idle_timeout_s_range CHECK (idle_timeout_s BETWEEN 0 AND 604800),
	labels jsonb NOT NULL DEFAULT '{}'
		CONSTRAINT workspaces_labels_valid CHECK (spinup_labels_valid(labels)),
	deletion_requested_at timestamptz,
	paused_until timestamptz,
	reconcile_requested_at timestamptz,
	generation bigint NOT NULL DEFAULT 1,
	field_owners jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT workspaces_pool_name_unique UNIQUE (pool_id, name)
);
CREATE INDEX workspaces_name_idx ON workspaces (name);

CREATE TABLE operator_controls (
	id boolean NOT NULL DEFAULT true CONSTRAINT operator_controls_pkey PRIMARY KEY
		CONSTRAINT operator_controls_single_row CHECK (id),
	paused_until timestamptz,
	observe_only boolean NOT NULL DEFAULT false,
	updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO operator_controls (id) VALUES (true);

-- Record the owner of each changed column into field_owners (a jsonb).
CREATE FUNCTION spinup_owners(owners jsonb, changed text[]) RETURNS jsonb
LANGUAGE sql STABLE AS $$
	SELECT coalesce(owners, '{}'::jsonb) || coalesce(jsonb_object_agg(c,
		jsonb_build_object('by', spinup_writer(), 'at', spinup_ms(now()))), '{}'::jsonb)
	FROM unnest(changed) AS c
$$;

CREATE FUNCTION workspaces_before_write() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	spec_changed text[] := '{}';
	ctl_changed text[] := '{}';
BEGIN
	IF TG_OP = 'INSERT' THEN
		NEW.generation := 1;
		NEW.created_at := now();
		NEW.updated_at := now();
		spec_changed := ARRAY['name', 'owner', 'pool_id', 'state', 'template_name', 'image',
			'cpu_milli', 'memory_mib', 'bucket', 'prefix', 'idle_timeout_s', 'labels'];
		IF NEW.paused_until IS NOT NULL THEN ctl_changed := ctl_changed || 'paused_until'::text; END IF;
		IF NEW.reconcile_requested_at IS NOT NULL THEN
			ctl_changed := ctl_changed || 'reconcile_requested_at'::text;
		END IF;
		IF NEW.deletion_requested_at IS NOT NULL THEN
			ctl_changed := ctl_changed || 'deletion_requested_at'::text;
		END IF;
		NEW.field_owners := spinup_owners('{}', spec_changed || ctl_changed);
		RETURN NEW;
	END IF;
	IF NEW.name IS DISTINCT FROM OLD.name THEN spec_changed := spec_changed || 'name'::text; END IF;
	IF NEW.owner IS DISTINCT FROM OLD.owner THEN spec_changed := spec_changed || 'owner'::text; END IF;
	IF NEW.pool_id IS DISTINCT FROM OLD.pool_id THEN spec_changed := spec_changed || 'pool_id'::text; END IF;
	IF NEW.state IS DISTINCT FROM OLD.state THEN spec_changed := spec_changed || 'state'::text; END IF;
	IF NEW.template_name IS DISTINCT FROM OLD.template_name THEN
		spec_changed := spec_changed || 'template_name'::text;
	END IF;
	IF NEW.image IS DISTINCT FROM OLD.image THEN spec_changed := spec_changed || 'image'::text; END IF;
	IF NEW.cpu_milli IS DISTINCT FROM OLD.cpu_milli THEN spec_changed := spec_changed || 'cpu_milli'::text; END IF;
	IF NEW.memory_mib IS DISTINCT FROM OLD.memory_mib THEN
		spec_changed := spec_changed || 'memory_mib'::text;
	END IF;
	IF NEW.bucket IS DISTINCT FROM OLD.bucket THEN spec_changed := spec_changed || 'bucket'::text; END IF;
	IF NEW.prefix IS DISTINCT FROM OLD.prefix THEN spec_changed := spec_changed || 'prefix'::text; END IF;
	IF NEW.idle_timeout_s IS DISTINCT FROM OLD.idle_timeout_s THEN
		spec_changed := spec_changed || 'idle_timeout_s'::text;
	END IF;
	IF NEW.labels IS DISTINCT FROM OLD.labels THEN spec_changed := spec_changed || 'labels'::text; END IF;
	IF NEW.paused_until IS DISTINCT FROM OLD.paused_until THEN
		ctl_changed := ctl_changed || 'paused_until'::text;
	END IF;
	IF NEW.reconcile_requested_at IS DISTINCT FROM OLD.reconcile_requested_at THEN
		ctl_changed := ctl_changed || 'reconcile_requested_at'::text;
	END IF;
	IF NEW.deletion_requested_at IS DISTINCT FROM OLD.deletion_requested_at THEN
		ctl_changed := ctl_changed || 'deletion_requested_at'::text;
	END IF;
	-- generation, field_owners and created_at belong to this trigger
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

CREATE FUNCTION workspaces_after_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT'
	   OR NEW.generation <> OLD.generation
	   OR NEW.deletion_requested_at IS DISTINCT FROM OLD.deletion_requested_at
	   OR NEW.paused_until IS DISTINCT FROM OLD.paused_until
	   OR NEW.reconcile_requested_at IS DISTINCT FROM OLD.reconcile_requested_at THEN
		PERFORM pg_notify('spinup_desired', NEW.id::text);
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER workspaces_before_write BEFORE INSERT OR UPDATE ON workspaces
	FOR EACH ROW EXECUTE FUNCTION workspaces_before_write();
CREATE TRIGGER workspaces_after_write AFTER INSERT OR UPDATE ON workspaces
	FOR EACH ROW EXECUTE FUNCTION workspaces_after_write();

CREATE FUNCTION pools_before_write() RETURNS trigger
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

CREATE FUNCTION pools_after_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT'
	   OR NEW.generation <> OLD.generation
	   OR NEW.deletion_requested_at IS DISTINCT FROM OLD.deletion_requested_at
	   OR NEW.paused_until IS DISTINCT FROM OLD.paused_until
	   OR NEW.observe_only IS DISTINCT FROM OLD.observe_only THEN
		PERFORM pg_notify('spinup_desired', 'pool:' || NEW.id::text);
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER pools_before_write BEFORE INSERT OR UPDATE ON pools
	FOR EACH ROW EXECUTE FUNCTION pools_before_write();
CREATE TRIGGER pools_after_write AFTER INSERT OR UPDATE ON pools
	FOR EACH ROW EXECUTE FUNCTION pools_after_write();

CREATE FUNCTION operator_controls_after_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('spinup_desired', 'controls');
	RETURN NULL;
END
$$;
CREATE TRIGGER operator_controls_after_write AFTER UPDATE ON operator_controls
	FOR EACH ROW EXECUTE FUNCTION operator_controls_after_write();

-- The specs exactly as struct pool_spec / struct workspace_spec see them.
CREATE VIEW pool_specs AS
	SELECT p.id, p.name, p.asg_name, p.region, p.slots_per_instance, p.warm_instances,
	       p.min_instances, p.max_instances, p.agent_port, p.default_image, p.generation,
	       spinup_ms(p.paused_until) AS paused_until, p.observe_only,
	       spinup_ms(p.deletion_requested_at) AS deletion_requested_at,
	       p.field_owners, spinup_ms(p.created_at) AS created_at
	FROM pools p;

CREATE VIEW workspace_specs AS
	SELECT w.id, w.name, w.owner, p.name AS pool, w.pool_id, w.state::text AS state,
	       w.template_name, w.image, w.cpu_milli, w.memory_mib, w.bucket, w.prefix,
	       w.idle_timeout_s, w.labels, w.generation,
	       spinup_ms(w.deletion_requested_at) AS deletion_requested_at,
	       spinup_ms(w.paused_until) AS paused_until,
	       spinup_ms(w.reconcile_requested_at) AS reconcile_requested_at,
	       w.field_owners, spinup_ms(w.created_at) AS created_at
	FROM workspaces w JOIN pools p ON p.id = w.pool_id;

-- ---------------------------------------------------------------- observed

CREATE TABLE workspace_status (
	workspace_id bigint CONSTRAINT workspace_status_pkey PRIMARY KEY
		CONSTRAINT workspace_status_workspace_id_fkey
		REFERENCES workspaces (id) ON DELETE CASCADE,
	observed_generation bigint NOT NULL DEFAULT 0,
	phase ws_phase NOT NULL DEFAULT 'PENDING',
	conditions jsonb NOT NULL DEFAULT '{}'
		CONSTRAINT workspace_status_conditions_object CHECK (jsonb_typeof(conditions) = 'object'),
	instance_id text NOT NULL DEFAULT ''
		CONSTRAINT workspace_status_instance_id_length CHECK (octet_length(instance_id) <= 31),
	address text NOT NULL DEFAULT ''
		CONSTRAINT workspace_status_address_length CHECK (octet_length(address) <= 63),
	url text NOT NULL DEFAULT ''
		CONSTRAINT workspace_status_url_length CHECK (octet_length(url) <= 255),
	error_class text NOT NULL DEFAULT 'None'
		CONSTRAINT workspace_status_error_class_valid
		CHECK (error_class IN ('None', 'Retryable', 'NeedsUser', 'NeedsOperator')),
	attempts integer NOT NULL DEFAULT 0
		CONSTRAINT workspace_status_attempts_range CHECK (attempts >= 0),
	next_attempt_at timestamptz,
	phase_since timestamptz,
	reconcile_handled_at timestamptz,
	last_sync_at timestamptz,
	restore_failed boolean NOT NULL DEFAULT false,
	has_snapshot boolean NOT NULL DEFAULT false,
	epoch bigint NOT NULL DEFAULT 0,
	updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION workspace_status_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('spinup_status', '');
	RETURN NULL;
END
$$;
CREATE TRIGGER workspace_status_notify AFTER INSERT OR UPDATE OR DELETE ON workspace_status
	FOR EACH STATEMENT EXECUTE FUNCTION workspace_status_notify();

CREATE TABLE workspace_events (
	id bigserial CONSTRAINT workspace_events_pkey PRIMARY KEY,
	workspace_id bigint NOT NULL,
	workspace_name text NOT NULL DEFAULT ''
		CONSTRAINT workspace_events_workspace_name_length CHECK (octet_length(workspace_name) <= 63),
	type text NOT NULL
		CONSTRAINT workspace_events_type_length CHECK (octet_length(type) BETWEEN 1 AND 47),
	from_phase ws_phase,
	to_phase ws_phase,
	reason text NOT NULL DEFAULT ''
		CONSTRAINT workspace_events_reason_length CHECK (octet_length(reason) <= 63),
	message text NOT NULL DEFAULT ''
		CONSTRAINT workspace_events_message_length CHECK (octet_length(message) <= 255),
	at timestamptz NOT NULL,
	epoch bigint NOT NULL DEFAULT 0,
	recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workspace_events_workspace_idx ON workspace_events (workspace_id, id);
CREATE INDEX workspace_events_name_idx ON workspace_events (workspace_name, id);

CREATE FUNCTION workspace_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'workspace_events is append-only: % refused', TG_OP
		USING ERRCODE = 'insufficient_privilege',
		      CONSTRAINT = 'workspace_events_append_only';
END
$$;
CREATE TRIGGER workspace_events_append_only BEFORE UPDATE OR DELETE ON workspace_events
	FOR EACH ROW EXECUTE FUNCTION workspace_events_append_only();
CREATE TRIGGER workspace_events_no_truncate BEFORE TRUNCATE ON workspace_events
	FOR EACH STATEMENT EXECUTE FUNCTION workspace_events_append_only();

CREATE TABLE instances (
	instance_id text CONSTRAINT instances_pkey PRIMARY KEY
		CONSTRAINT instances_instance_id_length CHECK (octet_length(instance_id) BETWEEN 1 AND 31),
	pool_id bigint NOT NULL
		CONSTRAINT instances_pool_id_fkey REFERENCES pools (id) ON DELETE CASCADE,
	first_seen timestamptz NOT NULL,
	idle_since timestamptz,
	unhealthy_passes integer NOT NULL DEFAULT 0
		CONSTRAINT instances_unhealthy_passes_range CHECK (unhealthy_passes >= 0),
	marked_unhealthy boolean NOT NULL DEFAULT false,
	orphan_seen timestamptz,
	private_ip text NOT NULL DEFAULT ''
		CONSTRAINT instances_private_ip_length CHECK (octet_length(private_ip) <= 63),
	lifecycle text NOT NULL DEFAULT 'Other'
		CONSTRAINT instances_lifecycle_valid
		CHECK (lifecycle IN ('Pending', 'InService', 'Terminating', 'Terminated', 'Other')),
	healthy boolean NOT NULL DEFAULT false,
	protected boolean NOT NULL DEFAULT false,
	last_seen timestamptz
);
CREATE INDEX instances_pool_idx ON instances (pool_id);

CREATE TABLE pool_status (
	pool_id bigint CONSTRAINT pool_status_pkey PRIMARY KEY
		CONSTRAINT pool_status_pool_id_fkey REFERENCES pools (id) ON DELETE CASCADE,
	window_start timestamptz,
	destructive_in_window integer NOT NULL DEFAULT 0
		CONSTRAINT pool_status_destructive_in_window_range CHECK (destructive_in_window >= 0),
	safety_stopped boolean NOT NULL DEFAULT false,
	updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE drift (
	id bigserial CONSTRAINT drift_pkey PRIMARY KEY,
	subject text NOT NULL
		CONSTRAINT drift_subject_length CHECK (octet_length(subject) BETWEEN 1 AND 95),
	workspace_id bigint,
	pool_id bigint,
	cls drift_class NOT NULL,
	reason text NOT NULL
		CONSTRAINT drift_reason_length CHECK (octet_length(reason) BETWEEN 1 AND 63),
	desired text NOT NULL DEFAULT ''
		CONSTRAINT drift_desired_length CHECK (octet_length(desired) <= 127),
	observed text NOT NULL DEFAULT ''
		CONSTRAINT drift_observed_length CHECK (octet_length(observed) <= 127),
	remedy text NOT NULL DEFAULT ''
		CONSTRAINT drift_remedy_length CHECK (octet_length(remedy) <= 127),
	first_seen timestamptz NOT NULL,
	last_seen timestamptz NOT NULL,
	flap_count integer NOT NULL DEFAULT 0
		CONSTRAINT drift_flap_count_range CHECK (flap_count >= 0),
	resolved_at timestamptz,
	silenced_until timestamptz
);
CREATE UNIQUE INDEX drift_open_subject_reason ON drift (subject, reason) WHERE resolved_at IS NULL;
CREATE INDEX drift_workspace_idx ON drift (workspace_id);

CREATE TABLE reconcile_passes (
	id bigserial CONSTRAINT reconcile_passes_pkey PRIMARY KEY,
	epoch bigint NOT NULL DEFAULT 0,
	holder text NOT NULL DEFAULT '',
	started_at timestamptz NOT NULL,
	finished_at timestamptz,
	nworkspaces integer NOT NULL DEFAULT 0,
	nactions integer NOT NULL DEFAULT 0,
	nchanges integer NOT NULL DEFAULT 0,
	nevents integer NOT NULL DEFAULT 0,
	ndrift integer NOT NULL DEFAULT 0,
	outcome text NOT NULL DEFAULT '',
	error text NOT NULL DEFAULT ''
);

CREATE TABLE actions (
	id bigserial CONSTRAINT actions_pkey PRIMARY KEY,
	key text NOT NULL
		CONSTRAINT actions_key_length CHECK (octet_length(key) BETWEEN 1 AND 127),
	type text NOT NULL
		CONSTRAINT actions_type_valid CHECK (type ~ '^[a-z_]{1,32}$'),
	pool_id bigint,
	workspace_id bigint,
	instance_id text NOT NULL DEFAULT '',
	payload jsonb NOT NULL DEFAULT '{}',
	state action_state NOT NULL DEFAULT 'pending',
	epoch bigint NOT NULL DEFAULT 0,
	created_at timestamptz NOT NULL DEFAULT now(),
	finished_at timestamptz,
	error text NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX actions_pending_key ON actions (key) WHERE state = 'pending';
CREATE INDEX actions_workspace_idx ON actions (workspace_id, id);

CREATE TABLE operator_leases (
	name text CONSTRAINT operator_leases_pkey PRIMARY KEY,
	epoch bigint NOT NULL DEFAULT 0
		CONSTRAINT operator_leases_epoch_range CHECK (epoch >= 0),
	holder text NOT NULL DEFAULT '',
	acquired_at timestamptz
);

-- ---------------------------------------------------------------- grants

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO spinup_ui, spinup_operator;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO spinup_ui, spinup_operator;

GRANT INSERT (name, owner, pool_id, state, template_name, image, cpu_milli, memory_mib, bucket,
	prefix, idle_timeout_s, labels, deletion_requested_at, paused_until, reconcile_requested_at)
	ON workspaces TO spinup_ui;
GRANT UPDATE (name, owner, pool_id, state, template_name, image, cpu_milli, memory_mib, bucket,
	prefix, idle_timeout_s, labels, deletion_requested_at, paused_until, reconcile_requested_at)
	ON workspaces TO spinup_ui;
GRANT INSERT (name, asg_name, region, slots_per_instance, warm_instances, min_instances,
	max_instances, agent_port, default_image, paused_until, observe_only, deletion_requested_at)
	ON pools TO spinup_ui;
GRANT UPDATE (name, asg_name, region, slots_per_instance, warm_instances, min_instances,
	max_instances, agent_port, default_image, paused_until, observe_only, deletion_requested_at)
	ON pools TO spinup_ui;
GRANT UPDATE (paused_until, observe_only) ON operator_controls TO spinup_ui;
GRANT USAGE ON SEQUENCE workspaces_id_seq, pools_id_seq TO spinup_ui;

GRANT INSERT, UPDATE, DELETE ON workspace_status, instances, pool_status, drift,
	reconcile_passes, actions, operator_leases TO spinup_operator;
GRANT INSERT ON workspace_events TO spinup_operator;
GRANT DELETE ON workspaces TO spinup_operator;
GRANT USAGE ON SEQUENCE workspace_events_id_seq, drift_id_seq, reconcile_passes_id_seq,
	actions_id_seq TO spinup_operator;

-- struct workspace_status as C sees it (times as bigint ms).
CREATE VIEW workspace_status_view AS
	SELECT s.workspace_id, s.observed_generation, s.phase::text AS phase, s.conditions,
	       s.instance_id, s.address, s.url, s.error_class, s.attempts,
	       spinup_ms(s.next_attempt_at) AS next_attempt_at,
	       spinup_ms(s.phase_since) AS phase_since,
	       spinup_ms(s.reconcile_handled_at) AS reconcile_handled_at,
	       spinup_ms(s.last_sync_at) AS last_sync_at,
	       s.restore_failed, s.has_snapshot, s.epoch,
	       spinup_ms(s.updated_at) AS status_updated_at
	FROM workspace_status s;
GRANT SELECT ON workspace_status_view TO spinup_ui, spinup_operator;
