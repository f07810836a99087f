-- 003: the database holds UI-written specs to exactly the manifest's rules.
--
-- 001 checked only the length of the free-text spec columns, so the web UI
-- could store values a manifest is refused for ('has space' as an image,
-- 'Bad Template!' as a template, a tab in an owner). These functions are
-- the rules of model/spec.c (spec_text_valid, spec_token_valid,
-- spec_bucket_valid, spec_label_key_valid, spec_name_valid), and every
-- constraint below is named for the column it guards, so a refused write
-- names it.
--
-- The constraints are added NOT VALID: they bind every insert and update
-- from now on without failing this migration on a row an older version let
-- in. Such a row stays readable; its next spec change must fix it.
--
-- It also closes a hole in field ownership: spinup_writer() took the
-- session setting spinup.writer first, so a UI session could SET it to
-- 'spinctl' and have its writes recorded as spinctl's (which apply then
-- overwrites without --force-conflicts). A member of spinup_ui is now
-- always 'ui', whatever the setting says.

-- No control characters (C0 or DEL): owner, prefix, label values.
CREATE FUNCTION spinup_text_ok(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT s !~ '[\x01-\x1f\x7f]'
$$;

-- Non-empty, printable, no spaces: image, ASG name, region.
CREATE FUNCTION spinup_token_ok(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT octet_length(s) > 0 AND s !~ '[\x01-\x20\x7f]'
$$;

-- An S3 bucket name: 3-63 of [a-z0-9.-], starting and ending alphanumeric.
CREATE FUNCTION spinup_bucket_ok(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT s ~ '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'
$$;

-- Labels: key characters and printable values. The shape (an object of at
-- most 16 string values, lengths) stays 001's workspaces_labels_valid, so a
-- shape error keeps its own constraint name.
CREATE FUNCTION spinup_labels_ok(l jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT jsonb_typeof(l) <> 'object' OR (SELECT coalesce(bool_and(
			e.key ~ '^[A-Za-z0-9._/-]{1,63}$'
			AND (jsonb_typeof(e.value) <> 'string' OR spinup_text_ok(e.value #>> '{}'))), true)
		FROM jsonb_each(l) e)
$$;

ALTER TABLE workspaces
	ADD CONSTRAINT workspaces_owner_text CHECK (spinup_text_ok(owner)) NOT VALID,
	ADD CONSTRAINT workspaces_template_name_dns_label
		CHECK (template_name = '' OR spinup_dns_label(template_name)) NOT VALID,
	ADD CONSTRAINT workspaces_image_token CHECK (image = '' OR spinup_token_ok(image)) NOT VALID,
	ADD CONSTRAINT workspaces_bucket_name CHECK (bucket = '' OR spinup_bucket_ok(bucket)) NOT VALID,
	ADD CONSTRAINT workspaces_prefix_text CHECK (spinup_text_ok(prefix)) NOT VALID,
	ADD CONSTRAINT workspaces_labels_text CHECK (spinup_labels_ok(labels)) NOT VALID;

ALTER TABLE pools
	ADD CONSTRAINT pools_asg_name_token CHECK (spinup_token_ok(asg_name)) NOT VALID,
	ADD CONSTRAINT pools_region_token CHECK (spinup_token_ok(region)) NOT VALID,
	ADD CONSTRAINT pools_default_image_token
		CHECK (default_image = '' OR spinup_token_ok(default_image)) NOT VALID;

CREATE OR REPLACE FUNCTION spinup_writer() RETURNS text
LANGUAGE sql STABLE AS $$
	SELECT CASE WHEN current_user = 'spinup_ui'
			OR (pg_has_role(current_user, 'spinup_ui', 'MEMBER')
			    AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))
		THEN 'ui'
		ELSE coalesce(nullif(current_setting('spinup.writer', true), ''), current_user::text)
	END
$$;
