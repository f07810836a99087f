-- 005: drift silences, declared like every other operator control.
--
-- A silence hides matching drift findings from `spinctl drift` (and its
-- exit status) until it expires. It is a row people write (`spinctl
-- silence`, or the web UI as spinup_ui), never a column the operator must
-- be asked to set: drift.silenced_until of 001 was never written and is
-- superseded here.
--
-- subject is a finding's subject as `spinctl drift` shows it
-- ("workspace/alice-blog", "instance/i-0abc...", "pool/default"), or a
-- prefix ending in '*' ("instance/*"); reason '' matches every reason.

CREATE TABLE drift_silences (
	id bigserial CONSTRAINT drift_silences_pkey PRIMARY KEY,
	subject text NOT NULL
		CONSTRAINT drift_silences_subject_valid
		CHECK (subject ~ '^[a-z]+/[A-Za-z0-9._/*-]{0,120}$' AND position('*' IN subject) IN (0, octet_length(subject))),
	reason text NOT NULL DEFAULT ''
		CONSTRAINT drift_silences_reason_valid CHECK (reason ~ '^[A-Za-z0-9]{0,63}$'),
	until timestamptz NOT NULL,
	comment text NOT NULL DEFAULT ''
		CONSTRAINT drift_silences_comment_text
		CHECK (octet_length(comment) <= 500 AND spinup_text_ok(comment)),
	created_by text NOT NULL DEFAULT spinup_writer(),
	created_at timestamptz NOT NULL DEFAULT now(),
	CONSTRAINT drift_silences_until_after_created CHECK (until > created_at)
);

-- Does silence subject pattern p match the finding subject s?
CREATE FUNCTION spinup_silence_matches(p text, s text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE WHEN right(p, 1) = '*' THEN left(s, length(p) - 1) = left(p, -1)
		ELSE s = p END
$$;

-- Each finding with the latest end of the silences that match it now.
CREATE VIEW drift_view AS
	SELECT d.*,
	       (SELECT max(x.until) FROM drift_silences x
		WHERE x.until > now() AND (x.reason = '' OR x.reason = d.reason)
		  AND spinup_silence_matches(x.subject, d.subject)) AS silenced_by_until
	FROM drift d;

GRANT SELECT ON drift_silences, drift_view TO spinup_ui, spinup_operator;
GRANT INSERT (subject, reason, until, comment), DELETE ON drift_silences TO spinup_ui;
GRANT USAGE ON SEQUENCE drift_silences_id_seq TO spinup_ui;
